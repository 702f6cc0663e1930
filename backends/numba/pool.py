"""Pooling: separable max, min and mean kernels, and fused 2x2 ones (Numba kernels and hosts).

The general kernels read the input in place, clipping each tap's range of columns at the
padding, and split the work into blocks of (image, channel) planes, so both cores are busy
even at batch 1. Every output cell is written by exactly one task in a fixed order, so
results are deterministic and the backward pass has no races.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.jit import launch, readonly
from fastcnn.ops import POOL_MODES
from fastcnn.spec import PoolSpec

from .geometry import geometry

#: The kernels' code of each pooling mode. Numba compiles these in as constants, and its
#: disk cache notices edits to this file only: so the ints are fixed here, beside the
#: kernels, not derived from the order of the vocabulary in another module.
MAX, MIN, MEAN = 0, 1, 2
_CODES = {"max": MAX, "min": MIN, "mean": MEAN}
#: Every mode of the vocabulary (:data:`fastcnn.ops.POOL_MODES`) and its kernel code.
POOL_MODE: dict[str, int] = {mode: _CODES[mode] for mode in POOL_MODES}
#: The max/min 2x2 forward on outputs narrower than this runs flat
#: (:func:`_pool2x2_forward_flat`): VGG-16's 512@28 pool ran 1.35x faster and its 256@56
#: one 1.07x, its 128@112 and 64@224 ones 1.9x and 1.3x slower (512@14: even).
FLAT_2X2_WIDTH = 32
#: Pooling work is split into at most this many blocks of (image, channel) planes: enough
#: to balance two to a few dozen threads, few enough that per-block scratch is negligible.
_POOL_BLOCKS = 256


@njit(inline="always", cache=True)
def _better(v, best, mode):  # pragma: no cover
    """Whether a later cell ``v`` replaces ``best``: strictly more extreme, or any NaN
    (PyTorch's rule: a window's gradient goes to its last NaN in row-major order)."""
    more = v > best if mode == MAX else v < best
    return more | (v != v)


@njit(inline="always", cache=True)
def _step(v, k, best, at, mode):  # pragma: no cover
    """The extreme so far and its cell, after cell ``k`` (value ``v``) is visited in
    order under :func:`_better`; two selects, no branch."""
    better = _better(v, best, mode)
    return (v if better else best), (k if better else at)


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
            if mode == MAX:
                for t in range(inside):
                    seg[t] = _pick(seg[t], row[t], MAX)
            elif mode == MIN:
                for t in range(inside):
                    seg[t] = _pick(seg[t], row[t], MIN)
            else:
                for t in range(inside):
                    seg[t] += row[t]
        out = y[n, c, oh]
        out[:] = buf[0 : (out_w - 1) * sw + 1 : sw]
        for j in range(1, kw):
            # One pass per kernel column, over all outputs: a vectorisable select.
            taps = buf[j * dw : j * dw + (out_w - 1) * sw + 1 : sw]
            if mode == MAX:
                for t in range(out_w):
                    out[t] = _pick(out[t], taps[t], MAX)
            elif mode == MIN:
                for t in range(out_w):
                    out[t] = _pick(out[t], taps[t], MIN)
            else:
                for t in range(out_w):
                    out[t] += taps[t]
        if mode == MEAN:
            _mean_divisors(oh, divisor, kh, kw, sh, sw, top, left, height, width, include_pad)
            for t in range(out_w):
                out[t] = out[t] / divisor[t]


@njit(inline="always", cache=True)
def _beats(v, row, best, best_row, mode):  # pragma: no cover
    """Whether cell (v, row) replaces the current extreme (best, best_row).

    Row-major order decides ties: among equal values the cell in the earlier row wins;
    within a row the earlier column, because columns are visited in order and only
    strictly better cells replace. NaN beats every number, and among NaNs the later cell
    in row-major order wins (PyTorch's rule), so a NaN in a later or equal row replaces.
    """
    # One boolean expression, no branches: the kernels use it to select, and on random
    # data a branch per cell mispredicts half the time (with if-statements here and in
    # the callers, the general backward ran ResNet-18's 3x3 stride-2 pool 1.6x slower).
    more = v > best if mode == MAX else v < best
    tie = (v == best) & (row < best_row)
    return ((v != v) & ((best == best) | (row >= best_row))) | (
        (v == v) & (best == best) & (more | tie)
    )


@njit(parallel=True, cache=True)
def _pool_backward(
    gy, x, dx, mode, fill, kh, kw, sh, sw, dh, dw, top, left, include_pad
):  # pragma: no cover
    """Routes each output gradient back: to the first extreme (max/min) or evenly (mean).

    Max/min find each window's first extreme separably, like the forward pass: per column
    the best (value, row) over the window's rows, then the best over its columns, with
    ties broken by row-major order, so the winner is np.argmax/np.argmin's over the
    padded window, or its last NaN if it holds any (padding holds -inf or +inf and can
    only win an all-infinite window, whose gradient is then dropped). Each block of
    planes belongs to one task.
    """
    n_img, n_ch, width = x.shape[0], x.shape[1], x.shape[3]
    out_w = gy.shape[3]
    span = (out_w - 1) * sw + (kw - 1) * dw + 1
    inside = max(0, min(width, span - left))
    planes = n_img * n_ch
    blocks = min(planes, _POOL_BLOCKS)
    for block in prange(blocks):
        best = np.empty(span, dtype=x.dtype)
        best_row = np.empty(span, dtype=np.int32)  # as wide as float32: one vector width
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
        if mode == MEAN:
            # The forward's separable passes transposed: each window's share spread over
            # its columns into one padded row, then that row added to each of the
            # window's input rows. (A view of the plane per window row and column cost
            # more than its few additions on small maps: on ResNet-20's 8x8 global pool
            # at batch 32, 0.35-0.42 ms, 0.01 of a same-size copy's bytes per second.)
            _mean_divisors(oh, share, kh, kw, sh, sw, top, left, height, width, include_pad)
            for t in range(out_w):
                share[t] = grow[t] / share[t]
            spread = best  # the row buffer, padded columns
            spread[:] = 0
            for j in range(kw):
                for t in range(out_w):
                    spread[t * sw + j] += share[t]
            for i in range(kh):
                r = oh * sh + i - top
                if 0 <= r < height:
                    row = plane[r]
                    for t in range(inside):
                        row[t] += spread[left + t]
            continue
        first_row = oh * sh - top
        best[:] = fill
        best_row[:] = first_row  # the window's first row, padding or not
        seg, seg_row = best[left : left + inside], best_row[left : left + inside]
        for i in range(kh):
            r = first_row + i * dh
            if r < 0 or r >= height:
                continue  # a padding row never beats what came before it
            row, r32 = x[n, c, r], np.int32(r)
            for t in range(inside):
                wins = _beats(row[t], r32, seg[t], seg_row[t], mode)
                seg[t] = row[t] if wins else seg[t]
                seg_row[t] = r32 if wins else seg_row[t]
        for ow in range(out_w):
            at = ow * sw
            for j in range(1, kw):
                k = ow * sw + j * dw
                at = k if _beats(best[k], best_row[k], best[at], best_row[at], mode) else at
            r, col = best_row[at], at - left
            if 0 <= r < height and 0 <= col < width:
                plane[r, col] += grow[ow]


@njit(parallel=True, cache=True)
def _pool2x2_forward(x, y, mode):  # pragma: no cover
    """2x2 windows at stride 2 that all lie inside the input: the common pooling layer.

    One pass per output row reads both input rows; with the stride a constant, LLVM
    vectorises the even/odd column loads, which the general kernel's runtime stride prevents.
    """
    n_img, n_ch = x.shape[0], x.shape[1]
    out_h, out_w = y.shape[2], y.shape[3]
    planes = n_img * n_ch
    for plane_index in prange(planes):
        n, c = plane_index // n_ch, plane_index % n_ch
        for oh in range(out_h):
            top, bottom, out = x[n, c, 2 * oh], x[n, c, 2 * oh + 1], y[n, c, oh]
            if mode == MEAN:
                for t in range(out_w):
                    out[t] = (top[2 * t] + top[2 * t + 1] + bottom[2 * t] + bottom[2 * t + 1]) / 4
            else:
                for t in range(out_w):
                    first = _pick(top[2 * t], top[2 * t + 1], mode)
                    out[t] = _pick(first, _pick(bottom[2 * t], bottom[2 * t + 1], mode), mode)


@njit(parallel=True, cache=True)
def _pool2x2_forward_flat(x, y, out_w, mode):  # pragma: no cover
    """Max/min :func:`_pool2x2_forward` on planes of exactly ``2 * out_w`` columns.

    On narrow maps the per-row loops of ``out_w`` cells run mostly in their scalar
    remainders. So each pair of rows is first reduced down its columns (a loop over the
    row's ``2 * out_w`` cells) into ``pairs``, whose even and odd cells are then one
    flat loop over the whole plane's outputs. The four cells are combined columns first,
    which picks the same extreme (NaN if any is NaN); mean pooling keeps the general
    2x2 kernel's order of sums, the reference's.
    """
    planes = x.shape[0]
    n = y.shape[1]
    width = 2 * out_w
    tasks = min(planes, _POOL_BLOCKS)
    for task in prange(tasks):
        pairs = np.empty(2 * n, dtype=y.dtype)
        for p in range(task * planes // tasks, (task + 1) * planes // tasks):
            src, out = x[p], y[p]
            for r in range(n // out_w):
                top, bottom = src[2 * r * width :], src[(2 * r + 1) * width :]
                column = pairs[r * width :]
                for t in range(width):
                    column[t] = _pick(top[t], bottom[t], mode)
            for q in range(n):
                out[q] = _pick(pairs[2 * q], pairs[2 * q + 1], mode)


@njit(parallel=True, cache=True)
def _pool2x2_backward(gy, x, dx, mode):  # pragma: no cover
    """Backward of :func:`_pool2x2_forward`: each input cell is in at most one window.

    Max/min route each gradient to the window's first extreme in row-major order (the
    last NaN if any), like the general kernel: one vector loop finds each window's cell
    (0-3), then the two rows are zeroed and each gradient stored at its cell. One loop
    that branched on the values and stored the gradient or zero in all four cells ran
    5.7x slower (VGG-16's first pooling layer: 9.8 ms against 1.7).
    """
    n_img, n_ch, height, width = x.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    planes = n_img * n_ch
    for plane_index in prange(planes):
        n, c = plane_index // n_ch, plane_index % n_ch
        plane = dx[n, c]
        if height > 2 * out_h:  # the odd last row is in no window
            plane[2 * out_h :, :] = 0
        if mode == MEAN:
            for oh in range(out_h):
                grad = gy[n, c, oh]
                top, bottom = plane[2 * oh], plane[2 * oh + 1]
                top[2 * out_w :] = 0
                bottom[2 * out_w :] = 0
                for t in range(out_w):
                    share = grad[t] / 4
                    top[2 * t] = share
                    top[2 * t + 1] = share
                    bottom[2 * t] = share
                    bottom[2 * t + 1] = share
            continue
        flat = plane.reshape(-1)
        cell = np.empty(out_w, dtype=np.int64)
        for oh in range(out_h):
            xt, xb = x[n, c, 2 * oh], x[n, c, 2 * oh + 1]
            for t in range(out_w):
                # Row-major order: only a strictly better cell (or any NaN) replaces.
                v00, v01, v10, v11 = xt[2 * t], xt[2 * t + 1], xb[2 * t], xb[2 * t + 1]
                best, at = _step(v01, 1, v00, 0, mode)
                best, at = _step(v10, 2, best, at, mode)
                cell[t] = 3 if _better(v11, best, mode) else at
            first = 2 * oh * width
            flat[first : first + 2 * width] = 0
            grad = gy[n, c, oh]
            for t in range(out_w):
                at = cell[t]  # row at // 2, column 2t + at % 2; unsigned: no wrap check
                flat[np.uint64(first + (at >> 1) * width + 2 * t + (at & 1))] = grad[t]


def plain_2x2(spec: PoolSpec) -> bool:
    """2x2 windows at stride 2, undilated, unpadded, all inside the input."""
    return (
        spec.kernel == spec.stride == (2, 2)
        and spec.dilation == (1, 1)
        and spec.padding == (0, 0, 0, 0)
        and 2 * spec.out_height <= spec.height
        and 2 * spec.out_width <= spec.width
    )


def flat_2x2(spec: PoolSpec) -> bool:
    """Whether the forward runs :func:`_pool2x2_forward_flat`: max/min :func:`plain_2x2`
    on rows of exactly twice the output's width, outputs narrower than
    :data:`FLAT_2X2_WIDTH`."""
    return (
        plain_2x2(spec)
        and POOL_MODE[spec.mode] != MEAN
        and spec.width == 2 * spec.out_width
        and spec.out_width < FLAT_2X2_WIDTH
    )


def pool2d(x: np.ndarray, spec: PoolSpec) -> np.ndarray:
    """Max, min or mean pooling of ``x``: the fused 2x2 kernel where it applies."""
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    mode = POOL_MODE[spec.mode]
    if flat_2x2(spec):
        planes = spec.batch * spec.channels
        flat_x, flat_y = readonly(x.reshape(planes, -1)), y.reshape(planes, -1)
        launch(_pool2x2_forward_flat, flat_x, flat_y, spec.out_width, mode)
        return y
    if plain_2x2(spec):
        launch(_pool2x2_forward, readonly(x), y, mode)
        return y
    launch(
        _pool_forward,
        readonly(x),
        y,
        mode,
        spec.pad_value,
        *spec.kernel,
        *geometry(spec),
        spec.count_include_pad,
    )
    return y


def pool2d_backward(grad_y: np.ndarray, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
    """dX of :func:`pool2d`: to each window's first extreme (max/min), or evenly (mean)."""
    grad_x = np.empty(spec.x_shape, dtype=spec.dtype)
    mode = POOL_MODE[spec.mode]
    if plain_2x2(spec):
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
        *geometry(spec),
        spec.count_include_pad,
    )
    return grad_x
