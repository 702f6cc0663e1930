"""Timing the columns of every row: backends, auto, the peer, on suite layers.

Every chosen backend runs every layer of the chosen suites on identical inputs. The
columns of a row are timed against each other in interleaved rounds
(:mod:`fastcnn.timing`, as autotune does) after a warm-up call each, whose time, JIT
compilation included, is reported separately as "first call"; rounds go on until a
time budget per column is spent (at least :data:`fastcnn.timing.MIN_ROUNDS`). A column's
time is its typical run compared round by round with the row's fastest column
(:func:`fastcnn.timing.typical_seconds`), not its minimum (kept too): on a shared
machine a memory-bound kernel's minimum is a rare quiet moment, while the medians of
one backend timed in two columns agree. Times are shown beside the fastest backend of
the row (a ratio) and as GFLOP/s, with numpy's own GEMM throughput measured in the same
run as the machine's yardstick: these machines are shared and noisy, so only numbers
from one run are compared. Each row also times its roof in the same rounds as its
columns: a copy of the bytes a memory-bound row moves, or on the other rows a GEMM of
about the row's FLOPs (:func:`gemm_size`), so that a column's share of its roof is
taken in the same phase of the machine as its time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fastcnn import registry, select
from fastcnn.bench.peers import finish_peer, peer_calls, torch_version
from fastcnn.bench.rows import (
    AUTO,
    AUTOTUNED,
    COPY,
    GEMM,
    PEER,
    BenchResult,
    BenchRow,
    Timing,
    add_rates,
)
from fastcnn.cases import Case, make_inputs, run_backward, run_forward
from fastcnn.config import get_num_threads
from fastcnn.ops import POOL2D, POOL_MODES, backward_of, is_backward, public_op
from fastcnn.spec import ConvSpec, PoolSpec, make_conv_spec, make_pool_spec
from fastcnn.suites import is_memory_bound, layer_class, suite
from fastcnn.timing import (
    BLOCK_SECONDS,
    MIN_ROUNDS,
    SETTLE_SECONDS,
    Samples,
    time_interleaved,
    typical_seconds,
)

MAX_ROUNDS = 40
#: After ``MIN_ROUNDS``, columns over this many times the row's fastest stop taking
#: turns, and the time goes to the columns within reach. The bench reports every
#: column's ratio, so a column stops only when the least rounds already make its ratio
#: plain: a slow phase of the machine can put a close column at 2x for those rounds.
#: Autotune, which only needs the winner, stops candidates sooner
#: (:data:`fastcnn.select.AUTOTUNE_KEEP_WITHIN`).
KEEP_WITHIN = 3.0
#: Seconds of timed runs per cell (a column of a row) after the warm-up.
DEFAULT_BUDGET = 0.3
#: Square float32 GEMM used as the machine's yardstick (2 * n^3 FLOPs).
GEMM_SIZE = 2048
#: The sizes a row's GEMM column may take (:func:`gemm_size`). Timed side by side on the
#: 2-core Zen 4 of 2026-12-07, square float32 GEMMs of 512 to 2048 ran at 198-207
#: GFLOP/s, 1024 within 3 % of 2048 in four runs; but in a bench run a 512 GEMM beside
#: ResNet-18's 1x1 rows ran at 136 GFLOP/s where the run's 2048 had run at 188. The
#: floor is 1024, so that a row's roof does not sink below the machine's.
ROW_GEMM_SIZES = (1024, 2048)
#: Backends left out unless named: the reference loops would take minutes per layer.
SLOW_BY_DEFAULT = ("naive",)


def measure(
    calls: dict[str, Callable[[], Any]], budget: float, keep: Collection[str] = ()
) -> dict[str, Timing]:
    """Time the calls against each other (see the module docstring), about ``budget``
    seconds of timed runs each; a call that raises gets a note instead of a time. The
    calls named in ``keep`` (a row's yardstick) take every round, however slow.

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
        keep=keep,
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


def _gemm_call(size: int, dtype: str) -> Callable[[], Any]:
    """numpy's ``a @ b`` of two ``size x size`` matrices into a buffer made once."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.dtype(dtype)) for _ in range(2))
    out = np.empty_like(a)
    return lambda: np.matmul(a, b, out=out)


def gemm_gflops(size: int | None = None) -> float:
    """numpy.matmul float32 throughput on a square GEMM (default :data:`GEMM_SIZE`)."""
    size = GEMM_SIZE if size is None else size
    timing = measure({"gemm": _gemm_call(size, "float32")}, budget=0.3)["gemm"]
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
        context["torch"] = torch_version()
    return context


# --- a layer and its rows ----------------------------------------------------------------------


def layer_spec(case: Case, arrays: dict, dtype: str) -> ConvSpec | PoolSpec:
    """The spec of a layer's call on ``arrays`` (for FLOP counts and output shapes)."""
    x = arrays["x"] if arrays["x"].ndim == 4 else arrays["x"][np.newaxis]
    params = case.call_params()
    if case.is_conv:
        return make_conv_spec(x, arrays["w"], bias=case.has_bias, dtype=np.dtype(dtype), **params)
    return make_pool_spec(x, case.mode, case.params["kernel"], dtype=np.dtype(dtype), **params)


@dataclass
class _Layer:
    """One suite layer in one dtype: its inputs, output gradient and spec."""

    suite: str
    case: Case
    dtype: str
    arrays: dict[str, np.ndarray]
    grad_y: np.ndarray
    spec: ConvSpec | PoolSpec

    @classmethod
    def build(cls, suite_name: str, case: Case, dtype: str) -> _Layer:
        rng = np.random.default_rng(0)
        arrays = {k: v.astype(dtype) for k, v in make_inputs(case, rng).items()}
        spec = layer_spec(case, arrays, dtype)
        y_shape = spec.y_shape if len(case.x) == 4 else spec.y_shape[1:]
        grad_y = rng.standard_normal(y_shape).astype(dtype)
        return cls(suite_name, case, dtype, arrays, grad_y, spec)

    def call(self, op: str, backend: str) -> Callable[[], Any]:
        """The layer's ``op`` through the public API with ``backend``."""
        case, arrays = self.case, self.arrays
        if is_backward(op):
            return lambda: run_backward(case, self.grad_y, arrays, backend)
        return lambda: run_forward(case, arrays, backend)

    def row(self, op: str) -> BenchRow:
        """An empty row for ``op``. A convolution's backward computes two products of the
        forward's size (dX and dW); pooling's backward revisits each window once."""
        flops = self.spec.flops
        if is_backward(op) and self.case.is_conv:
            flops *= 2
        return BenchRow(
            self.suite,
            self.case.name,
            op,
            self.dtype,
            flops,
            self.spec.batch,
            layer_class(self.case),
            self.bytes_moved(op) if is_memory_bound(self.case) else 0,
        )

    def bytes_moved(self, op: str) -> int:
        """Bytes ``op`` must move at least: its inputs read once and its outputs written
        once (a backward reads the incoming gradient and the input, writes dX; weights
        and their gradient count too)."""
        item = np.dtype(self.dtype).itemsize
        x = self.arrays["x"].nbytes
        w = self.arrays["w"].nbytes if "w" in self.arrays else 0
        if is_backward(op):
            return x + self.grad_y.nbytes + x + 2 * w
        return x + int(np.prod(self.spec.y_shape)) * item + w


def _copy_call(nbytes: int) -> Callable[[], Any]:
    """``numpy.copyto`` between two buffers of ``nbytes / 2``: ``nbytes`` read plus written."""
    source = np.ones(max(1, nbytes // 2), dtype=np.uint8)
    target = np.empty_like(source)
    return lambda: np.copyto(target, source)


def gemm_size(flops: int) -> int:
    """The side of a row's GEMM column: a square GEMM of about ``flops`` (a multiple of
    64, within :data:`ROW_GEMM_SIZES`), so that on large rows its calls take about as
    long as a column running at GEMM speed."""
    side = round((flops / 2) ** (1 / 3) / 64) * 64
    return min(max(side, ROW_GEMM_SIZES[0]), ROW_GEMM_SIZES[1])


def _autotuned(call: Callable[[], Any]) -> Callable[[], Any]:
    def tuned() -> Any:
        with select.autotuning(True):
            return call()

    return tuned


def _note_picks(row: BenchRow, case: Case, arrays: dict) -> None:
    """Which backend auto (and autotuned auto) picked for the row's call."""
    params = dict(case.call_params())
    x_shape = arrays["x"].shape
    try:
        if case.is_conv:
            picked = select.explain(row.op, x_shape, arrays["w"].shape, dtype=row.dtype, **params)
        else:
            kernel = case.params["kernel"]
            picked = select.explain(row.op, x_shape, kernel_size=kernel, dtype=row.dtype, **params)
        row.timings[AUTO].picked = picked.choice
        if AUTOTUNED in row.timings:
            row.timings[AUTOTUNED].picked = picked.tuned or picked.choice
    except Exception:  # explaining is a courtesy; the timing stands without it
        pass


def _bench_row(
    layer: _Layer, op: str, names: list[str], peer: str | None, autotune: bool, budget: float
) -> BenchRow:
    """Time every column of one row, then fill in rates, ratios and auto's pick."""
    row = layer.row(op)
    calls = {name: layer.call(op, name) for name in names}
    calls[AUTO] = layer.call(op, AUTO)
    if autotune:
        calls[AUTOTUNED] = _autotuned(calls[AUTO])
    if peer == PEER:
        calls.update(peer_calls(layer.case, op, layer.arrays, layer.grad_y))
    if row.bytes_moved:
        calls[COPY] = _copy_call(row.bytes_moved)
    else:
        size = gemm_size(row.flops)
        row.gemm_flops = 2 * size**3
        calls[GEMM] = _gemm_call(size, row.dtype)
    row.timings = measure(calls, budget, keep=(COPY, GEMM))
    if peer == PEER:
        finish_peer(row)
    add_rates(row)
    _note_picks(row, layer.case, layer.arrays)
    return row


# --- the run -----------------------------------------------------------------------------------


def _backend_columns(backends: Sequence[str] | None) -> list[str]:
    if backends is not None:
        return [registry.check_name(n) for n in backends]
    infos = registry.list_backends()
    return sorted(i.name for i in infos if i.available and i.name not in SLOW_BY_DEFAULT)


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
    progress : callable, optional
        Called with a short label before each row is timed (for a progress bar).
    """
    names = _backend_columns(backends)
    if peer not in (None, PEER):
        raise ValueError(f"peer={peer!r} must be {PEER!r}")
    context = machine_context(peer)
    rows = []
    for suite_name in suites:
        for case in with_requested_pool_modes(suite(suite_name, batch), ops):
            for dtype in dtypes:
                layer = _Layer.build(suite_name, case, dtype)
                for op in case.ops:
                    if ops is not None and op not in ops:
                        continue
                    if progress is not None:
                        progress(f"{case.name} {op}")
                    rows.append(_bench_row(layer, op, names, peer, autotune, budget))
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
        for mode in POOL_MODES:
            op = public_op(POOL2D, mode)
            if op == case.op or not {op, backward_of(op)} & set(ops):
                continue
            params = dict(case.params)
            if mode == "mean" and params.get("dilation", 1) not in (1, (1, 1)):
                continue  # mean pooling has no dilation
            if mode != "mean":
                params.pop("count_include_pad", None)
            out.append(replace(case, op=op, params=params))
    return out
