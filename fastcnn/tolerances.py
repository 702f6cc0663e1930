"""Every tolerance the audit uses, in one place. Never widen one to make a backend pass.

Forward and backward results are compared with the normwise relative error
``max|y - ref| / max(max|ref|, tiny)`` against the naive backend computed in float64.
The bound for a dtype covers summation-order rounding over the reductions our cases use
(up to a few thousand terms): float32 rounding (6e-8) times sqrt(terms) with a margin.
An algorithm whose error grows faster than direct summation (an FFT's error scales with
the whole signal's norm rather than the window's) declares ``error_factor`` on the
backend object; the audit multiplies the dtype bound by it and prints both.
"""

from __future__ import annotations

from typing import Any

from fastcnn.registry import hook

#: Normwise relative error allowed against the float64 reference, per compute dtype.
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


def relative_error(actual: Any, reference: Any, floor: float = TINY) -> float:
    """Normwise relative error ``max|a - r| / max(max|r|, floor, TINY)``.

    ``inf`` on a shape mismatch or where one has NaN and the other does not; NaN in both,
    or the same infinity in both, count as agreement. ``floor`` is usually
    :func:`product_scale` of the inputs.
    """
    import numpy as np

    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        return float("inf")
    if r.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):  # inf - inf is handled just below
        diff = np.abs(a - r)
    # NaN where the reference has NaN at the same place counts as agreement.
    both_nan = np.isnan(a) & np.isnan(r)
    same_inf = np.isinf(r) & (a == r)
    diff = np.where(both_nan | same_inf, 0.0, diff)
    if np.isnan(diff).any():
        return float("inf")
    finite_ref = np.abs(r[np.isfinite(r)])
    scale = max(float(finite_ref.max()) if finite_ref.size else 0.0, floor, TINY)
    return float(diff.max()) / scale
