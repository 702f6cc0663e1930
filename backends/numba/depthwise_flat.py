"""Depthwise 3x3 kernels on the input planes as they lie, for MobileNet's layouts.

Where the padding is one cell (stride 1, every side) or the input exactly twice the output
(stride 2, one cell at the top and left), tap (i, j) of every output cell is a flat offset
into the input plane (stride 1) or into one of its four parity planes (stride 2), so a
whole plane is one vector loop with no rows laid out per tap as :mod:`.depthwise` does.
The taps that wrap into the neighbouring row are dropped by a select on a per-cell mask
(a multiply by zero would keep a NaN there); the rows and cells where a tap would reach
outside the plane are computed apart from the taps that lie in it. On MobileNet's layers
at batch 4 the forward ran 1.4-1.9x faster at stride 1 and 1.2x at stride 2 than the
laid-out kernels.

Each output cell is written by one task in a fixed order: results are deterministic and
independent of the thread count. :mod:`.depthwise_grad` computes dX with
:func:`correlate_same` and dW over the same flat planes.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.spec import ConvSpec

from .geometry import MAX_TASKS


def same_size(spec: ConvSpec) -> bool:
    """Whether the forward and dX run :func:`_dw_same`: stride 1, one cell of padding on
    every side, maps of at least 3x3 (MobileNet's stride-1 layers)."""
    return (
        spec.stride == (1, 1) and spec.padding == (1, 1, 1, 1) and min(spec.height, spec.width) >= 3
    )


def parity_planes(spec: ConvSpec) -> bool:
    """Whether the forward runs :func:`_dw_parity`: stride 2, one cell of padding at the
    top and left, an input twice the output's size (at least 2x2)."""
    return (
        spec.stride == (2, 2)
        and spec.padding[0] == spec.padding[2] == 1
        and spec.height == 2 * spec.out_height
        and spec.width == 2 * spec.out_width
        and min(spec.out_height, spec.out_width) >= 2
    )


@functools.lru_cache(maxsize=16)
def columns(cells: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of ``cells`` (flat rows of ``width``): not in the first column, not in
    the last."""
    column = np.arange(cells) % width
    return readonly(column != 0), readonly(column != width - 1)


def inner_columns(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`columns` of rows 1 .. height-2 of a map."""
    return columns((height - 2) * width, width)


def correlate_same(x: np.ndarray, w: np.ndarray, b: np.ndarray, y: np.ndarray, width: int) -> None:
    """``y`` = the 3x3 correlation of each plane of ``x`` (planes, H*W, rows of ``width``)
    with ``w``'s, plus ``b``, one cell of padding on every side (see :func:`same_size`)."""
    keep_left, keep_right = inner_columns(x.shape[1] // width, width)
    launch(_dw_same, readonly(x), readonly(w), readonly(b), y, width, keep_left, keep_right)


def correlate_parity(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, y: np.ndarray, out_width: int
) -> None:
    """``y`` (planes, OH*OW) = the stride-2 3x3 correlation of each plane of ``x``
    (planes, H*W) with ``w``'s, plus ``b`` (see :func:`parity_planes`)."""
    keep_left = columns(y.shape[1], out_width)[0]
    launch(_dw_parity, readonly(x), readonly(w), readonly(b), y, out_width, keep_left)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_same(x, w, b, y, width, keep_left, keep_right):  # pragma: no cover
    """Stride-1 :func:`_dw_forward` with one cell of padding on every side (the output as
    large as the input), on maps of at least 3x3: each plane computed from the input as
    it lies, with no column-tap rows.

    Output rows 1 .. H-2 are one flat loop over the plane: tap (i, j) of output cell q is
    input cell ``q + (i-1)*W + j - 1``. A cell in the first column reads the previous
    row's last cell as its left taps, and one in the last column the next row's first,
    so those taps pass through a select on ``keep_left`` / ``keep_right`` (per cell of
    the loop: not first / not last column), which drops them even when they hold a NaN
    (a multiply by zero would not). The top and bottom rows, and the loop's first and
    last cells, are computed from the taps that lie in the input.
    """
    planes = x.shape[0]
    n_ch = w.shape[0]
    height = x.shape[1] // width
    n = (height - 2) * width
    zero = y.dtype.type(0)
    one, up, down = np.uint64(1), np.uint64(width), np.uint64(2 * width)
    for p in prange(planes):
        c = p % n_ch
        src, out = x[p], y[p]
        w00, w01, w02 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
        w10, w11, w12 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
        w20, w21, w22 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
        bias = b[c]
        inner = out[width : width + n]
        # Unsigned indices: a signed one costs a wrap-around check that blocks vectorising.
        for q in range(1, n - 1):
            u = np.uint64(q)
            lt = w00 * src[u - one] + w10 * src[u + up - one] + w20 * src[u + down - one]
            mid = w01 * src[u] + w11 * src[u + up] + w21 * src[u + down]
            rt = w02 * src[u + one] + w12 * src[u + up + one] + w22 * src[u + down + one]
            inner[u] = bias + mid + (lt if keep_left[u] else zero) + (rt if keep_right[u] else zero)
        # The first cell of row 1 and the last of row H-2 (outside the loop's range).
        m = width
        inner[0] = bias + (w01 * src[0] + w02 * src[1]) + (w11 * src[m] + w12 * src[m + 1])
        inner[0] += w21 * src[2 * m] + w22 * src[2 * m + 1]
        a = (height - 2) * width - 2  # row H-3, column W-2
        last = (w00 * src[a] + w01 * src[a + 1]) + (w10 * src[a + m] + w11 * src[a + m + 1])
        inner[n - 1] = bias + last + (w20 * src[a + 2 * m] + w21 * src[a + 2 * m + 1])
        # The top row reads input rows 0 and 1 under kernel rows 1 and 2, the bottom row
        # rows H-2 and H-1 under kernel rows 0 and 1.
        rows = src[: 2 * width]
        _edge_row(out[:width], rows, bias, w10, w11, w12, w20, w21, w22)
        rows = src[(height - 2) * width :]
        _edge_row(out[(height - 1) * width :], rows, bias, w00, w01, w02, w10, w11, w12)


@njit(cache=True)
def _edge_row(out, rows, bias, v0, v1, v2, z0, z1, z2):  # pragma: no cover
    """An output row of :func:`_dw_same` that reads only two input rows ``rows`` (flat),
    under kernel rows ``v`` and ``z``.

    Called, not inlined: inlined twice into the parallel loop of :func:`_dw_same`, the
    second copy's last store was lost (Numba 0.68; its serial twin was right).
    """
    width = out.shape[0]
    s0, s1 = rows[:width], rows[width:]
    for t in range(1, width - 1):
        out[t] = (
            bias
            + (v0 * s0[t - 1] + v1 * s0[t] + v2 * s0[t + 1])
            + (z0 * s1[t - 1] + z1 * s1[t] + z2 * s1[t + 1])
        )
    out[0] = bias + (v1 * s0[0] + v2 * s0[1]) + (z1 * s1[0] + z2 * s1[1])
    k = width - 1
    out[k] = bias + (v0 * s0[k - 1] + v1 * s0[k]) + (z0 * s1[k - 1] + z1 * s1[k])


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_parity(x, w, b, y, out_w, keep_left):  # pragma: no cover
    """Stride-2 :func:`_dw_forward` with one cell of padding at the top and left, on
    maps of exactly twice the output's height and width (MobileNet's stride-2 layers).

    Each plane is split once into its four parity planes (even or odd input rows and
    columns, each as large as the output): output cell q = (r, t) then reads cell
    ``q``, ``q - 1`` (column 2t - 1), ``q - out_w`` (row 2r - 1) or ``q - out_w - 1`` of
    one of them, flat offsets, so rows 1 .. OH-1 are one vector loop. The taps left of
    column 0 (the padding) are dropped by a select on ``keep_left``, row 0 has no
    upper taps, and the bottom and right padding are never read.
    """
    planes, n_ch = x.shape[0], w.shape[0]
    width = 2 * out_w
    n = y.shape[1]
    out_h = n // out_w
    tasks = min(planes, MAX_TASKS)
    zero = y.dtype.type(0)
    one, up = np.uint64(1), np.uint64(out_w)
    for task in prange(tasks):
        # Parity planes: even rows' even and odd columns, then odd rows'.
        ee, eo = np.empty(n, dtype=y.dtype), np.empty(n, dtype=y.dtype)
        oe, oo = np.empty(n, dtype=y.dtype), np.empty(n, dtype=y.dtype)
        for p in range(task * planes // tasks, (task + 1) * planes // tasks):
            c = p % n_ch
            src, out = x[p], y[p]
            for r in range(out_h):
                even, odd = src[2 * r * width : (2 * r + 1) * width], src[(2 * r + 1) * width :]
                at = r * out_w
                e0, e1, o0, o1 = ee[at:], eo[at:], oe[at:], oo[at:]
                for t in range(out_w):
                    e0[t], e1[t] = even[2 * t], even[2 * t + 1]
                    o0[t], o1[t] = odd[2 * t], odd[2 * t + 1]
            w00, w01, w02 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
            w10, w11, w12 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
            w20, w21, w22 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
            bias = b[c]
            for q in range(out_w + 1, n):
                u = np.uint64(q)
                lt = w00 * oo[u - up - one] + w10 * eo[u - one] + w20 * oo[u - one]
                mid = w01 * oe[u - up] + w11 * ee[u] + w21 * oe[u]
                rt = w02 * oo[u - up] + w12 * eo[u] + w22 * oo[u]
                out[u] = bias + mid + rt + (lt if keep_left[u] else zero)
            # Row 0 (no row above it) and the first cell of row 1 (the loop's index
            # would go below 0).
            for t in range(1, out_w):
                lt = w10 * eo[t - 1] + w20 * oo[t - 1]
                out[t] = bias + (w11 * ee[t] + w21 * oe[t]) + (w12 * eo[t] + w22 * oo[t]) + lt
            out[0] = bias + (w11 * ee[0] + w21 * oe[0]) + (w12 * eo[0] + w22 * oo[0])
            m = out_w
            mid = w01 * oe[0] + w11 * ee[m] + w21 * oe[m]
            out[m] = bias + mid + (w02 * oo[0] + w12 * eo[m] + w22 * oo[m])
