"""The comparison runner behind ``fastcnn bench``.

Every chosen backend runs every layer of the chosen suites on identical inputs. The
columns of a row (backends, auto, the peer) are timed against each other in interleaved
rounds (:mod:`fastcnn.timing`, as autotune does) after a warm-up call each, whose
time, JIT compilation included, is reported separately as "first call"; rounds go on
until a time budget per column is spent (at least ``MIN_ROUNDS``). A column's time is
its typical run compared round by round with the row's fastest column
(:func:`fastcnn.timing.typical_seconds`), not its minimum (kept too): on a shared machine
a memory-bound kernel's minimum is a rare quiet moment, and two columns running the same
backend had minima 1.7x apart while their medians agreed within 3 %. Times are shown
beside the fastest backend of the row (a ratio) and as GFLOP/s, with numpy's own GEMM
throughput measured in the same run as the machine's yardstick: these machines are
shared and noisy, so only numbers from one run are compared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fastcnn import registry, select
from fastcnn.cases import Case, make_inputs, run_backward, run_forward
from fastcnn.config import get_num_threads
from fastcnn.crosscheck import ALL_OPS, op_labels
from fastcnn.spec import ConvSpec, PoolSpec, make_conv_spec, make_pool_spec
from fastcnn.suites import SUITES, suite
from fastcnn.timing import (
    BLOCK_SECONDS,
    SETTLE_SECONDS,
    Samples,
    time_interleaved,
    typical_seconds,
)

#: Short turns in more rounds: a slow phase of the machine lasting a second then falls
#: on one or two of a column's turns, not on most of them.
MIN_ROUNDS = 4
MAX_ROUNDS = 40
#: After ``MIN_ROUNDS``, columns over this many times the row's fastest stop taking
#: turns: their ratio is clear, and the time goes to the columns within reach.
KEEP_WITHIN = 3.0
#: Seconds of timed runs per cell (a column of a row) after the warm-up.
DEFAULT_BUDGET = 0.3
#: Layer-op groups per panel of ``--plot``'s chart.
PLOT_ROWS_PER_PANEL = 16
#: Square float32 GEMM used as the machine's yardstick (2 * n^3 FLOPs).
GEMM_SIZE = 2048
AUTO = "auto"
AUTOTUNED = "auto+tune"
PEER = "torch"
#: A helper column: torch's forward alone, subtracted from its autograd time.
_PEER_FORWARD = "torch forward"

#: Backends left out unless named: the reference loops would take minutes per layer.
SLOW_BY_DEFAULT = ("naive",)


@dataclass
class Timing:
    """One backend on one row: seconds, or why there is no number."""

    seconds: float | None = None
    best: float | None = None
    repeats: int = 0
    first_call: float | None = None
    gflops: float | None = None
    ratio: float | None = None
    picked: str | None = None
    note: str = ""


@dataclass
class BenchRow:
    """One layer, one op, one dtype: a timing per column."""

    suite: str
    layer: str
    op: str
    dtype: str
    flops: int
    batch: int
    timings: dict[str, Timing] = field(default_factory=dict)

    @property
    def fastest(self) -> str | None:
        """The fastest fastcnn backend of the row (auto and the peer excluded)."""
        own = {
            k: t.seconds
            for k, t in self.timings.items()
            if t.seconds is not None and k not in (AUTO, AUTOTUNED, PEER)
        }
        return min(own, key=own.__getitem__) if own else None


@dataclass
class BenchResult:
    """Everything a bench run measured, with the machine context."""

    context: dict[str, Any]
    rows: list[BenchRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "rows": [asdict(row) | {"fastest": row.fastest} for row in self.rows],
        }


def measure(calls: dict[str, Callable[[], Any]], budget: float) -> dict[str, Timing]:
    """Time the calls against each other (see the module docstring), about ``budget``
    seconds of timed runs each; a call that raises gets a note instead of a time.

    A budget of 0 is a smoke test: one timed run per round and no pauses.
    """
    samples = time_interleaved(
        calls,
        rounds=MIN_ROUNDS,
        seconds=budget,
        max_rounds=MAX_ROUNDS,
        block_seconds=min(BLOCK_SECONDS, budget / MIN_ROUNDS),
        settle_seconds=min(SETTLE_SECONDS, budget),
        keep_within=KEEP_WITHIN,
    )
    typical = typical_seconds(samples)
    return {name: _timing(s, typical.get(name)) for name, s in samples.items()}


def _timing(samples: Samples, typical: float | None) -> Timing:
    if isinstance(samples.error, registry.BackendUnsupported):
        return Timing(note=f"unsupported: {samples.error}")
    if samples.error is not None:  # a failing backend is reported, the run goes on
        return Timing(note=f"error: {type(samples.error).__name__}: {samples.error}")
    if typical is None:
        return Timing(note="no timed run")
    times = samples.times
    return Timing(typical, min(times), len(times), samples.first)


def gemm_gflops(size: int = GEMM_SIZE) -> float:
    """numpy.matmul float32 throughput on a square GEMM, best of a few runs."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    timing = measure({"gemm": lambda: a @ b}, budget=0.3)["gemm"]
    if timing.seconds is None:
        raise RuntimeError(f"numpy's GEMM failed: {timing.note}")
    return 2 * size**3 / timing.seconds / 1e9


def machine_context(peer: str | None) -> dict[str, Any]:
    """Cores, threads, numpy's BLAS and its GEMM GFLOP/s, measured now."""
    blas = "unknown"
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{deps.get('name')} {deps.get('version', '')}".strip()
    except Exception:  # the layout of show_config is not a stable API
        pass
    context = {
        "cores": os.cpu_count(),
        "threads": get_num_threads(),
        "numpy": np.__version__,
        "blas": blas,
        "gemm_gflops_float32": gemm_gflops(),
    }
    if peer == PEER:
        context["torch"] = _torch_version()
    return context


# --- ops per layer -----------------------------------------------------------------------------


def _call(case: Case, op: str, arrays: dict, grad_y: np.ndarray, backend: str) -> Callable:
    if op.endswith("_backward"):
        return lambda: run_backward(case, grad_y, arrays, backend)
    return lambda: run_forward(case, arrays, backend)


def _flops(case: Case, op: str, spec_flops: int) -> int:
    # A backward pass computes two products of the forward's size (dX and dW); pooling's
    # backward revisits each window once.
    return 2 * spec_flops if op.endswith("_backward") and case.is_conv else spec_flops


def layer_spec(case: Case, arrays: dict, dtype: str) -> ConvSpec | PoolSpec:
    """The spec of a layer's call on ``arrays`` (for FLOP counts and output shapes)."""
    x = arrays["x"] if arrays["x"].ndim == 4 else arrays["x"][np.newaxis]
    params = case.call_params()
    if case.is_conv:
        return make_conv_spec(x, arrays["w"], bias=case.has_bias, dtype=np.dtype(dtype), **params)
    return make_pool_spec(x, case.mode, case.params["kernel"], dtype=np.dtype(dtype), **params)


# --- the peer ----------------------------------------------------------------------------------


def _torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)


def _torch_call(case: Case, op: str, arrays: dict, grad_y: np.ndarray) -> Callable | None:
    """The same layer in torch.nn.functional (CPU), or None where it has no equivalent."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(get_num_threads())
    x = torch.from_numpy(np.ascontiguousarray(arrays["x"]))
    params = case.call_params()
    if case.is_conv:
        padding = params.get("padding", 0)
        if isinstance(padding, tuple) and len(padding) == 4:
            top, bottom, left, right = padding
            x = F.pad(x, (left, right, top, bottom))
            padding = 0
        w = torch.from_numpy(arrays["w"])
        b = torch.from_numpy(arrays["b"]) if "b" in arrays else None
        kwargs = dict(
            stride=params.get("stride", 1),
            padding=padding,
            dilation=params.get("dilation", 1),
            groups=params.get("groups", 1),
        )

        def forward(xx: Any, ww: Any) -> Any:
            return F.conv2d(xx, ww, b, **kwargs)

        inputs = (x, w)
    else:
        if case.mode == "min":
            return None  # torch has no min pooling
        kernel = case.params["kernel"]
        if case.mode == "max":

            def forward(xx: Any) -> Any:
                return F.max_pool2d(xx, kernel, **params)
        else:

            def forward(xx: Any) -> Any:
                return F.avg_pool2d(xx, kernel, **params)

        inputs = (x,)
    if not op.endswith("_backward"):
        return lambda: forward(*inputs)
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    gy = torch.from_numpy(grad_y)

    def forward_backward() -> Any:
        return torch.autograd.grad(forward(*leaves), leaves, gy)

    return forward_backward


# --- the run -----------------------------------------------------------------------------------


def run_bench(
    suites: Sequence[str] = ("quick",),
    *,
    batch: int | None = None,
    backends: Sequence[str] | None = None,
    ops: Sequence[str] | None = None,
    dtypes: Sequence[str] = ("float32",),
    peer: str | None = None,
    autotune: bool = False,
    budget: float = DEFAULT_BUDGET,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Time backends on suite layers; see the module docstring for the method.

    Parameters
    ----------
    suites : sequence of str
        Names from :data:`fastcnn.suites.SUITES`.
    batch : int, optional
        Images per layer (default: the suite's own).
    backends : sequence of str, optional
        Default: every available backend except the reference loops.
    ops : sequence of str, optional
        Only these ops (``conv2d``, ``conv2d_backward``, ``max_pool2d``, ...).
    dtypes : sequence of str
        Compute dtypes.
    peer : {"torch"}, optional
        Also time torch.nn.functional (when installed) as a column.
    autotune : bool
        Also time ``"auto"`` with autotuning on (after its tuning call).
    budget : float
        Seconds of repeated timing per cell after the warm-up.
    """
    infos = {info.name: info for info in registry.list_backends()}
    if backends is None:
        names = [n for n, i in sorted(infos.items()) if i.available and n not in SLOW_BY_DEFAULT]
    else:
        names = [registry.check_name(n) for n in backends]
    if peer not in (None, PEER):
        raise ValueError(f"peer={peer!r} must be {PEER!r}")
    context = machine_context(peer)
    rows = []
    for suite_name in suites:
        for case in with_requested_pool_modes(suite(suite_name, batch), ops):
            for dtype in dtypes:
                rng = np.random.default_rng(0)
                arrays = {k: v.astype(dtype) for k, v in make_inputs(case, rng).items()}
                spec = layer_spec(case, arrays, dtype)
                spec_flops = spec.flops
                y_shape = spec.y_shape if len(case.x) == 4 else spec.y_shape[1:]
                grad_y = rng.standard_normal(y_shape).astype(dtype)
                for op in op_labels(case):
                    if ops is not None and op not in ops:
                        continue
                    row = BenchRow(
                        suite_name, case.name, op, dtype, _flops(case, op, spec_flops), spec.batch
                    )
                    calls = {name: _call(case, op, arrays, grad_y, name) for name in names}
                    calls[AUTO] = _call(case, op, arrays, grad_y, AUTO)
                    if autotune:
                        calls[AUTOTUNED] = _autotuned(calls[AUTO])
                    if peer == PEER:
                        calls.update(_peer_calls(case, op, arrays, grad_y))
                    if progress is not None:
                        progress(f"{case.name} {op}")
                    row.timings = measure(calls, budget)
                    if peer == PEER:
                        _finish_peer(row, case, op)
                    _finish(row, case, op, arrays)
                    rows.append(row)
    return BenchResult(context, rows)


def with_requested_pool_modes(cases: list[Case], ops: Sequence[str] | None) -> list[Case]:
    """The cases, plus each pooling layer in the other pooling modes that ``ops`` names.

    A suite's pooling layer has one mode (VGG-16 pools by max); naming ``--op
    min_pool2d`` times min pooling on the same shapes instead of skipping them.
    """
    out = []
    for case in cases:
        out.append(case)
        if case.is_conv or ops is None:
            continue
        for mode in ("max", "mean", "min"):
            op = f"{mode}_pool2d"
            if op == case.op or not {op, f"{op}_backward"} & set(ops):
                continue
            params = dict(case.params)
            if mode == "mean" and params.get("dilation", 1) not in (1, (1, 1)):
                continue  # mean pooling has no dilation
            if mode != "mean":
                params.pop("count_include_pad", None)
            out.append(replace(case, op=op, params=params))
    return out


def _autotuned(call: Callable[[], Any]) -> Callable[[], Any]:
    def tuned() -> Any:
        with select.autotuning(True):
            return call()

    return tuned


def _peer_calls(case: Case, op: str, arrays: dict, grad_y: np.ndarray) -> dict[str, Callable]:
    """The peer's columns: torch's call, and for a backward its forward alone as well."""
    if _torch_version() is None:
        return {}
    call = _torch_call(case, op, arrays, grad_y)
    if call is None:
        return {}
    forward = _torch_call(case, case.op, arrays, grad_y) if op.endswith("_backward") else None
    return {PEER: call} if forward is None else {PEER: call, _PEER_FORWARD: forward}


def _finish_peer(row: BenchRow, case: Case, op: str) -> None:
    """Put why there is no peer time in the row, or its backward's time alone."""
    if _torch_version() is None:
        row.timings[PEER] = Timing(note="torch is not installed (pip install torch)")
        return
    if PEER not in row.timings:
        row.timings[PEER] = Timing(note="no torch equivalent")
        return
    forward = row.timings.pop(_PEER_FORWARD, None)
    timing = row.timings[PEER]
    if forward is not None and forward.seconds is not None and timing.seconds is not None:
        # torch's autograd runs the forward too; subtract its own forward time.
        timing.seconds = max(timing.seconds - forward.seconds, 1e-9)
        timing.best = None
        timing.note = "autograd time minus its forward"


def _add_rates(row: BenchRow) -> None:
    """Each timing's GFLOP/s and its ratio to the row's fastest backend."""
    fastest = row.fastest
    best = row.timings[fastest].seconds if fastest else None
    for timing in row.timings.values():
        if timing.seconds is not None:
            timing.gflops = row.flops / timing.seconds / 1e9
            timing.ratio = timing.seconds / best if best else None


def _finish(row: BenchRow, case: Case, op: str, arrays: dict) -> None:
    """Fill in GFLOP/s, ratios to the fastest, and which backend auto picked."""
    _add_rates(row)
    params = dict(case.call_params())
    x_shape = arrays["x"].shape
    try:
        if case.is_conv:
            picked = select.explain(op, x_shape, arrays["w"].shape, dtype=row.dtype, **params)
        else:
            picked = select.explain(
                op, x_shape, kernel_size=case.params["kernel"], dtype=row.dtype, **params
            )
        row.timings[AUTO].picked = picked.choice
        if AUTOTUNED in row.timings:
            row.timings[AUTOTUNED].picked = picked.tuned or picked.choice
    except Exception:  # explaining is a courtesy; the timing stands without it
        pass


def with_combined(result: BenchResult) -> list[BenchRow]:
    """Rows plus a forward+backward row per layer (the sum of the two times)."""
    out: list[BenchRow] = []
    by_key = {(r.layer, r.op, r.dtype): r for r in result.rows}
    for row in result.rows:
        out.append(row)
        if not row.op.endswith("_backward"):
            continue
        fwd = by_key.get((row.layer, row.op.removesuffix("_backward"), row.dtype))
        if fwd is None:
            continue
        both = BenchRow(
            row.suite, row.layer, fwd.op + "+backward", row.dtype, fwd.flops + row.flops, row.batch
        )
        for column in row.timings:
            a, b = fwd.timings.get(column), row.timings.get(column)
            if a and b and a.seconds is not None and b.seconds is not None:
                both.timings[column] = Timing(a.seconds + b.seconds, picked=a.picked)
            else:
                both.timings[column] = Timing(note=(b.note if b else "") or (a.note if a else ""))
        _add_rates(both)
        out.append(both)
    return out


# --- output ------------------------------------------------------------------------------------


def print_result(result: BenchResult, console: Any) -> None:
    """The table, a row per layer x op (and forward+backward), a column per backend."""
    from rich.table import Table

    ctx = result.context
    console.print(
        f"machine: {ctx['cores']} cores, {ctx['threads']} threads, numpy {ctx['numpy']} "
        f"({ctx['blas']}), numpy float32 GEMM {ctx['gemm_gflops_float32']:.0f} GFLOP/s "
        "measured in this run" + (f", torch {ctx['torch']}" if ctx.get("torch") else "")
    )
    rows = with_combined(result)
    columns: list[str] = []
    for row in rows:
        for name in row.timings:
            if name not in columns:
                columns.append(name)
    table = Table(title="fastcnn bench: median time, GFLOP/s, time / fastest backend")
    for name in ("layer", "op", "dtype", *columns):
        table.add_column(name, overflow="fold")
    for row in rows:
        cells = []
        for name in columns:
            timing = row.timings.get(name)
            if timing is None or timing.seconds is None:
                cells.append("[dim]-[/]" if timing is None or not timing.note else "[dim]n/a[/]")
                continue
            text = f"{timing.seconds * 1e3:.2f} ms {timing.gflops:.1f} GF/s {timing.ratio:.2f}x"
            if timing.picked:
                text += f" ({timing.picked})"
            if name == row.fastest:
                text = f"[bold green]{text}[/]"
            cells.append(text)
        table.add_row(row.layer, row.op, row.dtype, *cells)
    console.print(table)
    firsts = {
        name: max(
            (
                r.timings[name].first_call
                for r in result.rows
                if name in r.timings and r.timings[name].first_call is not None
            ),
            default=None,
        )
        for name in columns
    }
    console.print(
        "first call (warm-up, JIT compile included; slowest in the run): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in firsts.items() if v is not None)
    )
    if any(PEER in r.timings and r.timings[PEER].note.startswith("torch is not") for r in rows):
        console.print(
            "[yellow]--peer torch: torch is not installed, so there is no torch column[/]"
        )


def plot_result(result: BenchResult, path: str | Path) -> None:
    """A grouped bar chart of each backend's time / fastest, per layer and op."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError(
            "--plot needs matplotlib: pip install 'fastcnn[plot]' (or matplotlib)"
        ) from None
    rows = [r for r in with_combined(result) if r.fastest]
    columns = [c for c in dict.fromkeys(k for r in rows for k in r.timings) if c != AUTOTUNED]
    width = 0.8 / max(len(columns), 1)
    # Long runs are cut into panels of a readable number of rows, stacked vertically.
    panels = [rows[i : i + PLOT_ROWS_PER_PANEL] for i in range(0, len(rows), PLOT_ROWS_PER_PANEL)]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(14, 4.5 * len(panels)), squeeze=False, sharey=True
    )
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        for i, column in enumerate(columns):
            ratios = [
                r.timings[column].ratio
                if column in r.timings and r.timings[column].ratio
                else math.nan
                for r in panel
            ]
            color = f"C{i}"
            ax.bar(
                [k + i * width for k in range(len(panel))], ratios, width, label=column, color=color
            )
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(panel))])
        ax.set_xticklabels(
            [f"{r.layer}\n{r.op}" for r in panel], rotation=35, ha="right", fontsize=7
        )
        ax.set_yscale("log")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylabel("time / fastest (log)")
    axes[0, 0].set_title(
        f"fastcnn bench: each backend's time / the fastest backend's, per layer and op "
        f"({result.context['threads']} threads; 1 = fastest)"
    )
    axes[0, 0].legend(ncol=len(columns), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cmd_bench(args: argparse.Namespace, console: Any) -> int:
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("benchmarking", total=None)
        result = run_bench(
            args.suite or ["quick"],
            batch=args.batch,
            backends=args.backend,
            ops=args.op,
            dtypes=args.dtype or ["float32"],
            peer=args.peer,
            autotune=args.autotune,
            budget=args.budget,
            progress=lambda label: bar.update(task, description=label, advance=1),
        )
    print_result(result, console)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1))
        console.print(f"wrote {args.json}")
    if args.plot:
        plot_result(result, args.plot)
        console.print(f"wrote {args.plot}")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``fastcnn bench``."""
    parser = sub.add_parser(
        "bench",
        help="time backends on real layer shapes",
        description="Time every backend on the layers of named suites, as ratios to the "
        "fastest backend and beside numpy's GEMM throughput measured in the same run.",
    )
    parser.add_argument(
        "--suite",
        action="append",
        choices=list(SUITES),
        help="suite to run (repeatable; default quick)",
    )
    parser.add_argument("--batch", type=int, help="images per layer (default: per suite)")
    parser.add_argument("--backend", action="append", help="only this backend (repeatable)")
    parser.add_argument(
        "--op",
        action="append",
        choices=ALL_OPS,
        help="only this op (repeatable); a pooling op also runs on pooling layers of another mode",
    )
    parser.add_argument("--dtype", action="append", choices=["float32", "float64"])
    parser.add_argument("--peer", choices=[PEER], help="add torch.nn.functional as a column")
    parser.add_argument("--autotune", action="store_true", help="add autotuned auto as a column")
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        help="seconds of timed runs per cell after the warm-up (0: a smoke test)",
    )
    parser.add_argument("--json", metavar="PATH", help="write every number to this JSON file")
    parser.add_argument("--plot", metavar="PATH", help="draw a bar chart of the ratios (PNG)")
    parser.set_defaults(run=_cmd_bench)
