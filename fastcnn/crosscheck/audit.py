"""Running the audit: every check of every backend on every case, in each dtype.

:func:`run` computes each case's reference once (the naive backend in float64) and
hands it to an :class:`Auditor` per backend and dtype, which runs the forward and the
backward call through the public API and records what it finds in a
:class:`~fastcnn.crosscheck.report.Recorder`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastcnn import registry
from fastcnn.cases import (
    JACOBIAN_MAX_CELLS,
    Case,
    as_case,
    default_cases,
    draw,
    exact_cases,
    full_cases,
    make_inputs,
    run_backward,
    run_forward,
    thread_cases,
)
from fastcnn.crosscheck import bounds
from fastcnn.crosscheck.nonfinite import nonfinite_check
from fastcnn.crosscheck.report import (
    DTYPES,
    ERROR,
    MISTRUSTED,
    REFERENCE,
    UNSUPPORTED,
    CheckResult,
    Recorder,
    Report,
    describe,
)
from fastcnn.crosscheck.threads import thread_check
from fastcnn.gradcheck import directional_error, jacobian_error
from fastcnn.ops import PUBLIC_OPS
from fastcnn.spec import make_conv_spec, make_pool_spec
from fastcnn.tolerances import FD_TOLERANCE, abs_error, product_scale, relative_error

Arrays = dict[str, np.ndarray]
Results = list[np.ndarray | None]
_GRAD_NAMES = ("x", "w", "b")

#: A random-data case whose reference output is more than this share of exact zeros
#: proves little (benchdnn's "mistrusted"): it is reported apart from the passes.
MISTRUST_ZEROS = 0.75
#: Sign coherence of errors on all-positive data: ``|sum e| / sqrt(sum e**2)`` is about
#: normal with unit variance when errors are unbiased (rounding to nearest), and about
#: ``sqrt(n)`` when they all lean one way (truncation); above this, the errors are biased.
BIAS_LIMIT = 8.0
#: Thread counts of the invariance check.
THREAD_COUNTS = (1, 2, 3)


def _spec(case: Case, arrays: Arrays) -> Any:
    """The case's normalised spec (4-D), for the bounds' term counts and norms."""
    x = arrays["x"] if arrays["x"].ndim == 4 else arrays["x"][np.newaxis]
    params = case.call_params()
    if case.is_conv:
        return make_conv_spec(x, arrays["w"], bias=case.has_bias, dtype=x.dtype, **params)
    return make_pool_spec(x, case.mode, case.params["kernel"], dtype=x.dtype, **params)


def _batched(a: np.ndarray) -> np.ndarray:
    return a if a.ndim == 4 else a[np.newaxis]


def _scales(case: Case, arrays: Arrays, grad_y: np.ndarray, y: np.ndarray) -> list:
    """The bounds' scales of ``[y, *grads]``: the reference run on absolute inputs."""
    spec = _spec(case, arrays)
    if case.is_conv:
        absolute = {k: np.abs(v) for k, v in arrays.items()}
        mags = [run_forward(case, absolute, REFERENCE)]
        mags += run_backward(case, np.abs(grad_y), absolute, REFERENCE)
        x, w, b = (arrays.get(k) for k in _GRAD_NAMES)
        return bounds.conv_scales(spec, _batched(x), w, b, _batched(grad_y), mags)
    if case.mode == "mean":
        mags = [run_forward(case, {"x": np.abs(arrays["x"])}, REFERENCE)]
    else:
        mags = [np.abs(y)]  # max/min select an input: the error is that input's rounding
    mags += run_backward(case, np.abs(grad_y), arrays, REFERENCE)
    return bounds.pool_scales(spec, mags)


@dataclass
class Reference:
    """A case's float64 inputs, its output gradient, and the reference's results on them."""

    arrays: Arrays
    grad_y: np.ndarray
    y: np.ndarray
    grads: Results
    case: Case
    scales: list = field(default_factory=list)
    _rounded: dict[str, Results] = field(default_factory=dict)

    @classmethod
    def compute(cls, case: Case, rng: np.random.Generator) -> Reference:
        """Draw the case's inputs from ``rng`` and run the reference on them."""
        arrays = make_inputs(case, rng)
        y = run_forward(case, arrays, REFERENCE)
        grad_y = draw(case.data, rng, y.shape)
        grads = run_backward(case, grad_y, arrays, REFERENCE)
        return cls(arrays, grad_y, y, grads, case, _scales(case, arrays, grad_y, y))

    @property
    def mistrusted(self) -> bool:
        """Random data whose forward output is mostly exact zeros: it proves little."""
        random = self.case.inputs is None and self.case.data != "integer"
        return random and self.y.size > 0 and np.mean(self.y == 0) > MISTRUST_ZEROS

    def rounded(self, dtype: str) -> Results:
        """``[y, *grads]`` of the reference (float64) on the inputs rounded to ``dtype``."""
        if dtype not in self._rounded:
            arrays = {k: v.astype(dtype).astype(np.float64) for k, v in self.arrays.items()}
            grad_y = self.grad_y.astype(dtype).astype(np.float64)
            results = [run_forward(self.case, arrays, REFERENCE)]
            self._rounded[dtype] = results + run_backward(self.case, grad_y, arrays, REFERENCE)
        return self._rounded[dtype]

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
        backend = registry.get_backend(self.backend)
        self.model = registry.hook(backend, "error_model")
        self.factor = float(registry.hook(backend, "error_factor"))
        self.exact = self.case.data == "integer"
        self.check = "exact" if self.exact else "reference"

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

        scales = self.ref.scales
        ran = self._check_call(fwd_op, forward, [self.ref.expected], scales[:1], forward=True)
        if ran is not None and not self.exact:
            self._check_inputs(fwd_op, arrays, saved)
        grads = self._check_call(bwd_op, backward, self.ref.grads, scales[1:], forward=False)
        if grads is not None and not self.exact:
            if fd:
                self._finite_differences(bwd_op, grads, jacobian)
            self._check_inputs(bwd_op, inputs, saved)
        # Transforms spread one rounding error over many outputs (an FFT's DC bin over all
        # of them): their errors correlate, so only the others are held to no lean.
        if self.case.data == "positive" and self.model.kind != "fft":
            rounded = self.ref.rounded(self.dtype)
            if ran is not None:
                self._bias(fwd_op, ran, rounded[:1])
            if grads is not None:
                self._bias(bwd_op, grads, rounded[1:])
        if self.ref.mistrusted:
            share = np.mean(self.ref.y == 0)
            for op in self.case.ops:
                self.rec.record(op, "trust", MISTRUSTED, message=f"{share:.0%} of outputs are 0")
        return ran is not None

    def _check_call(
        self, op: str, call: Callable[[], Results], want: Results, scales: list, *, forward: bool
    ) -> Results | None:
        """Against the reference, then twice for bit-identity; None if it could not run."""
        try:
            got = call()
        except registry.BackendUnsupported as exc:
            self.rec.record(op, self.check, UNSUPPORTED, message=str(exc))
            return None
        except Exception as exc:  # the audit reports a crashing backend, it never stops
            self.rec.record(op, self.check, ERROR, message=describe(exc))
            return None
        self._compare(op, got, want, scales, self.ref.floor(forward=forward))
        if not self.exact:
            same = all(same_bits(a, b) for a, b in zip(got, call(), strict=True))
            problems = [] if same else ["two identical calls gave different bits"]
            self.rec.judge(op, "deterministic", problems)
        return got

    def _compare(self, op: str, got: Results, want: Results, scales: list, floor: float) -> None:
        worst, worst_use, problems = 0.0, 0.0, []
        for name, g, r, scale in zip(_GRAD_NAMES, got, want, scales, strict=False):
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
            diff = abs_error(g, r)
            use = bounds.bound_use(
                self.model, scale, diff, self.dtype, exact=self.exact, factor=self.factor
            )
            worst, worst_use = max(worst, err), max(worst_use, use)
            if not use <= 1:
                if self.exact:
                    cells = int(np.count_nonzero(diff))
                    problems.append(f"{label}: {cells} cells differ (integer data)")
                else:
                    kind = self.model.kind
                    problems.append(f"{label}: error {err:.2g} is {use:.3g}x its {kind} bound")
        self.rec.judge(op, self.check, problems, worst, use=worst_use)

    def _bias(self, op: str, got: Results, want: Results) -> None:
        """Errors on positive data must not all lean one way (see :data:`BIAS_LIMIT`)."""
        worst, problems = 0.0, []
        for name, g, r in zip(_GRAD_NAMES, got, want, strict=False):
            if g is None or r is None or g.shape != r.shape or g.size < 64:
                continue
            e = g.astype(np.float64) - r
            norm = float(np.sqrt(np.sum(e * e)))
            lean = abs(float(np.sum(e))) / norm if norm > 0 else 0.0
            lean = lean if np.isfinite(lean) else np.inf
            worst = max(worst, lean)
            if not lean <= BIAS_LIMIT:
                label = name if len(want) > 1 else "result"
                problems.append(f"{label}: errors lean one way ({lean:.3g} sigma): biased")
        self.rec.judge(op, "bias", problems, worst, BIAS_LIMIT)

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


def _audit_case(
    case: Case,
    ref: Reference,
    names: list[str],
    dtypes: Sequence[str],
    wanted: set[str],
    fd: bool,
    nonfinite_done: set[tuple[str, str, str]] | None,
    progress: Callable[[str], None] | None,
    started: set[str],
) -> list[CheckResult]:
    """Every backend and dtype on one case; ``nonfinite_done=None``: no NaN/Inf check."""
    results: list[CheckResult] = []
    for name in names:
        if progress is not None:
            first = "" if name in started else " (first use: may compile kernels, one-time)"
            started.add(name)
            progress(f"{name}: {case.name}{first}")
        for dtype in dtypes:
            recorder = Recorder(name, dtype, case.name)
            ran = Auditor(recorder, ref).run(fd=fd and dtype == "float64", jacobian=ref.tiny)
            key = (name, case.op, dtype)
            plain = case.inputs is None and case.data == "normal"
            if ran and plain and nonfinite_done is not None and key not in nonfinite_done:
                nonfinite_done.add(key)
                nonfinite_check(recorder, case)
            results += [r for r in recorder.sink if r.op in wanted]
    return results


def _exact_backends(names: list[str], case: Case) -> list[str]:
    """Exact mode runs convolution and mean pooling for backends that declare themselves
    exact, and max/min pooling (a choice, no arithmetic) for every backend."""
    if not case.is_conv and case.mode != "mean":
        return names
    return [n for n in names if registry.hook(registry.get_backend(n), "exact")]


def run(
    cases: Iterable[Case | str | dict[str, Any]] | None = None,
    *,
    backends: Sequence[str] | None = None,
    ops: Sequence[str] | None = None,
    dtypes: Sequence[str] = DTYPES,
    seed: int = 0,
    full: bool = False,
    finite_differences: bool = True,
    exact: bool | None = None,
    threads: bool | None = None,
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
    exact : bool, optional
        Exact mode (integer data, bit for bit) on its built-in cases; default: when the
        cases are the built-in ones.
    threads : bool, optional
        Thread-count invariance on its built-in cases; default: as ``exact``.
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
    builtin = cases is None
    results: list[CheckResult] = []
    started: set[str] = set()
    # One non-finite check per backend, op and dtype, on the op's first random-input case.
    nonfinite_done: set[tuple[str, str, str]] = set()
    extra = exact_cases() if (builtin if exact is None else exact) else []
    for index, case in enumerate([*chosen, *extra]):
        wanted = set(case.ops) if ops is None else set(case.ops) & set(ops)
        audited = names if case.data != "integer" else _exact_backends(names, case)
        if not wanted or not audited:
            continue
        ref = Reference.compute(case, np.random.default_rng([seed, index]))
        results += _audit_case(
            case, ref, audited, dtypes, wanted, finite_differences,
            nonfinite_done if case.data != "integer" else None, progress, started,
        )  # fmt: skip
    variant = [n for n in names if not registry.hook(registry.get_backend(n), "thread_invariant")]
    if builtin if threads is None else threads:
        for case in thread_cases():
            wanted = set(case.ops) if ops is None else set(case.ops) & set(ops)
            for name in (n for n in names if n not in variant and wanted):
                if progress is not None:
                    progress(f"{name}: {case.name} with 1, 2, 3 threads")
                for dtype in dtypes:
                    recorder = Recorder(name, dtype, f"threads: {case.name}")
                    thread_check(recorder, case, THREAD_COUNTS)
                    results += [r for r in recorder.sink if r.op in wanted]
    return Report(seed, names, unavailable, results, thread_variant=variant)
