"""Depthwise 3x3 kernels on the input planes as they lie, for MobileNet's layouts.

Where the padding is one cell (stride 1, every side) or the input exactly twice the output
(stride 2, one cell at the top and left), tap (i, j) of every output cell is a flat offset
into the input plane (stride 1) or into one of its four parity planes (stride 2), so a
whole plane is one vector loop with no rows laid out per tap as :mod:`.depthwise` does.
The taps that wrap into the neighbouring row are dropped by a select on a per-cell mask
(a multiply by zero would keep a NaN there); the rows and cells where a tap would reach
outside the plane are computed apart from the taps that lie in it. On MobileNet's layers
at batch 4 the forward ran 1.4-1.9x faster at stride 1 than the laid-out kernels; at
stride 2 the parity planes pay on wide outputs only (see :data:`FORWARD_MIN_WIDTH`).

Each output cell is written by one task in a fixed order: results are deterministic and
independent of the thread count, and each channel's dW by one task. dX at stride 1 is
:func:`correlate_same` with the kernel turned (:mod:`.depthwise_grad`); dW sums over the
same flat planes as the forward reads.
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
    """Whether the parity planes' kernels can run: stride 2, one cell of padding at the
    top and left, an input twice the output's size (at least 2x2)."""
    return (
        spec.stride == (2, 2)
        and spec.padding[0] == spec.padding[2] == 1
        and spec.height == 2 * spec.out_height
        and spec.width == 2 * spec.out_width
        and min(spec.out_height, spec.out_width) >= 2
    )


#: The parity planes pay on outputs at least this wide; on narrower ones the per-row
#: split costs more than the flat loops save, and the column-halves kernels win. Forward
#: (against :func:`.depthwise._dw_forward_halves` with whole planes per work item on
#: small maps): 1.26-1.28x faster at 48 and 56 columns, 1.09x at 40, even at 36, 1.13x
#: slower at 32. dW (against the whole-plane kernels, which sum several images in one
#: pass): 2.2x faster at 56, 1.3x at 28, 1.15x at 20, 1.2x slower at 14 and 1.6x at 7.
#: Batch 4, float32.
FORWARD_MIN_WIDTH = 36
GRAD_W_MIN_WIDTH = 20


def forward_by_parity(spec: ConvSpec) -> bool:
    """Whether the forward runs :func:`_dw_parity` (see :data:`FORWARD_MIN_WIDTH`)."""
    return parity_planes(spec) and spec.out_width >= FORWARD_MIN_WIDTH


def grad_weight_by_parity(spec: ConvSpec) -> bool:
    """Whether dW runs :func:`_dw_grad_w_parity` (see :data:`GRAD_W_MIN_WIDTH`)."""
    return parity_planes(spec) and spec.out_width >= GRAD_W_MIN_WIDTH


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


def grad_weight_same(grad_y: np.ndarray, x: np.ndarray, grad_w: np.ndarray, width: int) -> None:
    """``grad_w`` of :func:`correlate_same` from ``grad_y`` and ``x`` (planes, H*W)."""
    keep_left, keep_right = inner_columns(x.shape[1] // width, width)
    launch(_dw_grad_w_same, readonly(grad_y), readonly(x), grad_w, width, keep_left, keep_right)


def grad_weight_parity(
    grad_y: np.ndarray, x: np.ndarray, grad_w: np.ndarray, out_width: int
) -> None:
    """``grad_w`` of :func:`correlate_parity` from ``grad_y`` (planes, OH*OW) and ``x``."""
    keep_left = columns(grad_y.shape[1], out_width)[0]
    launch(_dw_grad_w_parity, readonly(grad_y), readonly(x), grad_w, out_width, keep_left)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_same(x, w, b, y, width, keep_left, keep_right):  # pragma: no cover
    """Stride-1 :func:`.depthwise._dw_forward` with one cell of padding on every side (the
    output as large as the input), on maps of at least 3x3: each plane computed from the
    input as it lies, with no column-tap rows.

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
    """Stride-2 :func:`.depthwise._dw_forward` with one cell of padding at the top and
    left, on maps of exactly twice the output's height and width (MobileNet's stride-2
    layers).

    Each plane is split once into its four parity planes (even or odd input rows and
    columns, each as large as the output): output cell q = (r, t) then reads cell
    ``q``, ``q - 1`` (column 2t - 1), ``q - out_w`` (row 2r - 1) or ``q - out_w - 1`` of
    one of them, flat offsets, so rows 1 .. OH-1 are one vector loop. The taps left of
    column 0 (the padding) are dropped by a select on ``keep_left``, row 0 has no
    upper taps, and the bottom and right padding are never read.
    """
    planes, n_ch = x.shape[0], w.shape[0]
    n = y.shape[1]
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
            _split_parity(src, out_w, ee, eo, oe, oo)
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


@njit(cache=True)
def _split_parity(src, out_w, ee, eo, oe, oo):  # pragma: no cover
    """A flat plane of ``2*OH`` rows of ``2*out_w`` into its four parity planes (even
    rows' even and odd columns, then odd rows'), each ``OH*out_w`` flat."""
    width = 2 * out_w
    for r in range(ee.shape[0] // out_w):
        even, odd = src[2 * r * width : (2 * r + 1) * width], src[(2 * r + 1) * width :]
        at = r * out_w
        e0, e1, o0, o1 = ee[at:], eo[at:], oe[at:], oo[at:]
        # Pairs of stride-2 loads, which LLVM vectorises (a lone one it does badly).
        for t in range(out_w):
            e0[t], e1[t] = even[2 * t], even[2 * t + 1]
            o0[t], o1[t] = odd[2 * t], odd[2 * t + 1]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_grad_w_parity(gy, x, dwt, out_w, keep_left):  # pragma: no cover
    """dW where the forward ran :func:`_dw_parity`: per channel, over its images, the nine
    dot products of dY with the parity-plane cells each tap reads there (rows 1 .. OH-1
    flat, in passes of six and three sums; the taps left of column 0 dropped by a select),
    plus row 0 and the first cell of row 1."""
    planes, n_ch = x.shape[0], dwt.shape[0]
    n = gy.shape[1]
    one, up = np.uint64(1), np.uint64(out_w)
    for c in prange(n_ch):
        ee, eo = np.empty(n, dtype=dwt.dtype), np.empty(n, dtype=dwt.dtype)
        oe, oo = np.empty(n, dtype=dwt.dtype), np.empty(n, dtype=dwt.dtype)
        zero = dwt.dtype.type(0)
        a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = zero
        for image in range(planes // n_ch):
            p = image * n_ch + c
            _split_parity(x[p], out_w, ee, eo, oe, oo)
            g = gy[p]
            # LLVM vectorises a loop of at most six sums (nine stay scalar).
            for q in range(out_w + 1, n):
                u = np.uint64(q)
                gv = g[u]
                a00 += gv * oo[u - up - one] if keep_left[u] else zero
                a01 += gv * oe[u - up]
                a02 += gv * oo[u - up]
                a10 += gv * eo[u - one] if keep_left[u] else zero
                a11 += gv * ee[u]
                a12 += gv * eo[u]
            for q in range(out_w + 1, n):
                u = np.uint64(q)
                gv = g[u]
                a20 += gv * oo[u - one] if keep_left[u] else zero
                a21 += gv * oe[u]
                a22 += gv * oo[u]
            # Row 0 (no upper taps), then the first cell of row 1 (no left taps).
            for t in range(1, out_w):
                gv = g[t]
                a10 += gv * eo[t - 1]
                a11 += gv * ee[t]
                a12 += gv * eo[t]
                a20 += gv * oo[t - 1]
                a21 += gv * oe[t]
                a22 += gv * oo[t]
            gv = g[0]
            a11, a12, a21, a22 = (
                a11 + gv * ee[0],
                a12 + gv * eo[0],
                a21 + gv * oe[0],
                a22 + gv * oo[0],
            )
            gv, m = g[out_w], out_w
            a01, a02 = a01 + gv * oe[0], a02 + gv * oo[0]
            a11, a12, a21, a22 = (
                a11 + gv * ee[m],
                a12 + gv * eo[m],
                a21 + gv * oe[m],
                a22 + gv * oo[m],
            )
        dwt[c, 0, 0, 0], dwt[c, 0, 0, 1], dwt[c, 0, 0, 2] = a00, a01, a02
        dwt[c, 0, 1, 0], dwt[c, 0, 1, 1], dwt[c, 0, 1, 2] = a10, a11, a12
        dwt[c, 0, 2, 0], dwt[c, 0, 2, 1], dwt[c, 0, 2, 2] = a20, a21, a22


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_grad_w_same(gy, x, dwt, width, keep_left, keep_right):  # pragma: no cover
    """:func:`.depthwise_grad._dw_grad_w` where the forward ran :func:`_dw_same`: the same
    flat loop over rows 1 .. H-2 of each plane (the taps that wrap into the neighbouring
    row dropped by a select), in two passes of six and three sums; the top and bottom
    rows and the loop's first and last cells from the taps that lie in the input."""
    planes = x.shape[0]
    n_ch = dwt.shape[0]
    height = x.shape[1] // width
    n = (height - 2) * width
    one, up, down = np.uint64(1), np.uint64(width), np.uint64(2 * width)
    for c in prange(n_ch):
        zero = dwt.dtype.type(0)
        a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = zero
        for image in range(planes // n_ch):
            p = image * n_ch + c
            src, g = x[p], gy[p, width : width + n]
            # LLVM vectorises a loop of at most six sums (nine stay scalar).
            for q in range(1, n - 1):
                u = np.uint64(q)
                gv = g[u]
                a00 += gv * src[u - one] if keep_left[u] else zero
                a01 += gv * src[u]
                a02 += gv * src[u + one] if keep_right[u] else zero
                a10 += gv * src[u + up - one] if keep_left[u] else zero
                a11 += gv * src[u + up]
                a12 += gv * src[u + up + one] if keep_right[u] else zero
            for q in range(1, n - 1):
                u = np.uint64(q)
                gv = g[u]
                a20 += gv * src[u + down - one] if keep_left[u] else zero
                a21 += gv * src[u + down]
                a22 += gv * src[u + down + one] if keep_right[u] else zero
            # The loop's first cell (row 1, column 0) and last (row H-2, column W-1).
            gv, m = g[0], width
            a01, a02 = a01 + gv * src[0], a02 + gv * src[1]
            a11, a12 = a11 + gv * src[m], a12 + gv * src[m + 1]
            a21, a22 = a21 + gv * src[2 * m], a22 + gv * src[2 * m + 1]
            gv, e = g[n - 1], (height - 2) * width - 2  # row H-3, column W-2
            a00, a01 = a00 + gv * src[e], a01 + gv * src[e + 1]
            a10, a11 = a10 + gv * src[e + m], a11 + gv * src[e + m + 1]
            a20, a21 = a20 + gv * src[e + 2 * m], a21 + gv * src[e + 2 * m + 1]
            # The top row under kernel rows 1 and 2, the bottom row under rows 0 and 1.
            v0, v1, v2, z0, z1, z2 = _edge_row_grads(gy[p, :width], src[: 2 * width])
            a10, a11, a12, a20, a21, a22 = (
                a10 + v0,
                a11 + v1,
                a12 + v2,
                a20 + z0,
                a21 + z1,
                a22 + z2,
            )
            rows = src[(height - 2) * width :]
            v0, v1, v2, z0, z1, z2 = _edge_row_grads(gy[p, (height - 1) * width :], rows)
            a00, a01, a02, a10, a11, a12 = (
                a00 + v0,
                a01 + v1,
                a02 + v2,
                a10 + z0,
                a11 + z1,
                a12 + z2,
            )
        dwt[c, 0, 0, 0], dwt[c, 0, 0, 1], dwt[c, 0, 0, 2] = a00, a01, a02
        dwt[c, 0, 1, 0], dwt[c, 0, 1, 1], dwt[c, 0, 1, 2] = a10, a11, a12
        dwt[c, 0, 2, 0], dwt[c, 0, 2, 1], dwt[c, 0, 2, 2] = a20, a21, a22


@njit(cache=True, fastmath=FASTMATH)
def _edge_row_grads(g, rows):  # pragma: no cover
    """The six sums of an output row of :func:`_dw_grad_w_same` that reads only the two
    input rows ``rows`` (flat): per kernel column j, ``g[t] * row[t + j - 1]`` over the
    cells inside the row, for the upper row then the lower."""
    width = g.shape[0]
    s0, s1 = rows[:width], rows[width:]
    zero = g.dtype.type(0)
    v0 = v1 = v2 = z0 = z1 = z2 = zero
    for t in range(1, width - 1):
        gv = g[t]
        v0 += gv * s0[t - 1]
        v1 += gv * s0[t]
        v2 += gv * s0[t + 1]
        z0 += gv * s1[t - 1]
        z1 += gv * s1[t]
        z2 += gv * s1[t + 1]
    k = width - 1
    v1, v2, z1, z2 = v1 + g[0] * s0[0], v2 + g[0] * s0[1], z1 + g[0] * s1[0], z2 + g[0] * s1[1]
    v0, v1, z0, z1 = (
        v0 + g[k] * s0[k - 1],
        v1 + g[k] * s0[k],
        z0 + g[k] * s1[k - 1],
        z1 + g[k] * s1[k],
    )
    return v0, v1, v2, z0, z1, z2
