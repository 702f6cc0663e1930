"""The audit's non-finite check: NaN and Inf stay in the windows that hold them.

A backend either keeps them local, as the reference does, or declares that it cannot
(``keeps_nonfinite_local``) and refuses such input when chosen by name.
"""

from __future__ import annotations

import math

import numpy as np

from fastcnn import registry
from fastcnn.cases import Case, make_inputs, run_forward
from fastcnn.crosscheck.report import ERROR, PASS, REFERENCE, Recorder, describe
from fastcnn.tolerances import forward_tolerance, product_scale, relative_error

CHECK = "non-finite"
_KINDS = (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf))


def poisoned_inputs(case: Case) -> dict[str, np.ndarray]:
    """The case's float64 inputs with one NaN and one +Inf in ``x``."""
    arrays = make_inputs(case, np.random.default_rng(1))
    flat = arrays["x"].reshape(-1)
    flat[flat.size // 3] = np.nan
    flat[(2 * flat.size) // 3] = np.inf
    return arrays


def _misplaced(got: np.ndarray, want: np.ndarray) -> list[str]:
    """How the non-finite cells of ``got`` differ from the reference's."""
    if got.shape != want.shape:
        return [f"shape {got.shape}, expected {want.shape}"]
    problems = []
    for name, test in _KINDS:
        if not np.array_equal(test(got), test(want)):
            spread = int(test(got).sum()) - int(test(want).sum())
            problems.append(f"{name} cells differ from the reference ({spread:+d})")
    return problems


def nonfinite_check(recorder: Recorder, case: Case) -> None:
    """Run the case's forward on NaN/Inf input in the recorder's backend and dtype.

    A pass when the non-finite cells match the reference's and the finite ones are
    within the forward tolerance, or when the backend refuses the input as it declares.
    """
    backend = registry.get_backend(recorder.backend)
    arrays = poisoned_inputs(case)
    try:
        want = run_forward(case, arrays, REFERENCE)
        converted = {k: v.astype(recorder.dtype) for k, v in arrays.items()}
        got = run_forward(case, converted, recorder.backend)
    except registry.BackendUnsupported as exc:
        declared = not registry.keeps_nonfinite_local(backend)
        note = "refuses NaN/Inf input, as it declares" if declared else str(exc)
        recorder.record(case.op, CHECK, PASS if declared else ERROR, message=note)
        return
    except Exception as exc:  # the audit reports a crashing backend, it never stops
        recorder.record(case.op, CHECK, ERROR, message=describe(exc))
        return
    problems = _misplaced(got, want)
    tol = forward_tolerance(recorder.dtype, backend)
    err = relative_error(got, want, product_scale(*arrays.values())) if not problems else math.inf
    if not problems and not err <= tol:
        problems.append(f"finite cells: error {err:.3g} > {tol:.3g}")
    recorder.judge(case.op, CHECK, problems, None if problems else err, tol)
