"""Gradients of the stride-2 depthwise 3x3 convolution on rows of twice the output's width.

On small maps (14x14 outputs) per-row loops run mostly in their scalar remainders, so
these kernels work on whole planes in flat loops, as the forward's column-halves kernel
does (:func:`.depthwise._dw_forward_halves`). The input's rows are split into their even
and odd columns by one flat loop, so that column tap j of output column t is one flat
offset into those halves. Output row ``u`` reads input rows ``2u + i``: dY is spread onto
every other row of a grid of ``out_w`` columns (the rows between hold zeros), so that the
rows of the halves and of that grid step together and every tap is one flat offset.

The zeros in the grid multiply real cells: products that the reference never forms. Where
all values are finite they add exact zeros; a non-finite value may turn one into NaN, so
the caller runs the general kernels again when a result is not finite (dW) or the kernel
is not (dX). A plane's dX and a channel's dW are computed within one task in a fixed order
(which task does not matter), so results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.config import get_num_threads
from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.spec import ConvSpec

from .depthwise import block_rows


@njit(inline="always", cache=True)
def _spread(gy, p, u0, nr, half, gz):  # pragma: no cover
    """dY rows ``u0 .. u0+nr`` onto rows ``0, 2, 4 ..`` of ``gz`` (the caller zeroes the rest)."""
    # Unsigned indices into one view: an unsigned index needs no wrap-around select, and
    # every view of an array that the threads share counts a reference atomically on one
    # cache line, which per row cost more than the copy.
    src = gy[p]
    n = np.uint64(half)
    for k in range(nr):
        s, d = np.uint64((u0 + k) * half), np.uint64(2 * k * half)
        for t in range(n):
            gz[d + t] = src[s + t]


@njit(inline="always", cache=True)
def _moved(gz, gs, nr, half, shift):  # pragma: no cover
    """``gs``: the spread dY of ``gz`` moved by ``shift`` (1 or -1) columns, zero past its rows.

    One flat copy: a real row's cell that the move takes past its end reads a zero row; the
    zero row's cell that takes one from a real row is zeroed after.
    """
    n = 2 * nr * half
    if shift == 1:
        src, dst = gz[1 : n + 1], gs[:n]
        edge = 2 * half - 1
    else:
        src, dst = gz[: n - 1], gs[1:n]
        gs[0] = 0
        edge = half
    for q in range(dst.shape[0]):
        dst[q] = src[q]
    for k in range(nr):
        gs[2 * k * half + edge] = 0


#: Cells of the spread dY that dW's dot products cover per pass: small maps then pass over
#: the segments of all images at once, so that the loops are long and reduced rarely.
SEGMENT_CELLS = 4096


def segments(rows: int, half: int, n_img: int, blocks: int) -> int:
    """Segments (an image's block of ``rows`` output rows) per pass of dW's kernel."""
    return max(1, min(n_img * blocks, SEGMENT_CELLS // ((2 * rows + 1) * half)))


@njit(inline="always", cache=True)
def _fill_segment(x, gy, p, u0, nr, width, top, left, ev, od, gz, gm):  # pragma: no cover
    """One segment of :func:`_dw_grad_w_halves`'s scratch: input rows, spread dY rows.

    ``ev`` and ``od`` get the even and odd columns of input rows ``2*u0 - top + k``, zero
    outside the input, ``gz`` dY rows ``u0 ..`` on its even rows (zero between), ``gm``
    the same with the column zero where the tap moved by a column wraps around.
    """
    height, half = x.shape[1] // width, width // 2
    n_rows = 2 * nr + 1
    r0 = 2 * u0 - top
    k_lo = min(n_rows, max(0, -r0))
    k_hi = max(k_lo, min(n_rows, height - r0))
    # Explicit loops: a slice set to a scalar cost more than the copies here.
    for m in range(k_lo * half):
        ev[m] = 0
        od[m] = 0
    for m in range(k_hi * half, n_rows * half):
        ev[m] = 0
        od[m] = 0
    src = x[p, (r0 + k_lo) * width : (r0 + k_hi) * width]
    e, o = ev[k_lo * half : k_hi * half], od[k_lo * half : k_hi * half]
    for m in range((k_hi - k_lo) * half):
        e[m] = src[2 * m]
        o[m] = src[2 * m + 1]
    _spread(gy, p, u0, nr, half, gz)
    for q in range((2 * nr - 1) * half, gz.shape[0]):
        gz[q] = 0  # and the rows a longer block left there
    for q in range(gz.shape[0]):
        gm[q] = gz[q]
    edge = 0 if left == 1 else half - 1
    for k in range(nr):
        gm[2 * k * half + edge] = 0


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_grad_w_halves(gy, x, dwt, width, top, left, rows, per_pass, tasks):  # pragma: no cover
    """dW: per channel, nine flat dot products summed over its images' row blocks.

    The scratch holds ``per_pass`` segments of ``2*rows + 1`` rows (see
    :func:`_fill_segment`) one after another, behind a zero cell; tap (i, j) is the dot
    product of the spread dY with the half holding column ``2t + j - left``, ``i`` rows
    on. A segment's last rows are zero in dY, so its taps never reach the next one.
    """
    n_ch, half = dwt.shape[0], width // 2
    size = per_pass * (2 * rows + 1) * half + 2 * half + 2
    for task in prange(tasks):
        ev, od = np.zeros(size, dtype=dwt.dtype), np.zeros(size, dtype=dwt.dtype)
        gz, gm = np.zeros(size, dtype=dwt.dtype), np.zeros(size, dtype=dwt.dtype)
        for c in range(task * n_ch // tasks, (task + 1) * n_ch // tasks):
            _dw_channel(gy, x, dwt, c, width, top, left, rows, per_pass, ev, od, gz, gm)


@njit(inline="always", cache=True)
def _dw_channel(
    gy, x, dwt, c, width, top, left, rows, per_pass, ev, od, gz, gm
):  # pragma: no cover
    """The nine dW entries of channel ``c`` (see :func:`_dw_grad_w_halves`)."""
    planes, half = x.shape[0], width // 2
    n_ch = dwt.shape[0]
    n_img = planes // n_ch
    out_h = gy.shape[1] // half
    blocks = (out_h + rows - 1) // rows
    items = n_img * blocks
    seg = (2 * rows + 1) * half
    zero = dwt.dtype.type(0)
    a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = zero
    for first in range(0, items, per_pass):
        count = min(per_pass, items - first)
        for s in range(count):
            n, blk = (first + s) // blocks, (first + s) % blocks
            o = 1 + s * seg
            nr = min(rows, out_h - blk * rows)
            e, d, z, m = ev[o : o + seg], od[o : o + seg], gz[o : o + seg], gm[o : o + seg]
            _fill_segment(x, gy, n * n_ch + c, blk * rows, nr, width, top, left, e, d, z, m)
        n = count * seg
        if left == 1:  # columns 2t - 1, 2t, 2t + 1
            f0, f1, f2, s0, s1, s2 = gm[1:], gz[1:], gz[1:], od, ev[1:], od[1:]
        else:  # columns 2t, 2t + 1, 2t + 2
            f0, f1, f2, s0, s1, s2 = gz[1:], gz[1:], gm[1:], ev[1:], od[1:], ev[2:]
        # Slices indexed from 0: an offset index would compile to gathers.
        f0, f1, f2 = f0[:n], f1[:n], f2[:n]
        t0, t1, t2 = s0[:n], s1[:n], s2[:n]
        b0, b1, b2 = s0[half : half + n], s1[half : half + n], s2[half : half + n]
        h2 = 2 * half
        c0, c1, c2 = s0[h2 : h2 + n], s1[h2 : h2 + n], s2[h2 : h2 + n]
        # LLVM vectorises a loop of at most six sums (nine stay scalar).
        for q in range(n):
            a00 += f0[q] * t0[q]
            a01 += f1[q] * t1[q]
            a02 += f2[q] * t2[q]
            a10 += f0[q] * b0[q]
            a11 += f1[q] * b1[q]
            a12 += f2[q] * b2[q]
        for q in range(n):
            a20 += f0[q] * c0[q]
            a21 += f1[q] * c1[q]
            a22 += f2[q] * c2[q]
    dwt[c, 0, 0, 0], dwt[c, 0, 0, 1], dwt[c, 0, 0, 2] = a00, a01, a02
    dwt[c, 0, 1, 0], dwt[c, 0, 1, 1], dwt[c, 0, 1, 2] = a10, a11, a12
    dwt[c, 0, 2, 0], dwt[c, 0, 2, 1], dwt[c, 0, 2, 2] = a20, a21, a22


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_grad_x_halves(gy, w, dx, width, top, left, tasks):  # pragma: no cover
    """dX: a flat loop per plane writes each dX row's even and odd columns together.

    Padded row ``R = r + top`` of dX takes kernel row 0 from dY row ``R/2`` and row 2
    from ``R/2 - 1`` when even, row 1 from ``(R-1)/2`` when odd. With dY row ``u`` on
    grid row ``2u + 2``, those are grid rows ``R + 2``, ``R`` and ``R + 1``, and the ones
    a row of the other parity would read there are the zero rows in between: one formula
    with all nine taps serves both parities, each row's foreign taps adding zeros.
    ``gs`` holds dY moved by the column that tap 0 (``left`` 1) or tap 2 (``left`` 0)
    reaches beyond the output column.
    """
    planes, height, half = dx.shape[0], dx.shape[1] // width, width // 2
    n_ch = w.shape[0]
    out_h = gy.shape[1] // half
    length = max(height + top + 2, 2 * out_h + 2) * half + 1
    shift = 1 if left == 1 else -1
    n = height * half
    for task in prange(tasks):
        gz = np.zeros(length, dtype=dx.dtype)  # the rows between stay zero
        gs = np.zeros(length, dtype=dx.dtype)
        k0, k1, k2 = top * half, (top + 1) * half, (top + 2) * half
        g0, g1, g2 = gz[k0 : k0 + n], gz[k1 : k1 + n], gz[k2 : k2 + n]
        s0, s1, s2 = gs[k0 : k0 + n], gs[k1 : k1 + n], gs[k2 : k2 + n]
        for p in range(task * planes // tasks, (task + 1) * planes // tasks):
            c = p % n_ch
            _spread(gy, p, 0, out_h, half, gz[2 * half :])
            _moved(gz[2 * half :], gs[2 * half :], out_h, half, shift)
            w00, w01, w02 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
            w10, w11, w12 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
            w20, w21, w22 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
            out = dx[p]
            # Column 2t + left of the padded row is odd (taps j = 1) for the even columns
            # of dX when left is 1, for its odd ones when left is 0.
            if left == 1:
                for q in range(n):
                    out[2 * q] = (w01 * g2[q] + w21 * g0[q]) + w11 * g1[q]
                    out[2 * q + 1] = ((w00 * s2[q] + w02 * g2[q]) + (w20 * s0[q] + w22 * g0[q])) + (
                        w10 * s1[q] + w12 * g1[q]
                    )
            else:
                for q in range(n):
                    out[2 * q] = ((w00 * g2[q] + w02 * s2[q]) + (w20 * g0[q] + w22 * s0[q])) + (
                        w10 * g1[q] + w12 * s1[q]
                    )
                    out[2 * q + 1] = (w01 * g2[q] + w21 * g0[q]) + w11 * g1[q]


def _tasks(items: int) -> int:
    """A few tasks per thread: each allocates its scratch once (which partition runs an
    item does not change its result)."""
    return max(1, min(items, 4 * get_num_threads()))


def grad_input(grad_y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray | None:
    """dX, or None where a weight is not finite (its zero products would be NaN)."""
    if not np.isfinite(w).all():
        return None
    grad_x = np.empty(spec.x_shape, dtype=spec.dtype)
    planes = spec.batch * spec.in_channels
    launch(
        _dw_grad_x_halves,
        readonly(grad_y.reshape(planes, -1)),
        readonly(w),
        grad_x.reshape(planes, -1),
        spec.width,
        spec.padding[0],
        spec.padding[2],
        _tasks(planes),
    )
    return grad_x


def grad_weight(grad_y: np.ndarray, x: np.ndarray, spec: ConvSpec) -> np.ndarray | None:
    """dW, or None where it is not finite (a zero product may have made a NaN)."""
    grad_w = np.empty(spec.w_shape, dtype=spec.dtype)
    planes = spec.batch * spec.in_channels
    rows = block_rows(spec.out_height, spec.out_width)
    blocks = -(-spec.out_height // rows)
    launch(
        _dw_grad_w_halves,
        readonly(grad_y.reshape(planes, -1)),
        readonly(x.reshape(planes, -1)),
        grad_w,
        spec.width,
        spec.padding[0],
        spec.padding[2],
        rows,
        segments(rows, spec.out_width, spec.batch, blocks),
        _tasks(spec.in_channels),
    )
    return grad_w if np.isfinite(grad_w).all() else None
