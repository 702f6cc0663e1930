"""Finite-difference checks of gradients, for any function of arrays.

A backward pass given ``grad_y`` returns the gradient of the scalar loss
``L(inputs) = sum(forward(inputs) * grad_y)``; these helpers check it against central
differences of the forward in float64. They know nothing about backends or ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fastcnn.tolerances import FD_STEP, NO_TIE_SPACING, TINY

Forward = Callable[[Sequence[np.ndarray]], np.ndarray]


def _loss(forward: Forward, inputs: Sequence[np.ndarray], grad_y: np.ndarray) -> float:
    return float(np.sum(np.asarray(forward(inputs), dtype=np.float64) * grad_y))


def directional_error(
    forward: Forward,
    inputs: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    grad_y: np.ndarray,
    rng: np.random.Generator,
    *,
    directions: int = 3,
    step: float = FD_STEP,
    floor: float = TINY,
) -> float:
    """Worst error of directional derivatives along random directions.

    For each direction ``v`` (one array per input, scaled so no cell moves more than
    ``step``) the central difference ``(L(x + v) - L(x - v)) / 2`` is compared with
    ``sum_i <grads_i, v_i>``; the error is relative to ``max(|grads|, floor) * |v|``,
    the largest that inner product can be (``floor``, the size of one product term,
    keeps rounding noise around a gradient that is exactly 0 from counting as error).
    """
    grad_norm = np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    worst = 0.0
    for _ in range(directions):
        raw = [rng.standard_normal(x.shape) for x in inputs]
        peak = max((float(np.abs(v).max()) for v in raw if v.size), default=1.0)
        v = [r * (step / peak) for r in raw]
        plus = _loss(forward, [x + d for x, d in zip(inputs, v, strict=True)], grad_y)
        minus = _loss(forward, [x - d for x, d in zip(inputs, v, strict=True)], grad_y)
        numeric = (plus - minus) / 2.0
        analytic = sum(float(np.sum(g * d)) for g, d in zip(grads, v, strict=True))
        v_norm = np.sqrt(sum(float(np.sum(d * d)) for d in v))
        worst = max(worst, abs(numeric - analytic) / max(max(grad_norm, floor) * v_norm, TINY))
    return worst


def jacobian_error(
    forward: Forward,
    inputs: Sequence[np.ndarray],
    backward: Callable[[np.ndarray], Sequence[np.ndarray]],
    *,
    step: float = FD_STEP,
    floor: float = TINY,
) -> float:
    """Normwise relative error of the full Jacobian, for tiny cases.

    Columns come from central differences of ``forward`` (one per input cell); rows from
    ``backward(e_k)`` (one per output cell). Costs 2 * inputs forwards + outputs backwards.
    """
    y0 = np.asarray(forward(inputs), dtype=np.float64)
    n_in = sum(x.size for x in inputs)
    numeric = np.empty((y0.size, n_in))
    col = 0
    for idx, x in enumerate(inputs):
        for flat in range(x.size):
            shifted = []
            for sign in (1.0, -1.0):
                moved = [a.copy() for a in inputs]
                moved[idx].reshape(-1)[flat] += sign * step
                shifted.append(np.asarray(forward(moved), dtype=np.float64).reshape(-1))
            numeric[:, col] = (shifted[0] - shifted[1]) / (2 * step)
            col += 1
    analytic = np.empty_like(numeric)
    for k in range(y0.size):
        basis = np.zeros(y0.size)
        basis[k] = 1.0
        grads = backward(basis.reshape(y0.shape))
        analytic[k] = np.concatenate([np.asarray(g, dtype=np.float64).reshape(-1) for g in grads])
    scale = max(float(np.abs(analytic).max()), floor, TINY)
    return float(np.abs(numeric - analytic).max()) / scale


def tie_free(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float64 values of ``shape`` that are pairwise at least ``NO_TIE_SPACING`` apart.

    For max/min pooling, so that a finite-difference step never changes which cell wins.
    """
    size = int(np.prod(shape))
    values = (rng.permutation(size) - size / 2) * NO_TIE_SPACING
    return values.reshape(shape)
