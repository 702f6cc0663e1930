"""Running the audit: every check of every backend on every case, in each dtype.

:func:`run` computes each case's reference once (the naive backend in float64) and
hands it to an :class:`Auditor` per backend and dtype, which runs the forward and the
backward call through the public API and records what it finds in a
:class:`~fastcnn.crosscheck.report.Recorder`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastcnn import registry
from fastcnn.cases import (
    JACOBIAN_MAX_CELLS,
    Case,
    as_case,
    default_cases,
    full_cases,
    make_inputs,
    run_backward,
    run_forward,
)
from fastcnn.crosscheck.nonfinite import nonfinite_check
from fastcnn.crosscheck.report import (
    DTYPES,
    ERROR,
    REFERENCE,
    UNSUPPORTED,
    CheckResult,
    Recorder,
    Report,
    describe,
)
from fastcnn.gradcheck import directional_error, jacobian_error
from fastcnn.ops import PUBLIC_OPS
from fastcnn.tolerances import FD_TOLERANCE, forward_tolerance, product_scale, relative_error

Arrays = dict[str, np.ndarray]
Results = list[np.ndarray | None]
_GRAD_NAMES = ("x", "w", "b")


@dataclass
class Reference:
    """A case's float64 inputs, its output gradient, and the reference's results on them."""

    arrays: Arrays
    grad_y: np.ndarray
    y: np.ndarray
    grads: Results
    case: Case

    @classmethod
    def compute(cls, case: Case, rng: np.random.Generator) -> Reference:
        """Draw the case's inputs from ``rng`` and run the reference on them."""
        arrays = make_inputs(case, rng)
        y = run_forward(case, arrays, REFERENCE)
        grad_y = rng.standard_normal(y.shape)
        return cls(arrays, grad_y, y, run_backward(case, grad_y, arrays, REFERENCE), case)

    @property
    def expected(self) -> np.ndarray:
        """The forward result to compare with: the case's exact one if it has one."""
        return self.y if self.case.expected is None else self.case.expected

    @property
    def tiny(self) -> bool:
        """Small enough for the full-Jacobian check."""
        cells = sum(a.size for a in self.arrays.values())
        return cells <= JACOBIAN_MAX_CELLS and self.y.size <= JACOBIAN_MAX_CELLS

    def floor(self, *, forward: bool) -> float:
        """Size of one product term: the error floor (see tolerances.product_scale)."""
        x, w = self.arrays["x"], self.arrays.get("w")
        if forward:
            return product_scale(x) if w is None else product_scale(x, w)
        if w is None:
            return product_scale(self.grad_y)
        return max(product_scale(self.grad_y, w), product_scale(self.grad_y, x))


def same_bits(a: Any, b: Any) -> bool:
    """Bit-identical arrays (NaN equal to NaN), or both None."""
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def _unusable(label: str, got: Any, want: np.ndarray) -> str | None:
    """Why a result cannot be compared with the reference's, or None if it can."""
    if not isinstance(got, np.ndarray):
        return f"{label}: returned {type(got).__name__}, not an array"
    if got.shape != want.shape:
        return f"{label}: shape {got.shape}, expected {want.shape}"
    return None


class Auditor:
    """Runs the checks of one case for one backend and dtype, into a recorder."""

    def __init__(self, recorder: Recorder, ref: Reference) -> None:
        self.rec, self.ref, self.case = recorder, ref, ref.case
        self.backend, self.dtype = recorder.backend, recorder.dtype
        self.tol = forward_tolerance(self.dtype, registry.get_backend(self.backend))

    def run(self, fd: bool, jacobian: bool) -> bool:
        """Run every check of the case; return whether the backend ran its forward."""
        fwd_op, bwd_op = self.case.ops
        arrays = {k: v.astype(self.dtype) for k, v in self.ref.arrays.items()}
        inputs = {**arrays, "grad_y": self.ref.grad_y.astype(self.dtype)}
        saved = {k: v.copy() for k, v in inputs.items()}

        def forward() -> Results:
            return [run_forward(self.case, arrays, self.backend)]

        def backward() -> Results:
            return run_backward(self.case, inputs["grad_y"], arrays, self.backend)

        ran = self._check_call(fwd_op, forward, [self.ref.expected], forward=True)
        if ran is not None:
            self._check_inputs(fwd_op, arrays, saved)
        grads = self._check_call(bwd_op, backward, self.ref.grads, forward=False)
        if grads is not None:
            if fd:
                self._finite_differences(bwd_op, grads, jacobian)
            self._check_inputs(bwd_op, inputs, saved)
        return ran is not None

    def _check_call(
        self, op: str, call: Callable[[], Results], want: Results, *, forward: bool
    ) -> Results | None:
        """Against the reference, then twice for bit-identity; None if it could not run."""
        try:
            got = call()
        except registry.BackendUnsupported as exc:
            self.rec.record(op, "reference", UNSUPPORTED, message=str(exc))
            return None
        except Exception as exc:  # the audit reports a crashing backend, it never stops
            self.rec.record(op, "reference", ERROR, message=describe(exc))
            return None
        self._compare(op, got, want, self.ref.floor(forward=forward))
        same = all(same_bits(a, b) for a, b in zip(got, call(), strict=True))
        problems = [] if same else ["two identical calls gave different bits"]
        self.rec.judge(op, "deterministic", problems)
        return got

    def _compare(self, op: str, got: Results, want: Results, floor: float) -> None:
        worst, problems = 0.0, []
        for name, g, r in zip(_GRAD_NAMES, got, want, strict=False):
            label = name if len(want) > 1 else "result"
            if r is None:
                if g is not None:
                    problems.append(f"{label}: returned a gradient that should be None")
                continue
            unusable = _unusable(label, g, r)
            if unusable is not None:
                problems.append(unusable)
                continue
            if g.dtype != np.dtype(self.dtype):
                problems.append(f"{label}: dtype {g.dtype}, expected {self.dtype}")
            err = relative_error(g, r, floor)
            worst = max(worst, err)
            if not err <= self.tol:
                problems.append(f"{label}: error {err:.3g} > tolerance {self.tol:.3g}")
        self.rec.judge(op, "reference", problems, worst, self.tol)

    def _check_inputs(self, op: str, arrays: Arrays, saved: Arrays) -> None:
        changed = [k for k in arrays if not np.array_equal(arrays[k], saved[k], equal_nan=True)]
        self.rec.judge(
            op, "inputs", [f"modified its input {', '.join(changed)}"] if changed else []
        )

    def _finite_differences(self, op: str, grads: Results, jacobian: bool) -> None:
        """The gradients against central differences of the backend's own forward."""
        names = [k for k in _GRAD_NAMES if k in self.ref.arrays]
        inputs = [self.ref.arrays[k] for k in names]
        got = [g for g in grads if g is not None][: len(inputs)]
        if len(got) != len(inputs):
            return  # already reported as a reference failure

        def forward(values: Sequence[np.ndarray]) -> np.ndarray:
            return run_forward(self.case, dict(zip(names, values, strict=True)), self.backend)

        def backward(grad_y: np.ndarray) -> list[np.ndarray]:
            at = dict(zip(names, inputs, strict=True))
            return [g for g in run_backward(self.case, grad_y, at, self.backend) if g is not None]

        floor = self.ref.floor(forward=False)
        try:
            rng = np.random.default_rng(0)
            err = directional_error(forward, inputs, got, self.ref.grad_y, rng, floor=floor)
            self.rec.bounded(op, "finite-diff", err, FD_TOLERANCE, "directional derivative error")
            if jacobian:
                err = jacobian_error(forward, inputs, backward, floor=floor)
                self.rec.bounded(op, "jacobian", err, FD_TOLERANCE, "Jacobian error")
        except Exception as exc:
            self.rec.record(op, "finite-diff", ERROR, message=describe(exc))


# --- the run -----------------------------------------------------------------------------------


def _chosen_cases(cases: Iterable[Case | str | dict[str, Any]] | None, full: bool) -> list[Case]:
    if cases is not None:
        return [as_case(c) for c in cases]
    return full_cases() if full else default_cases()


def _check_choices(dtypes: Sequence[str], ops: Sequence[str] | None) -> None:
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} must be one of {DTYPES}")
    unknown = set(ops or ()) - set(PUBLIC_OPS)
    if unknown:
        raise ValueError(f"ops {sorted(unknown)} are not among {PUBLIC_OPS}")


def _audited_backends(backends: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """The named (default: every) backends that are available, and why the others are not."""
    infos = {info.name: info for info in registry.list_backends()}
    names = list(backends) if backends is not None else sorted(infos)
    for name in names:
        registry.check_name(name)
        if name == registry.AUTO:
            raise ValueError("audit named backends; 'auto' is not one")
    unavailable = {n: infos[n].reason or "" for n in names if not infos[n].available}
    return [n for n in names if n not in unavailable], unavailable


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
    chosen = _chosen_cases(cases, full)
    _check_choices(dtypes, ops)
    names, unavailable = _audited_backends(backends)
    results: list[CheckResult] = []
    # One non-finite check per backend, op and dtype, on the op's first random-input case.
    nonfinite_done: set[tuple[str, str, str]] = set()
    for index, case in enumerate(chosen):
        wanted = set(case.ops) if ops is None else set(case.ops) & set(ops)
        if not wanted:
            continue
        ref = Reference.compute(case, np.random.default_rng([seed, index]))
        for name in names:
            if progress is not None:
                progress(f"{name}: {case.name}")
            for dtype in dtypes:
                recorder = Recorder(name, dtype, case.name)
                ran = Auditor(recorder, ref).run(
                    fd=finite_differences and dtype == "float64", jacobian=ref.tiny
                )
                key = (name, case.op, dtype)
                if ran and case.inputs is None and case.op in wanted and key not in nonfinite_done:
                    nonfinite_done.add(key)
                    nonfinite_check(recorder, case)
                results += [r for r in recorder.sink if r.op in wanted]
    return Report(seed=seed, backends=names, unavailable=unavailable, results=results)
