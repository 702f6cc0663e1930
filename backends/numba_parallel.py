"""Direct convolution and pooling as JIT-compiled parallel loops (Numba).

No lowered matrix. The forward convolution (and dX at stride 1, which is one) first lays
the zero-padded input out by stride phase on rows just wider than the output, so that every
kernel tap becomes one contiguous, vectorised run; that copy is made in chunks of images
and channels no larger than the output. Pooling and the strided backward read the input in
place, clipping each tap's range of columns at the padding. Work is split over output
tiles and channel blocks, or over (image x channel) planes, so both cores are busy even at
batch 1. Every output cell is written by exactly one task in a fixed order, so results are
deterministic and the backward pass has no races: dX is owned per (image, channel), dW per
(output channel, input channel).

Threading: Numba picks its layer as usual (TBB if installed, else OpenMP, else workqueue;
NUMBA_THREADING_LAYER overrides). A launch costs about 2 us with OpenMP and 80 us with
workqueue. Two hazards are guarded here: workqueue aborts the process when two Python
threads launch at once, so a lock serialises launches; and GNU OpenMP kills a child forked
after the parent started its threads as soon as the child launches a kernel, so in such a
child every kernel runs its serial twin (the same function compiled without
``parallel=True``: the same arithmetic, on one core). Kernels are compiled on first use
and cached on disk (``cache=True``; Numba falls back to a per-user cache directory when
the package directory is read-only).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.registry import BackendBase, ConvGrads, GradNeed
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec, PoolSpec

#: Output channels computed together, so each input value loaded is used this many times.
_OUT_BLOCK = 4
#: Wide-grid cells per convolution tile: 4 accumulator rows of this many float32 (16 KiB)
#: leave room in a 32 KiB L1 data cache for the input runs they read.
_TILE_CELLS = 1024
#: Accumulator rows are this many bytes past a multiple of 4 KiB apart: rows a multiple of
#: 4 KiB apart alias in the store buffer (measured: 2.4x slower at 1024 float32 cells).
_ROW_SKEW = 1088
#: Inner loops are rounded up to a multiple of this many elements (two AVX2 vectors of
#: float32) so that no scalar remainder loop runs.
_VECTOR_PAD = 16

_POOL_MODE = {"max": 0, "min": 1, "mean": 2}
#: Pooling work is split into at most this many blocks of (image, channel) planes: enough
#: to balance two to a few dozen threads, few enough that per-block scratch is negligible.
_POOL_BLOCKS = 256

# Cost model for backend="auto": seconds = the coefficients below . the features of
# NumbaBackend.cost_features. Convolution: an intercept, the wide-grid features of
# _grid_features, and bytes of the input, its phase copy and the output; the backward has
# dX's grid features (stride 1) or scatter FLOPs (other strides) and dW's FLOPs at stride
# 1 or not. Pooling: an intercept, window-tap bytes and output rows of the general
# kernel, input bytes of the 2x2 one for max/min and for mean.
# Fitted by non-negative least squares on relative error to `fastcnn bench` timings
# (benchmarks/fit_cost_models.py); see there for the suites, machine and fit quality.
# FLOP and byte features scale with the itemsize (float64 has half the SIMD lanes).
_COST = {
    "conv2d": (5.03e-05, 5.37e-12, 1.24e-11, 0.0, 3.14e-09, 9.75e-09, 3.77e-11),
    "conv2d_backward": (
        1.01e-4,
        1.19e-11,
        1.56e-11,
        2.71e-11,
        2.28e-08,
        1.72e-08,
        3.26e-10,
        3.42e-12,
        0.0,
        4.2e-11,
    ),
    "pool2d": (3.78e-05, 3.39e-11, 1.12e-08, 1.83e-11, 9.34e-12),
    "pool2d_backward": (2.66e-05, 8.03e-11, 6.61e-08, 3.19e-10, 4.53e-11),
}


def _column_range(off: int, stride: int, width: int, out_width: int) -> tuple[int, int]:
    """Output columns ``ow`` whose tap column ``ow*stride + off`` lies inside ``[0, width)``."""
    lo = max(0, -(off // stride))
    hi = min(out_width, (width - 1 - off) // stride + 1)
    return lo, hi


_column_range_jit = njit(inline="always", cache=True)(_column_range)


@njit(parallel=True, cache=True)
def _phase_grid(x, xt, sh, sw, top, left, groups, c0, wp, prows, plane):  # pragma: no cover
    """Lay out in-group input channels ``c0 ..`` of each group as padded stride phases.

    Row ``s`` of phase (a, b) in ``xt[g*chunk + k]`` is row ``s % prows`` of
    ``xpad[a::sh, b::sw]`` (the zero-padded input, cut to ``wp`` columns) for image
    ``s // prows`` and channel ``g*cin_g + c0 + k``: the images are stacked, so a tile of
    output rows may span several small images. A zeroed tail follows each phase, for the
    last vector of a run to read.
    """
    n_img, n_ch, height, width = x.shape
    chunk = xt.shape[0] // groups
    cin_g = n_ch // groups
    for j in prange(xt.shape[0]):
        c = (j // chunk) * cin_g + c0 + j % chunk
        out = xt[j]
        for a in range(sh):
            for bb in range(sw):
                base = (a * sw + bb) * plane
                off = bb - left
                for s in range(n_img * prows):
                    n = s // prows
                    r = (s % prows) * sh + a - top
                    dst = out[base + s * wp : base + (s + 1) * wp]
                    if r < 0 or r >= height:
                        dst[:] = 0
                        continue
                    src = x[n, c, r]
                    for t in range(wp):
                        col = t * sw + off
                        dst[t] = src[col] if 0 <= col < width else 0
                out[base + n_img * prows * wp : base + plane] = 0


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_forward_grid(
    xt, w, b, y, sh, sw, dh, dw, groups, c0, wp, prows, plane, accumulate
):  # pragma: no cover
    """Convolution on the "wide grid" of :func:`_phase_grid`: every tap is a flat offset.

    With the input split into stride phases on rows of ``wp = OW + dw*(kw-1)//sw`` cells,
    kernel tap (i, j) of output cell (r, c) reads phase ``(i*dh % sh, j*dw % sw)`` at row
    ``r + i*dh//sh`` and column ``c + j*dw//sw``: the same flat offset for every output cell
    of a tile, so each tap is one long contiguous run that LLVM vectorises. The extra
    ``wp - OW`` columns, and the ``prows - OH`` rows between stacked images, are computed
    and discarded. Three taps of a kernel row and four output channels are fused per pass
    (12 FMAs per 4 stores) for 3-wide kernels, the common case. ``xt`` holds in-group input
    channels ``c0 ..`` of each group; with ``accumulate`` the sums are added to what ``y``
    holds instead of to the bias.
    """
    n_out, _, kh, kw = w.shape
    chunk = xt.shape[0] // groups
    out_h, out_w = y.shape[2], y.shape[3]
    grid_h = y.shape[0] * prows - (prows - out_h)  # stacked rows, the last image's tail cut
    out_g = n_out // groups
    blocks = (out_g + _OUT_BLOCK - 1) // _OUT_BLOCK
    rows = max(1, min(grid_h, _TILE_CELLS // wp))
    tiles = (grid_h + rows - 1) // rows
    padded_len = (rows * wp + _VECTOR_PAD - 1) // _VECTOR_PAD * _VECTOR_PAD
    row_bytes = (padded_len * y.itemsize + 4095) // 4096 * 4096 + _ROW_SKEW
    for task in prange(groups * tiles * blocks):
        # Output blocks vary fastest, so consecutive tasks read the same input tile.
        blk = task % blocks
        tile = (task // blocks) % tiles
        g = task // (blocks * tiles)
        o0 = g * out_g + blk * _OUT_BLOCK
        nb = min(_OUT_BLOCK, (g + 1) * out_g - o0)
        r_lo = tile * rows
        nr = min(rows, grid_h - r_lo)
        # Rounded up to whole vectors: the tail computes discarded cells instead of
        # falling back to scalar code.
        length = (nr * wp + _VECTOR_PAD - 1) // _VECTOR_PAD * _VECTOR_PAD
        acc = np.empty((_OUT_BLOCK, row_bytes // y.itemsize), dtype=y.dtype)
        for k in range(nb):
            if accumulate:
                for rr in range(nr):
                    n, r = divmod(r_lo + rr, prows)
                    if r < out_h:
                        acc[k, rr * wp : rr * wp + out_w] = y[n, o0 + k, r, :]
            else:
                acc[k, :] = b[o0 + k]
        for ci in range(chunk):
            src = xt[g * chunk + ci]
            wc = c0 + ci
            for i in range(kh):
                row0 = (i * dh) % sh * sw * plane + (r_lo + (i * dh) // sh) * wp
                if kw == 3 and nb == _OUT_BLOCK:
                    s1 = row0 + dw % sw * plane + dw // sw
                    s2 = row0 + (2 * dw) % sw * plane + (2 * dw) // sw
                    x0 = src[row0 : row0 + length]
                    x1 = src[s1 : s1 + length]
                    x2 = src[s2 : s2 + length]
                    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
                    w00, w01, w02 = w[o0, wc, i, 0], w[o0, wc, i, 1], w[o0, wc, i, 2]
                    w10, w11, w12 = w[o0 + 1, wc, i, 0], w[o0 + 1, wc, i, 1], w[o0 + 1, wc, i, 2]
                    w20, w21, w22 = w[o0 + 2, wc, i, 0], w[o0 + 2, wc, i, 1], w[o0 + 2, wc, i, 2]
                    w30, w31, w32 = w[o0 + 3, wc, i, 0], w[o0 + 3, wc, i, 1], w[o0 + 3, wc, i, 2]
                    for q in range(length):
                        p, u, v = x0[q], x1[q], x2[q]
                        a0[q] += w00 * p + w01 * u + w02 * v
                        a1[q] += w10 * p + w11 * u + w12 * v
                        a2[q] += w20 * p + w21 * u + w22 * v
                        a3[q] += w30 * p + w31 * u + w32 * v
                else:
                    for k in range(nb):
                        a = acc[k]
                        for j in range(kw):
                            wv = w[o0 + k, wc, i, j]
                            start = row0 + (j * dw) % sw * plane + (j * dw) // sw
                            xs = src[start : start + length]
                            for q in range(length):
                                a[q] += wv * xs[q]
        for rr in range(nr):
            n, r = divmod(r_lo + rr, prows)
            if r < out_h:
                for k in range(nb):
                    y[n, o0 + k, r, :] = acc[k, rr * wp : rr * wp + out_w]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_grad_x(gy, w, dx, sh, sw, dh, dw, top, left, groups):  # pragma: no cover
    """dX by scattering each output's gradient through its window (any stride).

    Each task owns one (image, input channel) plane, so there are no races.
    """
    n_img, n_in, height, width = dx.shape
    n_out, cin_g, kh, kw = w.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    out_g = n_out // groups
    for task in prange(n_img * n_in):
        n = task // n_in
        c = task % n_in
        g = c // cin_g
        ci = c % cin_g
        plane = dx[n, c]
        plane[:, :] = 0
        for o in range(g * out_g, (g + 1) * out_g):
            for oh in range(out_h):
                grow = gy[n, o, oh]
                for i in range(kh):
                    r = oh * sh + i * dh - top
                    if r < 0 or r >= height:
                        continue
                    for j in range(kw):
                        off = j * dw - left
                        lo, hi = _column_range_jit(off, sw, width, out_w)
                        if hi <= lo:
                            continue
                        wv = w[o, ci, i, j]
                        dst = plane[r, lo * sw + off : (hi - 1) * sw + off + 1 : sw]
                        gs = grow[lo:hi]
                        for t in range(hi - lo):
                            dst[t] += wv * gs[t]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_grad_w(gy, x, dwt, sh, sw, dh, dw, top, left, groups):  # pragma: no cover
    """dW as dot products of output-gradient rows with input rows; a task per (o, ci)."""
    n_img, _, height, width = x.shape
    n_out, cin_g, kh, kw = dwt.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    out_g = n_out // groups
    for task in prange(n_out * cin_g):
        o = task // cin_g
        ci = task % cin_g
        c = (o // out_g) * cin_g + ci
        for i in range(kh):
            for j in range(kw):
                off = j * dw - left
                lo, hi = _column_range_jit(off, sw, width, out_w)
                total = dwt.dtype.type(0)
                if hi > lo:
                    for n in range(n_img):
                        for oh in range(out_h):
                            r = oh * sh + i * dh - top
                            if r < 0 or r >= height:
                                continue
                            xs = x[n, c, r, lo * sw + off : (hi - 1) * sw + off + 1 : sw]
                            gs = gy[n, o, oh, lo:hi]
                            for t in range(hi - lo):
                                total += gs[t] * xs[t]
                dwt[o, ci, i, j] = total


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_grad_w_unit(gyw, xpw, dwt, wp, dh, dw, groups):  # pragma: no cover
    """Stride-1 dW as long dot products on the wide grid (see :func:`_conv_forward_grid`).

    ``gyw`` is dY laid on rows of width ``wp`` (zeros past OW) and ``xpw`` the padded
    input on the same grid, so tap (i, j) of dW is the dot product of dY's plane with the
    input plane shifted by ``i*dh*wp + j*dw``: one contiguous, vectorised run per image.
    Three taps of a kernel row share each load of dY. A task per (o, ci) owns its dW.
    """
    n_img = gyw.shape[0]
    n_out, cin_g, kh, kw = dwt.shape
    out_g = n_out // groups
    length = gyw.shape[2]
    for task in prange(n_out * cin_g):
        o = task // cin_g
        ci = task % cin_g
        c = (o // out_g) * cin_g + ci
        for i in range(kh):
            base = i * dh * wp
            if kw == 3:
                s0 = s1 = s2 = dwt.dtype.type(0)
                for n in range(n_img):
                    g = gyw[n, o]
                    x0 = xpw[n, c, base : base + length]
                    x1 = xpw[n, c, base + dw : base + dw + length]
                    x2 = xpw[n, c, base + 2 * dw : base + 2 * dw + length]
                    for q in range(length):
                        gv = g[q]
                        s0 += gv * x0[q]
                        s1 += gv * x1[q]
                        s2 += gv * x2[q]
                dwt[o, ci, i, 0] = s0
                dwt[o, ci, i, 1] = s1
                dwt[o, ci, i, 2] = s2
                continue
            for j in range(kw):
                total = dwt.dtype.type(0)
                for n in range(n_img):
                    g = gyw[n, o]
                    xs = xpw[n, c, base + j * dw : base + j * dw + length]
                    for q in range(length):
                        total += g[q] * xs[q]
                dwt[o, ci, i, j] = total


@njit(inline="always", cache=True)
def _better(v, best, mode):  # pragma: no cover
    """Whether a later cell ``v`` replaces ``best``: strictly more extreme, or the first NaN."""
    more = v > best if mode == 0 else v < best
    return (more | (v != v)) & (best == best)


@njit(inline="always", cache=True)
def _pick(a, b, mode):  # pragma: no cover
    """Max or min (by ``mode``) of ``a`` and then ``b`` under :func:`_better`."""
    return b if _better(b, a, mode) else a


@njit(inline="always", cache=True)
def _mean_divisors(
    oh, out, kh, kw, sh, sw, top, left, height, width, include_pad
):  # pragma: no cover
    """avg_pool2d's divisor for each window of output row ``oh``, into ``out``."""
    r0 = oh * sh - top
    r1 = min(r0 + kh, height + top)
    rows = r1 - r0 if include_pad else min(r1, height) - max(r0, 0)
    for ow in range(out.shape[0]):
        c0 = ow * sw - left
        c1 = min(c0 + kw, width + left)
        cols = c1 - c0 if include_pad else min(c1, width) - max(c0, 0)
        out[ow] = rows * cols


@njit(parallel=True, cache=True)
def _pool_forward(
    x, y, mode, fill, kh, kw, sh, sw, dh, dw, top, left, include_pad
):  # pragma: no cover
    """Separable pooling: reduce the window's rows first, then its columns.

    Max, min and sum are associative and commutative, so a window's result is the
    reduction over its kw columns of each column's reduction over its kh rows. The
    row pass runs over whole contiguous input rows (vectorised) into a row buffer
    that already holds the left/right padding, so the column pass needs no bounds checks.
    """
    n_img, n_ch, width = x.shape[0], x.shape[1], x.shape[3]
    out_w = y.shape[3]
    span = (out_w - 1) * sw + (kw - 1) * dw + 1
    inside = max(0, min(width, span - left))
    planes = n_img * n_ch
    blocks = min(planes, _POOL_BLOCKS)
    for block in prange(blocks):
        # Scratch is allocated once per block of planes, not once per plane.
        buf = np.empty(span, dtype=x.dtype)
        divisor = np.empty(out_w, dtype=y.dtype)
        for plane_index in range(block * planes // blocks, (block + 1) * planes // blocks):
            _pool_plane(
                x,
                y,
                plane_index // n_ch,
                plane_index % n_ch,
                buf,
                divisor,
                mode,
                kh,
                kw,
                sh,
                sw,
                dh,
                dw,
                top,
                left,
                include_pad,
                fill,
                inside,
            )


@njit(inline="always", cache=True)
def _pool_plane(
    x, y, n, c, buf, divisor, mode, kh, kw, sh, sw, dh, dw, top, left, include_pad, fill, inside
):  # pragma: no cover
    """One (image, channel) plane of :func:`_pool_forward`."""
    height, width = x.shape[2], x.shape[3]
    out_h, out_w = y.shape[2], y.shape[3]
    for oh in range(out_h):
        buf[:] = fill
        seg = buf[left : left + inside]
        for i in range(kh):
            r = oh * sh + i * dh - top
            if r < 0 or r >= height:
                continue
            row = x[n, c, r]
            # Branch-free selects, one loop per mode, so that LLVM vectorises the pass.
            if mode == 0:
                for t in range(inside):
                    seg[t] = _pick(seg[t], row[t], 0)
            elif mode == 1:
                for t in range(inside):
                    seg[t] = _pick(seg[t], row[t], 1)
            else:
                for t in range(inside):
                    seg[t] += row[t]
        out = y[n, c, oh]
        out[:] = buf[0 : (out_w - 1) * sw + 1 : sw]
        for j in range(1, kw):
            # One pass per kernel column, over all outputs: a vectorisable select.
            taps = buf[j * dw : j * dw + (out_w - 1) * sw + 1 : sw]
            if mode == 0:
                for t in range(out_w):
                    out[t] = _pick(out[t], taps[t], 0)
            elif mode == 1:
                for t in range(out_w):
                    out[t] = _pick(out[t], taps[t], 1)
            else:
                for t in range(out_w):
                    out[t] += taps[t]
        if mode == 2:
            _mean_divisors(oh, divisor, kh, kw, sh, sw, top, left, height, width, include_pad)
            for t in range(out_w):
                out[t] = out[t] / divisor[t]


@njit(inline="always", cache=True)
def _beats(v, row, best, best_row, mode):  # pragma: no cover
    """Whether cell (v, row) replaces the current extreme (best, best_row).

    Row-major order decides ties: among equal values (or among NaNs, which beat every
    number) the cell in the earlier row wins; within a row the earlier column, because
    columns are visited in order and only strictly better cells replace.
    """
    if v != v:
        return best == best or row < best_row
    if best != best:
        return False
    if v == best:
        return row < best_row
    return v > best if mode == 0 else v < best


@njit(parallel=True, cache=True)
def _pool_backward(
    gy, x, dx, mode, fill, kh, kw, sh, sw, dh, dw, top, left, include_pad
):  # pragma: no cover
    """Routes each output gradient back: to the first extreme (max/min) or evenly (mean).

    Max/min find each window's first extreme separably, like the forward pass: per column
    the best (value, row) over the window's rows, then the best over its columns, with
    ties broken by row-major order, so the winner is exactly np.argmax/np.argmin's over
    the padded window (padding holds -inf or +inf and can only win an all-infinite
    window, whose gradient is then dropped). Each block of planes belongs to one task.
    """
    n_img, n_ch, width = x.shape[0], x.shape[1], x.shape[3]
    out_w = gy.shape[3]
    span = (out_w - 1) * sw + (kw - 1) * dw + 1
    inside = max(0, min(width, span - left))
    planes = n_img * n_ch
    blocks = min(planes, _POOL_BLOCKS)
    for block in prange(blocks):
        best = np.empty(span, dtype=x.dtype)
        best_row = np.empty(span, dtype=np.int64)
        share = np.empty(out_w, dtype=x.dtype)
        for plane_index in range(block * planes // blocks, (block + 1) * planes // blocks):
            _pool_plane_backward(
                gy,
                x,
                dx,
                plane_index // n_ch,
                plane_index % n_ch,
                best,
                best_row,
                share,
                mode,
                kh,
                kw,
                sh,
                sw,
                dh,
                dw,
                top,
                left,
                include_pad,
                fill,
                inside,
            )


@njit(inline="always", cache=True)
def _pool_plane_backward(
    gy,
    x,
    dx,
    n,
    c,
    best,
    best_row,
    share,
    mode,
    kh,
    kw,
    sh,
    sw,
    dh,
    dw,
    top,
    left,
    include_pad,
    fill,
    inside,
):  # pragma: no cover
    """One (image, channel) plane of :func:`_pool_backward`."""
    height, width = x.shape[2], x.shape[3]
    out_h, out_w = gy.shape[2], gy.shape[3]
    plane = dx[n, c]
    plane[:, :] = 0
    for oh in range(out_h):
        grow = gy[n, c, oh]
        if mode == 2:
            _mean_divisors(oh, share, kh, kw, sh, sw, top, left, height, width, include_pad)
            for t in range(out_w):
                share[t] = grow[t] / share[t]
            for i in range(kh):
                r = oh * sh + i - top
                if r < 0 or r >= height:
                    continue
                for j in range(kw):
                    off = j - left
                    lo, hi = _column_range_jit(off, sw, width, out_w)
                    if hi <= lo:
                        continue
                    dst = plane[r, lo * sw + off : (hi - 1) * sw + off + 1 : sw]
                    src = share[lo:hi]
                    for t in range(hi - lo):
                        dst[t] += src[t]
            continue
        first_row = oh * sh - top
        best[:] = fill
        best_row[:] = first_row  # the window's first row, padding or not
        seg, seg_row = best[left : left + inside], best_row[left : left + inside]
        for i in range(kh):
            r = first_row + i * dh
            if r < 0 or r >= height:
                continue  # a padding row never beats what came before it
            row = x[n, c, r]
            for t in range(inside):
                if _beats(row[t], r, seg[t], seg_row[t], mode):
                    seg[t] = row[t]
                    seg_row[t] = r
        for ow in range(out_w):
            at = ow * sw
            for j in range(1, kw):
                k = ow * sw + j * dw
                if _beats(best[k], best_row[k], best[at], best_row[at], mode):
                    at = k
            r, col = best_row[at], at - left
            if 0 <= r < height and 0 <= col < width:
                plane[r, col] += grow[ow]


@njit(parallel=True, cache=True)
def _pool2x2_forward(x, y, mode):  # pragma: no cover
    """2x2 windows at stride 2 that all lie inside the input: the common pooling layer.

    One pass per output row reads both input rows; with the stride a constant, LLVM
    vectorises the even/odd column loads, which the general kernel's runtime stride
    prevents (measured 2-3x faster on 14x14 to 56x56 planes).
    """
    n_img, n_ch = x.shape[0], x.shape[1]
    out_h, out_w = y.shape[2], y.shape[3]
    planes = n_img * n_ch
    for plane_index in prange(planes):
        n, c = plane_index // n_ch, plane_index % n_ch
        for oh in range(out_h):
            top, bottom, out = x[n, c, 2 * oh], x[n, c, 2 * oh + 1], y[n, c, oh]
            if mode == 2:
                for t in range(out_w):
                    out[t] = (top[2 * t] + top[2 * t + 1] + bottom[2 * t] + bottom[2 * t + 1]) / 4
            else:
                for t in range(out_w):
                    first = _pick(top[2 * t], top[2 * t + 1], mode)
                    out[t] = _pick(first, _pick(bottom[2 * t], bottom[2 * t + 1], mode), mode)


@njit(parallel=True, cache=True)
def _pool2x2_backward(gy, x, dx, mode):  # pragma: no cover
    """Backward of :func:`_pool2x2_forward`: each input cell is in at most one window.

    Max/min route each gradient to the window's first extreme in row-major order (the
    first NaN if any), like the general kernel.
    """
    n_img, n_ch, height, width = x.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    planes = n_img * n_ch
    for plane_index in prange(planes):
        n, c = plane_index // n_ch, plane_index % n_ch
        plane = dx[n, c]
        if height > 2 * out_h:  # the odd last row is in no window
            plane[2 * out_h :, :] = 0
        for oh in range(out_h):
            grad = gy[n, c, oh]
            xt, xb = x[n, c, 2 * oh], x[n, c, 2 * oh + 1]
            top, bottom = plane[2 * oh], plane[2 * oh + 1]
            if width > 2 * out_w:
                top[2 * out_w :] = 0
                bottom[2 * out_w :] = 0
            zero = dx.dtype.type(0)  # a bare 0 would make each select float64
            if mode == 2:
                for t in range(out_w):
                    share = grad[t] / 4
                    top[2 * t] = share
                    top[2 * t + 1] = share
                    bottom[2 * t] = share
                    bottom[2 * t + 1] = share
                continue
            for t in range(out_w):
                # Row-major order: only a strictly better cell (or a first NaN) replaces.
                v00, v01, v10, v11 = xt[2 * t], xt[2 * t + 1], xb[2 * t], xb[2 * t + 1]
                best, at = v00, 0
                if _better(v01, best, mode):
                    best, at = v01, 1
                if _better(v10, best, mode):
                    best, at = v10, 2
                if _better(v11, best, mode):
                    at = 3
                g = grad[t]
                top[2 * t] = g if at == 0 else zero
                top[2 * t + 1] = g if at == 1 else zero
                bottom[2 * t] = g if at == 2 else zero
                bottom[2 * t + 1] = g if at == 3 else zero


def _grid_shape(
    out_h: int,
    out_w: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """Wide-grid row length ``wp`` and rows per image ``prows`` of each stride phase."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    return out_w + dw * (kw - 1) // sw, out_h + dh * (kh - 1) // sh


def _grid_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    top: int,
    left: int,
    groups: int,
) -> None:
    """Convolve through :func:`_phase_grid` and :func:`_conv_forward_grid`.

    The phase layout is a padded copy of the input; it is built in chunks of images and of
    in-group input channels (later channel chunks add to ``y``) so that it never takes
    more memory than the output does, unless a single image and channel needs more.
    """
    (sh, sw), (dh, dw) = stride, dilation
    n_img, _, out_h, out_w = y.shape
    _, cin_g, kh, kw = w.shape
    wp, prows = _grid_shape(out_h, out_w, (kh, kw), stride, dilation)
    # Bytes of the phase layout per image and in-group channel (all groups, all phases).
    per_channel = groups * sh * sw * prows * wp * y.itemsize
    chunk = min(cin_g, max(1, y.nbytes // (per_channel * n_img)))
    images = min(n_img, max(1, y.nbytes // (per_channel * chunk)))
    for n0 in range(0, n_img, images):
        n1 = min(n_img, n0 + images)
        plane = (n1 - n0) * prows * wp + wp + _VECTOR_PAD
        for c0 in range(0, cin_g, chunk):
            size = min(chunk, cin_g - c0)
            xt = scratch("numba.phases", (groups * size, sh * sw * plane), y.dtype)
            launch(_phase_grid, x[n0:n1], xt, sh, sw, top, left, groups, c0, wp, prows, plane)
            launch(
                _conv_forward_grid,
                readonly(xt),
                w,
                b,
                y[n0:n1],
                sh,
                sw,
                dh,
                dw,
                groups,
                c0,
                wp,
                prows,
                plane,
                c0 > 0,
            )


def _wide_grid(
    grad_y: np.ndarray, x: np.ndarray, spec: ConvSpec
) -> tuple[np.ndarray, np.ndarray, int]:
    """dY and the padded input laid on rows of ``wp = OW + dw*(kw-1)`` cells.

    Costs one copy of the input and of dY (in this thread's scratch buffers), in exchange
    for dW's inner loops running over whole planes without bounds checks.
    """
    kw, dw = spec.kernel[1], spec.dilation[1]
    top, _, left, _ = spec.padding
    oh, ow = spec.out_height, spec.out_width
    wp, rows = _grid_shape(oh, ow, spec.kernel, (1, 1), spec.dilation)
    gyw = scratch("numba.grad_grid", (spec.batch, spec.out_channels, oh, wp), spec.dtype)
    gyw[:, :, :, :ow] = grad_y
    gyw[:, :, :, ow:] = 0
    # The last taps' runs reach dw*(kw-1) cells past the grid (multiplying dY's zeros).
    tail = dw * (kw - 1)
    xpw = scratch("numba.input_grid", (spec.batch, spec.in_channels, rows * wp + tail), spec.dtype)
    xpw.fill(0)
    grid = xpw[:, :, : rows * wp].reshape(spec.batch, spec.in_channels, rows, wp)
    r0, r1 = max(0, top), min(rows, top + spec.height)
    c0, c1 = max(0, left), min(wp, left + spec.width)
    if r1 > r0 and c1 > c0:
        grid[:, :, r0:r1, c0:c1] = x[:, :, r0 - top : r1 - top, c0 - left : c1 - left]
    return gyw.reshape(spec.batch, spec.out_channels, oh * wp), xpw, wp


def _transposed_padding(spec: ConvSpec) -> tuple[int, int, int, int]:
    """Padding of dY that turns dX into a stride-1 correlation (negative: not possible)."""
    top, bottom, left, right = spec.padding
    (kh, kw), (dh, dw) = spec.kernel, spec.dilation
    return (
        dh * (kh - 1) - top,
        dh * (kh - 1) - bottom,
        dw * (kw - 1) - left,
        dw * (kw - 1) - right,
    )


def _rotated_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """``w`` rotated 180 degrees with in/out channels swapped within each group."""
    out_c, cin_g, kh, kw = w.shape
    per_group = w.reshape(groups, out_c // groups, cin_g, kh, kw)
    swapped = per_group.transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(swapped).reshape(groups * cin_g, out_c // groups, kh, kw)


def _grid_features(
    n_img: int,
    out_h: int,
    out_w: int,
    out_per_group: int,
    in_per_group: int,
    spec: ConvSpec,
    stride: tuple[int, int],
    item: int,
) -> tuple[float, float, float, float, float]:
    """Cost features of one :func:`_conv_forward_grid` run (forward, or dX as a forward).

    FLOPs computed on the wide grid (discarded cells included) by the fused 3-wide path,
    the blocked path and the one-channel (depthwise) path, then the number of inner-loop
    passes and of rows :func:`_phase_grid` copies, whose fixed costs dominate on small
    planes.
    """
    kh, kw = spec.kernel
    wp, prows = _grid_shape(out_h, out_w, spec.kernel, stride, spec.dilation)
    grid_h = n_img * prows
    rows = max(1, min(grid_h, _TILE_CELLS // wp))
    tiles = -(-grid_h // rows)
    blocks = -(-out_per_group // _OUT_BLOCK)
    work = 2.0 * kh * kw * grid_h * wp * spec.groups * out_per_group * in_per_group * item / 4
    fused = kw == 3 and out_per_group >= _OUT_BLOCK
    per_pass = 1 if fused else min(out_per_group, _OUT_BLOCK) * kw
    passes = float(spec.groups * tiles * blocks * in_per_group * kh * per_pass)
    copied_rows = float(grid_h * spec.groups * in_per_group * stride[0] * stride[1])
    if out_per_group == 1:
        return 0.0, 0.0, work, passes, copied_rows
    if fused:
        return work, 0.0, 0.0, passes, copied_rows
    return 0.0, work, 0.0, passes, copied_rows


def _plain_2x2(spec: PoolSpec) -> bool:
    """2x2 windows at stride 2, undilated, unpadded, all inside the input."""
    return (
        spec.kernel == spec.stride == (2, 2)
        and spec.dilation == (1, 1)
        and spec.padding == (0, 0, 0, 0)
        and 2 * spec.out_height <= spec.height
        and 2 * spec.out_width <= spec.width
    )


def _geometry(spec: ConvSpec | PoolSpec) -> tuple[int, ...]:
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    return sh, sw, dh, dw, spec.padding[0], spec.padding[2]


class NumbaBackend(BackendBase):
    """Direct loops compiled by Numba, parallel over images and channels."""

    name = "numba"
    summary = "direct loops JIT-compiled by Numba, parallel over images and channels"
    ops = frozenset({"conv2d", "conv2d_backward", "pool2d", "pool2d_backward"})

    def estimate_seconds(self, op: str, spec: ConvSpec | PoolSpec) -> float:
        """Predicted seconds for ``op`` on ``spec`` (the fitted model above)."""
        return float(np.dot(_COST[op], self.cost_features(op, spec)))

    def cost_features(self, op: str, spec: ConvSpec | PoolSpec) -> tuple[float, ...]:
        """The cost model's features for ``op`` on ``spec`` (see ``_COST``)."""
        item = np.dtype(spec.dtype).itemsize
        if isinstance(spec, PoolSpec):
            x_bytes = spec.batch * spec.channels * spec.height * spec.width * item
            extreme = spec.mode != "mean"
            if _plain_2x2(spec):
                return (1.0, 0.0, 0.0, float(x_bytes * extreme), float(x_bytes * (not extreme)))
            rows = spec.batch * spec.channels * spec.out_height
            return (1.0, float(spec.flops * item), float(rows), 0.0, 0.0)
        cin_g = spec.in_channels // spec.groups
        out_g = spec.out_channels // spec.groups
        x_bytes = spec.batch * spec.in_channels * spec.height * spec.width * item
        y_bytes = spec.batch * spec.out_channels * spec.out_height * spec.out_width * item
        if op == "conv2d":
            grid = _grid_features(
                spec.batch, spec.out_height, spec.out_width, out_g, cin_g, spec, spec.stride, item
            )
            return (1.0, *grid, float(2 * x_bytes + y_bytes))
        flops = spec.flops * item / 4
        if spec.stride == (1, 1) and min(_transposed_padding(spec)) >= 0:
            dx_grid = _grid_features(
                spec.batch, spec.height, spec.width, cin_g, out_g, spec, (1, 1), item
            )
            dx_scatter = 0.0
        else:
            dx_grid, dx_scatter = (0.0, 0.0, 0.0, 0.0, 0.0), flops
        unit = spec.stride == (1, 1)
        dw_unit, dw_strided = (flops, 0.0) if unit else (0.0, flops)
        return (
            1.0,
            *dx_grid,
            dx_scatter,
            dw_unit,
            dw_strided,
            float(3 * x_bytes + 2 * y_bytes),
        )

    def conv2d(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
    ) -> np.ndarray:
        y = np.empty(spec.y_shape, dtype=spec.dtype)
        bias = b if b is not None else np.zeros(spec.out_channels, dtype=spec.dtype)
        top, left = spec.padding[0], spec.padding[2]
        _grid_forward(
            readonly(x),
            readonly(w),
            readonly(bias),
            y,
            spec.stride,
            spec.dilation,
            top,
            left,
            spec.groups,
        )
        return y

    def conv2d_backward(
        self,
        grad_y: np.ndarray,
        x: np.ndarray,
        w: np.ndarray,
        spec: ConvSpec,
        need: GradNeed,
    ) -> ConvGrads:
        gy, xs, ws = readonly(grad_y), readonly(x), readonly(w)
        grad_x = grad_w = None
        if need.x:
            grad_x = np.empty(spec.x_shape, dtype=spec.dtype)
            pads = _transposed_padding(spec)
            if spec.stride == (1, 1) and min(pads) >= 0:
                # With stride 1, dX is the "full" correlation of dY with the kernel
                # rotated 180 degrees and its channel axes swapped: a forward conv.
                rotated = _rotated_kernel(w, spec.groups)
                zero_bias = np.zeros(spec.in_channels, dtype=spec.dtype)
                _grid_forward(
                    gy,
                    readonly(rotated),
                    readonly(zero_bias),
                    grad_x,
                    (1, 1),
                    spec.dilation,
                    pads[0],
                    pads[2],
                    spec.groups,
                )
            else:
                launch(_conv_grad_x, gy, ws, grad_x, *_geometry(spec), spec.groups)
        if need.w:
            grad_w = np.empty(spec.w_shape, dtype=spec.dtype)
            if spec.stride == (1, 1):
                gyw, xpw, wp = _wide_grid(grad_y, x, spec)
                launch(_conv_grad_w_unit, gyw, xpw, grad_w, wp, *spec.dilation, spec.groups)
            else:
                launch(_conv_grad_w, gy, xs, grad_w, *_geometry(spec), spec.groups)
        grad_b = grad_y.sum(axis=(0, 2, 3), dtype=spec.dtype) if need.b else None
        return ConvGrads(grad_x, grad_w, grad_b)

    def pool2d(self, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        y = np.empty(spec.y_shape, dtype=spec.dtype)
        mode = _POOL_MODE[spec.mode]
        if _plain_2x2(spec):
            launch(_pool2x2_forward, readonly(x), y, mode)
            return y
        launch(
            _pool_forward,
            readonly(x),
            y,
            mode,
            spec.pad_value,
            *spec.kernel,
            *_geometry(spec),
            spec.count_include_pad,
        )
        return y

    def pool2d_backward(self, grad_y: np.ndarray, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        grad_x = np.empty(spec.x_shape, dtype=spec.dtype)
        mode = _POOL_MODE[spec.mode]
        if _plain_2x2(spec):
            launch(_pool2x2_backward, readonly(grad_y), readonly(x), grad_x, mode)
            return grad_x
        launch(
            _pool_backward,
            readonly(grad_y),
            readonly(x),
            grad_x,
            mode,
            spec.pad_value,
            *spec.kernel,
            *_geometry(spec),
            spec.count_include_pad,
        )
        return grad_x


backend = NumbaBackend()
