"""The audit harness: every backend on identical inputs, against the reference.

For each case and each available backend (built-in or third-party, all treated alike) in
float32 and float64, through the public API:

- forward and backward results against the naive backend in float64 (normwise relative
  error, tolerances from :mod:`fastcnn.tolerances`), with the result's shape and dtype;
- gradients against central finite differences of the same backend's forward, in float64
  (random directions for every case, the full Jacobian for tiny cases);
- behaviour: NaN/Inf stay in the windows that hold them (or the backend declares it cannot
  and is refused), the same call twice is bit-identical, the caller's arrays are unchanged.

Use :func:`run` from Python (``report.passed``), or ``fastcnn check`` from the shell.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastcnn import registry
from fastcnn.cases import (
    CASE_OPS,
    JACOBIAN_MAX_CELLS,
    Case,
    as_case,
    default_cases,
    full_cases,
    load_cases,
    make_inputs,
    run_backward,
    run_forward,
)
from fastcnn.gradcheck import directional_error, jacobian_error
from fastcnn.tolerances import (
    FD_TOLERANCE,
    FORWARD_TOLERANCE,
    forward_tolerance,
    product_scale,
    relative_error,
)

REFERENCE = "naive"
DTYPES: tuple[str, ...] = ("float32", "float64")
REPORT_VERSION = 1

PASS, FAIL, UNSUPPORTED, ERROR = "pass", "FAIL", "unsupported", "error"


def op_labels(case: Case) -> tuple[str, str]:
    """The forward and backward op names a case is reported under."""
    return case.op, f"{case.op}_backward"


ALL_OPS: tuple[str, ...] = tuple(label for op in CASE_OPS for label in (op, f"{op}_backward"))


@dataclass
class CheckResult:
    """One check of one backend on one case in one dtype."""

    backend: str
    op: str
    dtype: str
    check: str
    case: str
    status: str
    error: float | None = None
    tolerance: float | None = None
    message: str = ""


@dataclass
class Row:
    """The report's summary of one backend x op x dtype over every case."""

    backend: str
    op: str
    dtype: str
    status: str
    cases: int
    worst: dict[str, float] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    message: str = ""


@dataclass
class Report:
    """Everything an audit found; ``passed`` is the verdict."""

    seed: int
    backends: list[str]
    unavailable: dict[str, str]
    results: list[CheckResult]

    @property
    def rows(self) -> list[Row]:
        """Results grouped per backend x op x dtype, in a stable order."""
        groups: dict[tuple[str, str, str], list[CheckResult]] = {}
        for result in self.results:
            groups.setdefault((result.backend, result.op, result.dtype), []).append(result)
        order = {op: i for i, op in enumerate(ALL_OPS)}
        rows = []
        for (backend, op, dtype), results in sorted(
            groups.items(), key=lambda item: (item[0][0], order.get(item[0][1], 99), item[0][2])
        ):
            rows.append(_summarise(backend, op, dtype, results))
        return rows

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status in (FAIL, ERROR)]

    @property
    def passed(self) -> bool:
        """True when every supported check of every backend passed."""
        return not self.failures

    def summary(self) -> str:
        """The one-line verdict."""
        rows = self.rows
        counts = {s: sum(r.status == s for r in rows) for s in (PASS, FAIL, ERROR, UNSUPPORTED)}
        head = "PASS" if self.passed else "FAIL"
        text = (
            f"{head}: {len(self.backends)} backends, {counts[PASS]} passed, {counts[FAIL]} failed, "
            f"{counts[ERROR]} errors, {counts[UNSUPPORTED]} unsupported (backend x op x dtype)"
        )
        if not self.passed:
            first = self.failures[0]
            text += (
                f"; first: {first.backend} {first.op} {first.dtype} [{first.case}]: {first.message}"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        """Every number of the report, JSON-ready."""
        return {
            "version": REPORT_VERSION,
            "seed": self.seed,
            "backends": self.backends,
            "unavailable": self.unavailable,
            "tolerances": {"forward": FORWARD_TOLERANCE, "finite_difference": FD_TOLERANCE},
            "passed": self.passed,
            "verdict": self.summary(),
            "rows": [asdict(row) for row in self.rows],
            "results": [asdict(result) for result in self.results],
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, allow_nan=True))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        if data.get("version") != REPORT_VERSION:
            raise ValueError(f"report version {data.get('version')!r} is not {REPORT_VERSION}")
        return cls(
            seed=data["seed"],
            backends=list(data["backends"]),
            unavailable=dict(data["unavailable"]),
            results=[CheckResult(**item) for item in data["results"]],
        )

    @classmethod
    def read_json(cls, path: str | Path) -> Report:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _summarise(backend: str, op: str, dtype: str, results: list[CheckResult]) -> Row:
    statuses = {r.status for r in results}
    if ERROR in statuses:
        status = ERROR
    elif FAIL in statuses:
        status = FAIL
    elif statuses == {UNSUPPORTED}:
        status = UNSUPPORTED
    else:
        status = PASS
    worst: dict[str, float] = {}
    tolerance: dict[str, float] = {}
    for r in results:
        if r.error is not None:
            worst[r.check] = max(worst.get(r.check, 0.0), r.error)
        if r.tolerance is not None:
            tolerance[r.check] = r.tolerance
    noted = [r for r in results if r.status == status and r.message]
    if not noted:
        message = ""
    elif status in (FAIL, ERROR):
        message = f"{noted[0].check}: {noted[0].message} (case: {noted[0].case})"
    else:
        message = noted[0].message
    cases = len({r.case for r in results})
    return Row(backend, op, dtype, status, cases, worst, tolerance, message)


# --- running one case ------------------------------------------------------------------------


@dataclass
class _Inputs:
    """float64 inputs of a case and the reference results for them."""

    arrays: dict[str, np.ndarray]
    grad_y: np.ndarray
    y: np.ndarray
    grads: list[np.ndarray | None]


def _same_bits(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


class _Auditor:
    """Runs the checks of one case for one backend and dtype, collecting results."""

    def __init__(self, backend: str, dtype: str, case: Case, ref: _Inputs, sink: list) -> None:
        self.backend, self.dtype, self.case, self.ref, self.sink = backend, dtype, case, ref, sink
        self.tol = forward_tolerance(dtype, registry.get_backend(backend))

    def record(self, op: str, check: str, status: str, error=None, tol=None, message="") -> None:
        self.sink.append(
            CheckResult(
                self.backend,
                op,
                self.dtype,
                check,
                self.case.name,
                status,
                None if error is None else float(error),
                tol,
                message,
            )
        )

    def guarded(self, op: str, call: Callable[[], Any]) -> tuple[bool, Any]:
        """Run a backend call; an exception becomes an 'unsupported' or 'error' result."""
        try:
            return True, call()
        except registry.BackendUnsupported as exc:
            self.record(op, "reference", UNSUPPORTED, message=str(exc))
        except Exception as exc:  # the audit reports a crashing backend, it never stops
            self.record(op, "reference", ERROR, message=f"{type(exc).__name__}: {exc}")
        return False, None

    def compare(self, op: str, got: Sequence[Any], want: Sequence[Any], floor: float) -> None:
        worst, problems = 0.0, []
        for name, g, r in zip(("x", "w", "b"), got, want, strict=False):
            label = name if len(want) > 1 else "result"
            if r is None:
                if g is not None:
                    problems.append(f"{label}: returned a gradient that should be None")
                continue
            if not isinstance(g, np.ndarray):
                problems.append(f"{label}: returned {type(g).__name__}, not an array")
                continue
            if g.shape != r.shape:
                problems.append(f"{label}: shape {g.shape}, expected {r.shape}")
                continue
            if g.dtype != np.dtype(self.dtype):
                problems.append(f"{label}: dtype {g.dtype}, expected {self.dtype}")
            err = relative_error(g, r, floor)
            worst = max(worst, err)
            if not err <= self.tol:
                problems.append(f"{label}: error {err:.3g} > tolerance {self.tol:.3g}")
        status = FAIL if problems else PASS
        self.record(op, "reference", status, worst, self.tol, "; ".join(problems))

    def scale(self, *, forward: bool) -> float:
        """Size of one product term: the error floor (see tolerances.product_scale)."""
        arrays = self.ref.arrays
        if forward:
            return (
                product_scale(arrays["x"], arrays["w"])
                if "w" in arrays
                else product_scale(arrays["x"])
            )
        if "w" not in arrays:
            return product_scale(self.ref.grad_y)
        return max(
            product_scale(self.ref.grad_y, arrays["w"]), product_scale(self.ref.grad_y, arrays["x"])
        )

    def run(self, fd: bool, jacobian: bool) -> bool:
        """Run every check of the case; return whether the backend ran its forward."""
        case, ref = self.case, self.ref
        fwd_op, bwd_op = op_labels(case)
        arrays = {k: v.astype(self.dtype) for k, v in ref.arrays.items()}
        saved = {k: v.copy() for k, v in arrays.items()}
        grad_y = ref.grad_y.astype(self.dtype)

        ok, y = self.guarded(fwd_op, lambda: run_forward(case, arrays, self.backend))
        if ok:
            expected = ref.y if case.expected is None else case.expected
            self.compare(fwd_op, [y], [expected], self.scale(forward=True))
            again = run_forward(case, arrays, self.backend)
            same = _same_bits(y, again)
            self.record(
                fwd_op,
                "deterministic",
                PASS if same else FAIL,
                message="" if same else "two identical calls gave different bits",
            )
            self._check_inputs(fwd_op, arrays, saved)
        ran_forward = ok

        ok, grads = self.guarded(bwd_op, lambda: run_backward(case, grad_y, arrays, self.backend))
        if ok:
            self.compare(bwd_op, grads, ref.grads, self.scale(forward=False))
            again = run_backward(case, grad_y, arrays, self.backend)
            same = all(_same_bits(a, b) for a, b in zip(grads, again, strict=True))
            self.record(
                bwd_op,
                "deterministic",
                PASS if same else FAIL,
                message="" if same else "two identical calls gave different bits",
            )
            if fd:
                self._finite_differences(bwd_op, grads, jacobian)
            saved["grad_y"] = ref.grad_y.astype(self.dtype)
            self._check_inputs(bwd_op, {**arrays, "grad_y": grad_y}, saved)
        return ran_forward

    def _check_inputs(self, op: str, arrays: dict, saved: dict) -> None:
        changed = [k for k in arrays if not np.array_equal(arrays[k], saved[k], equal_nan=True)]
        self.record(
            op,
            "inputs",
            FAIL if changed else PASS,
            message=f"modified its input {', '.join(changed)}" if changed else "",
        )

    def _finite_differences(self, op: str, grads: list, jacobian: bool) -> None:
        case, ref = self.case, self.ref
        names = [k for k in ("x", "w", "b") if k in ref.arrays]
        inputs = [ref.arrays[k] for k in names]
        got = [g for g in grads if g is not None][: len(inputs)]
        if len(got) != len(inputs):
            return  # already reported as a reference failure

        def forward(values: Sequence[np.ndarray]) -> np.ndarray:
            return run_forward(case, dict(zip(names, values, strict=True)), self.backend)

        try:
            rng = np.random.default_rng(0)
            floor = self.scale(forward=False)
            err = directional_error(forward, inputs, got, ref.grad_y, rng, floor=floor)
            self.record(
                op,
                "finite-diff",
                PASS if err <= FD_TOLERANCE else FAIL,
                err,
                FD_TOLERANCE,
                ""
                if err <= FD_TOLERANCE
                else f"directional derivative error {err:.3g} > {FD_TOLERANCE:.3g}",
            )
            if jacobian:

                def backward(grad_y: np.ndarray) -> list[np.ndarray]:
                    out = run_backward(
                        case, grad_y, dict(zip(names, inputs, strict=True)), self.backend
                    )
                    return [g for g in out if g is not None]

                err = jacobian_error(forward, inputs, backward, floor=floor)
                self.record(
                    op,
                    "jacobian",
                    PASS if err <= FD_TOLERANCE else FAIL,
                    err,
                    FD_TOLERANCE,
                    "" if err <= FD_TOLERANCE else f"Jacobian error {err:.3g} > {FD_TOLERANCE:.3g}",
                )
        except Exception as exc:
            self.record(op, "finite-diff", ERROR, message=f"{type(exc).__name__}: {exc}")


def _nonfinite_check(backend: str, dtype: str, case: Case, sink: list) -> None:
    """NaN and Inf must stay in the windows that hold them, as in the reference."""
    rng = np.random.default_rng(1)
    arrays = make_inputs(case, rng)
    x = arrays["x"]
    flat = x.reshape(-1)
    flat[flat.size // 3] = np.nan
    flat[(2 * flat.size) // 3] = np.inf
    op = case.op
    try:
        want = run_forward(case, arrays, REFERENCE)
        got = run_forward(case, {k: v.astype(dtype) for k, v in arrays.items()}, backend)
    except registry.BackendUnsupported as exc:
        declared = not registry.keeps_nonfinite_local(registry.get_backend(backend))
        status = PASS if declared else ERROR
        note = "refuses NaN/Inf input, as it declares" if declared else str(exc)
        sink.append(CheckResult(backend, op, dtype, "non-finite", case.name, status, message=note))
        return
    except Exception as exc:
        sink.append(
            CheckResult(
                backend,
                op,
                dtype,
                "non-finite",
                case.name,
                ERROR,
                message=f"{type(exc).__name__}: {exc}",
            )
        )
        return
    problems = []
    if got.shape != want.shape:
        problems.append(f"shape {got.shape}, expected {want.shape}")
    else:
        for name, test in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
            if not np.array_equal(test(got), test(want)):
                spread = int(test(got).sum()) - int(test(want).sum())
                problems.append(f"{name} cells differ from the reference ({spread:+d})")
    tol = forward_tolerance(dtype, registry.get_backend(backend))
    err = relative_error(got, want, product_scale(*arrays.values())) if not problems else math.inf
    if not problems and not err <= tol:
        problems.append(f"finite cells: error {err:.3g} > {tol:.3g}")
    sink.append(
        CheckResult(
            backend,
            op,
            dtype,
            "non-finite",
            case.name,
            FAIL if problems else PASS,
            None if problems else err,
            tol,
            "; ".join(problems),
        )
    )


# --- the run -----------------------------------------------------------------------------------


def run(
    cases: Iterable[Case | str | dict[str, Any]] | None = None,
    *,
    backends: Sequence[str] | None = None,
    ops: Sequence[str] | None = None,
    dtypes: Sequence[str] = DTYPES,
    seed: int = 0,
    full: bool = False,
    finite_differences: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Audit backends against the reference on the given (or built-in) cases.

    Parameters
    ----------
    cases : iterable of Case, str or dict, optional
        Cases to run; default: the built-in set (``full=True``: the larger sweep).
    backends : sequence of str, optional
        Backend names; default: every available backend, the reference included.
    ops : sequence of str, optional
        Op names to audit (``conv2d``, ``conv2d_backward``, ``max_pool2d``, ...).
    dtypes : sequence of {"float32", "float64"}
        Compute dtypes to audit.
    seed : int
        Seed of the random inputs: the same seed gives the same inputs.
    finite_differences : bool
        Also check gradients against finite differences (float64).
    progress : callable, optional
        Called with a short label before each step (for a progress bar).

    Returns
    -------
    Report
        ``report.passed`` is the verdict; ``report.rows`` the table.
    """
    if cases is not None:
        chosen = [as_case(c) for c in cases]
    else:
        chosen = full_cases() if full else default_cases()
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} must be one of {DTYPES}")
    if ops is not None:
        unknown = set(ops) - set(ALL_OPS)
        if unknown:
            raise ValueError(f"ops {sorted(unknown)} are not among {ALL_OPS}")
    infos = {info.name: info for info in registry.list_backends()}
    names = list(backends) if backends is not None else sorted(infos)
    for name in names:
        registry.check_name(name)
        if name == registry.AUTO:
            raise ValueError("audit named backends; 'auto' is not one")
    unavailable = {n: infos[n].reason or "" for n in names if not infos[n].available}
    names = [n for n in names if n not in unavailable]

    results: list[CheckResult] = []
    nonfinite_done: set[tuple[str, str, str]] = set()
    for index, case in enumerate(chosen):
        fwd_op, bwd_op = op_labels(case)
        wanted = {fwd_op, bwd_op} if ops is None else {fwd_op, bwd_op} & set(ops)
        if not wanted:
            continue
        rng = np.random.default_rng([seed, index])
        arrays = make_inputs(case, rng)
        y = run_forward(case, arrays, REFERENCE)
        grad_y = rng.standard_normal(y.shape)
        ref = _Inputs(arrays, grad_y, y, run_backward(case, grad_y, arrays, REFERENCE))
        cells = sum(a.size for a in arrays.values())
        tiny = cells <= JACOBIAN_MAX_CELLS and y.size <= JACOBIAN_MAX_CELLS
        for name in names:
            if progress is not None:
                progress(f"{name}: {case.name}")
            for dtype in dtypes:
                sink: list[CheckResult] = []
                ran = _Auditor(name, dtype, case, ref, sink).run(
                    fd=finite_differences and dtype == "float64", jacobian=tiny
                )
                # One non-finite check per backend, op and dtype, on the op's first
                # random-input case.
                key = (name, case.op, dtype)
                if ran and case.inputs is None and fwd_op in wanted and key not in nonfinite_done:
                    nonfinite_done.add(key)
                    _nonfinite_check(name, dtype, case, sink)
                results += [r for r in sink if r.op in wanted]
    return Report(seed=seed, backends=names, unavailable=unavailable, results=results)


# --- the command line --------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1e}"


def print_report(report: Report, console: Any) -> None:
    """Render the report as a rich table and the verdict line."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="fastcnn check: every backend against the naive reference (float64)")
    for column in (
        "backend",
        "op",
        "dtype",
        "status",
        "cases",
        "vs reference (tol)",
        "finite diff (tol)",
        "jacobian",
        "non-finite",
        "note",
    ):
        table.add_column(column, overflow="fold")
    style = {PASS: "green", FAIL: "bold red", ERROR: "bold red", UNSUPPORTED: "yellow"}
    for row in report.rows:
        ref = row.worst.get("reference")
        table.add_row(
            row.backend,
            row.op,
            row.dtype,
            f"[{style[row.status]}]{row.status}[/]",
            str(row.cases),
            f"{_fmt(ref)} ({_fmt(row.tolerance.get('reference'))})" if ref is not None else "",
            f"{_fmt(row.worst.get('finite-diff'))} ({_fmt(row.tolerance.get('finite-diff'))})"
            if "finite-diff" in row.worst
            else "",
            _fmt(row.worst.get("jacobian")),
            _fmt(row.worst.get("non-finite")),
            escape(row.message),
        )
    console.print(table)
    for name, reason in report.unavailable.items():
        console.print(f"[yellow]{name}: unavailable[/] ({reason})")
    colour = "green" if report.passed else "bold red"
    console.print(f"[{colour}]{report.summary()}[/]")


def _cmd_check(args: argparse.Namespace, console: Any) -> int:
    from rich.progress import Progress

    cases: list[Case] | None = None
    if args.case or args.cases:
        cases = [as_case(text) for text in args.case or []]
        for path in args.cases or []:
            cases += load_cases(path)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("auditing", total=None)
        report = run(
            cases,
            backends=args.backend,
            ops=args.op,
            dtypes=args.dtype or DTYPES,
            seed=args.seed,
            full=args.full,
            progress=lambda label: bar.update(task, description=label, advance=1),
        )
    print_report(report, console)
    if args.json:
        report.write_json(args.json)
        console.print(f"wrote {args.json}")
    return 0 if report.passed else 1


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``fastcnn check``."""
    parser = sub.add_parser(
        "check",
        help="audit every backend against the reference (the main job)",
        description="Run every available backend on identical inputs and compare it with "
        "the naive reference in float64, including gradients by finite differences. "
        "Exit status: 0 all supported checks passed, 1 something failed, 2 bad usage.",
    )
    parser.add_argument("--full", action="store_true", help="the larger built-in sweep")
    parser.add_argument("--backend", action="append", help="audit only this backend (repeatable)")
    parser.add_argument("--op", action="append", choices=ALL_OPS, help="only this op (repeatable)")
    parser.add_argument("--dtype", action="append", choices=DTYPES, help="only this dtype")
    parser.add_argument(
        "--case",
        action="append",
        metavar="SPEC",
        help="a case such as 'conv2d x=2x3x8x8 w=4x3x3x3 stride=2 padding=1' (repeatable)",
    )
    parser.add_argument("--cases", action="append", metavar="FILE", help="a JSON list of cases")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--json", metavar="PATH", help="write every number to this JSON file")
    parser.set_defaults(run=_cmd_check)
