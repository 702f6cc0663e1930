"""The audit's error measure and its fixed tolerances. Never widen one to make a backend pass.

Results are judged against error bounds from analysis (:mod:`fastcnn.crosscheck.bounds`);
the normwise relative error ``max|y - ref| / max(max|ref|, floor)`` against the naive
backend in float64 is still reported beside each bound's use. ``FORWARD_TOLERANCE`` is
the experience-based tolerance the audit used before its bounds (kept to show what those
bounds catch that it let through), and finite differences keep their own tolerance.
"""

from __future__ import annotations

from typing import Any

from fastcnn.registry import hook

#: The former normwise relative tolerance per compute dtype (no longer the verdict).
FORWARD_TOLERANCE: dict[str, float] = {"float32": 5e-5, "float64": 1e-11}

#: Central finite differences in float64: step, and the error allowed relative to the
#: Cauchy-Schwarz scale |grad| * |direction|. Convolution is bilinear and pooling is
#: piecewise linear, so the differences are exact up to rounding (about eps*|L|/step).
FD_STEP = 1e-3
FD_TOLERANCE = 1e-6

#: Max/min pooling inputs are drawn with distinct values at least this far apart, so a
#: finite-difference step (scaled to at most FD_STEP per cell) never swaps the winner.
NO_TIE_SPACING = 1e-2

#: Denominator floor of the relative error, so an all-zero reference does not divide by 0.
TINY = 1e-30


def forward_tolerance(dtype: str, backend: Any = None) -> float:
    """The allowed normwise relative error for ``backend`` computing in ``dtype``."""
    factor = float(hook(backend, "error_factor")) if backend is not None else 1.0
    return FORWARD_TOLERANCE[dtype] * max(factor, 1.0)


def product_scale(*arrays: Any) -> float:
    """The size of one term of the computation: the product of the inputs' largest values.

    Used as the floor of :func:`relative_error`'s denominator, so that an output that is
    exactly 0 in the reference (a window wholly in the padding) is judged against the
    size of the products the algorithm combined, not against 0: an FFT's rounding noise
    of 1e-9 there is not an error of 1e21.
    """
    import numpy as np

    scale = 1.0
    for array in arrays:
        finite = np.abs(np.asarray(array, dtype=np.float64))
        finite = finite[np.isfinite(finite)]
        scale *= float(finite.max()) if finite.size else 0.0
    return scale


def abs_error(actual: Any, reference: Any) -> Any:
    """``|a - r|`` as float64: 0 where both are NaN or the same infinity, inf on a shape
    mismatch (a 1-element array) or where only one is NaN."""
    import numpy as np

    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        return np.array([np.inf])
    with np.errstate(invalid="ignore"):  # inf - inf is handled just below
        diff = np.abs(a - r)
    # NaN where the reference has NaN at the same place counts as agreement.
    both_nan = np.isnan(a) & np.isnan(r)
    same_inf = np.isinf(r) & (a == r)
    diff = np.where(both_nan | same_inf, 0.0, diff)
    return np.where(np.isnan(diff), np.inf, diff)


def relative_error(actual: Any, reference: Any, floor: float = TINY) -> float:
    """Normwise relative error ``max|a - r| / max(max|r|, floor, TINY)``.

    ``inf`` on a shape mismatch or where one has NaN and the other does not; NaN in both,
    or the same infinity in both, count as agreement. ``floor`` is usually
    :func:`product_scale` of the inputs.
    """
    import numpy as np

    r = np.asarray(reference, dtype=np.float64)
    diff = abs_error(actual, r)
    if diff.shape != r.shape:
        return float("inf")
    if r.size == 0:
        return 0.0
    finite_ref = np.abs(r[np.isfinite(r)])
    scale = max(float(finite_ref.max()) if finite_ref.size else 0.0, floor, TINY)
    return float(diff.max()) / scale
