"""Depthwise 3x3 convolution (one input and one output channel per group), stride 1 or 2.

Memory-bound work: each output needs nine multiply-adds on nine neighbouring inputs, so
the kernels aim to read every input row once and keep the arithmetic in vector loops
that are long even on 7x7 and 14x14 maps. As in XNNPACK's ``f32-dwconv2d-chw`` kernels,
one pass over a few input rows produces all nine taps of a few output rows; here the
three column taps of each input row are first laid out as three rows of exactly the
output's width ("column-tap rows", zero where the window reaches into the padding), so
that tap (i, j) of every output cell of a block is one flat offset into those rows and
the whole block (a whole plane on small maps) is one vectorised loop writing the output
in place. At stride 2 the input rows are split by parity, so the offsets stay flat.
MobileNet's paddings take the kernels of :mod:`.depthwise_flat`, which need no such rows.

Work is split into blocks of (image, channel, output-row block) items; every output cell
and every dW entry is written by one item in a fixed order, so results are deterministic
and independent of the thread count. dW sums over images and rows inside one task per
channel; no cell read by a tap only for a discarded position enters a sum, so a NaN in
the input reaches only the outputs and gradient entries whose windows hold it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.spec import ConvSpec

from . import depthwise_flat
from .geometry import MAX_TASKS

#: Output cells per work item: its column-tap rows (3 per input row at stride 1, 6 per two
#: input rows at stride 2) then stay within a core's L2 cache, mostly within L1.
BLOCK_CELLS = 2048


def applies(spec: ConvSpec) -> bool:
    """Whether the depthwise kernels handle ``spec`` (else the general kernels do)."""
    return (
        spec.groups == spec.in_channels == spec.out_channels
        and spec.kernel == (3, 3)
        and spec.dilation == (1, 1)
        and spec.stride in ((1, 1), (2, 2))
    )


def halves(spec: ConvSpec) -> bool:
    """Whether the stride-2 forward runs on even and odd column halves (see the kernel)."""
    return spec.stride == (2, 2) and spec.width == 2 * spec.out_width and spec.padding[2] in (0, 1)


def block_rows(out_h: int, out_w: int) -> int:
    """Output rows per work item."""
    return max(1, min(out_h, BLOCK_CELLS // max(1, out_w)))


@njit(inline="always", cache=True)
def _tap_rows(src, d0, d1, d2, stride, left, width):  # pragma: no cover
    """``dj[t] = src[t*stride + j - left]`` for j = 0, 1, 2 (zero outside the row)."""
    if stride == 1:
        lo, hi = _tap_rows_unit(src, d0, d1, d2, left, width)
    else:
        lo, hi = _tap_rows_two(src, d0, d1, d2, left, width)
    for t in range(lo):
        _edge_taps(src, d0, d1, d2, t, stride, left, width)
    for t in range(hi, d0.shape[0]):
        _edge_taps(src, d0, d1, d2, t, stride, left, width)
    if stride == 2 and d0.shape[0] > 0:
        # Only the last cell of column 2; the caller moves column 0 into the rest.
        _edge_taps(src, d0, d1, d2, d0.shape[0] - 1, stride, left, width)


@njit(cache=True)
def _tap_rows_unit(src, d0, d1, d2, left, width):  # pragma: no cover
    """The inside columns ``lo .. hi`` of :func:`_tap_rows` at stride 1."""
    # Runs indexed from 0 (a slice for each operand): an index that might be negative
    # costs a wrap-around select per element and keeps LLVM from vectorising.
    out_w = d0.shape[0]
    lo = min(out_w, max(0, left))
    hi = max(lo, min(out_w, width - 2 + left))
    n = hi - lo
    e0, e1, e2 = d0[lo:hi], d1[lo:hi], d2[lo:hi]
    s0, s1, s2 = src[lo - left : hi - left], src[lo - left + 1 :], src[lo - left + 2 :]
    for t in range(n):
        e0[t] = s0[t]
    for t in range(n):
        e1[t] = s1[t]
    for t in range(n):
        e2[t] = s2[t]
    return lo, hi


@njit(cache=True)
def _tap_rows_two(src, d0, d1, d2, left, width):  # pragma: no cover
    """The inside columns ``lo .. hi`` of :func:`_tap_rows` at stride 2."""
    out_w = d0.shape[0]
    lo = min(out_w, max(0, (left + 1) // 2))
    hi = max(lo, min(out_w, (width - 3 + left) // 2 + 1))
    n = hi - lo
    e0, e1 = d0[lo:hi], d1[lo:hi]
    s0 = src[2 * lo - left :]
    # LLVM vectorises a literal-stride pair of loads (even and odd cells) well, a lone
    # stride-2 load poorly: column 2 is column 0 moved by one, which the caller copies
    # for the whole block at once (read right after the stores here, the moved loads
    # stall on store forwarding).
    for t in range(n):
        e0[t] = s0[2 * t]
        e1[t] = s0[2 * t + 1]
    return lo, hi


@njit(inline="always", cache=True)
def _edge_taps(src, d0, d1, d2, t, stride, left, width):  # pragma: no cover
    """Column ``t`` of :func:`_tap_rows` where the window reaches past the row."""
    zero = d0.dtype.type(0)
    c = t * stride - left
    d0[t] = src[c] if 0 <= c < width else zero
    d1[t] = src[c + 1] if 0 <= c + 1 < width else zero
    d2[t] = src[c + 2] if 0 <= c + 2 < width else zero


@njit(inline="always", cache=True)
def _fill_flat(plane, r0, n_rows, left, width, taps):  # pragma: no cover
    """:func:`_fill_block` at stride 1 when the output is as wide as the input.

    Then column-tap row j of the block is the flat input shifted by ``j - left`` cells,
    with the cells whose window column falls outside the row (where the shift wrapped
    into the neighbouring row) set to zero: three long copies instead of three short
    ones per row, which is what keeps 14x14 and 7x7 maps fast.
    """
    height = plane.shape[0] // width
    k_lo = min(n_rows, max(0, -r0))
    k_hi = max(k_lo, min(n_rows, height - r0))
    total = plane.shape[0]
    for j in range(3):
        row = taps[j]
        row[: k_lo * width] = 0
        row[k_hi * width : n_rows * width] = 0
        start = (r0 + k_lo) * width + j - left
        n = (k_hi - k_lo) * width
        a = min(n, max(0, -start))
        e = max(a, min(n, total - start))
        dst = row[k_lo * width : k_hi * width]
        dst[:a] = 0
        dst[e:] = 0
        run, src = dst[a:e], plane[start + a : start + e]
        for t in range(e - a):
            run[t] = src[t]
        # Window columns left of the row or right of it read the padding.
        for t in range(max(0, left - j)):
            for k in range(k_lo, k_hi):
                row[k * width + t] = 0
        for t in range(max(0, width + left - j), width):
            for k in range(k_lo, k_hi):
                row[k * width + t] = 0


@njit(inline="always", cache=True)
def _fill_block(x, p, oh0, nr, stride, top, left, out_w, taps):  # pragma: no cover
    """Column-tap rows of the input rows that output rows ``oh0 .. oh0+nr`` read.

    At stride 1, input row k of the block goes to ``taps[j, k*out_w ..]``; at stride 2,
    to ``taps[3*(k % 2) + j, (k // 2)*out_w ..]``.
    """
    height, width = x.shape[1], x.shape[2]
    if stride == 1 and out_w == width:
        _fill_flat(x[p].reshape(height * width), oh0 - top, nr + 2, left, width, taps)
        return
    n_rows = (nr - 1) * stride + 3
    r0 = oh0 * stride - top
    k_lo = min(n_rows, max(0, -r0))
    k_hi = max(k_lo, min(n_rows, height - r0))
    # Rows outside the input in loops of their own: a row loop that branches on the
    # row being inside ran the copies several times slower.
    for k in range(n_rows - k_hi + k_lo):
        k = k if k < k_lo else k - k_lo + k_hi  # the rows above, then those below
        base, u = (3 * (k % 2), k // 2) if stride == 2 else (0, k)
        for j in range(3):
            taps[base + j, u * out_w : (u + 1) * out_w] = 0
    for k in range(k_lo, k_hi):
        base, u = (3 * (k % 2), k // 2) if stride == 2 else (0, k)
        d0 = taps[base, u * out_w : (u + 1) * out_w]
        d1 = taps[base + 1, u * out_w : (u + 1) * out_w]
        d2 = taps[base + 2, u * out_w : (u + 1) * out_w]
        _tap_rows(x[p, r0 + k], d0, d1, d2, stride, left, width)
    if stride == 2:
        # Column 2 at output column t is column 0 at t + 1, but for each row's last cell.
        for a in range(2):
            rows = (n_rows - a + 1) // 2
            last = np.empty(rows, dtype=taps.dtype)
            for u in range(rows):
                last[u] = taps[3 * a + 2, (u + 1) * out_w - 1]
            moved, run = taps[3 * a, 1 : rows * out_w], taps[3 * a + 2, : rows * out_w - 1]
            for q in range(rows * out_w - 1):
                run[q] = moved[q]
            for u in range(rows):
                taps[3 * a + 2, (u + 1) * out_w - 1] = last[u]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_forward(x, w, b, y, out_w, stride, top, left, rows):  # pragma: no cover
    """``y[p]`` (flat planes) = the 3x3 correlation of ``x[p]`` with ``w[p % C]``, plus bias."""
    planes = x.shape[0]
    n_ch = w.shape[0]
    out_h = y.shape[1] // out_w
    blocks = (out_h + rows - 1) // rows
    items = planes * blocks
    tasks = min(items, MAX_TASKS)
    for task in prange(tasks):
        taps = np.empty((3 * stride, (rows + 2) * out_w + 1), dtype=y.dtype)
        for item in range(task * items // tasks, (task + 1) * items // tasks):
            p, blk = item // blocks, item % blocks
            c = p % n_ch
            oh0 = blk * rows
            nr = min(rows, out_h - oh0)
            _fill_block(x, p, oh0, nr, stride, top, left, out_w, taps)
            out = y[p, oh0 * out_w : (oh0 + nr) * out_w]
            w00, w01, w02 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
            w10, w11, w12 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
            w20, w21, w22 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
            bias = b[c]
            n = nr * out_w
            # Every run is a slice indexed from 0, so that LLVM sees no negative index to
            # wrap around and vectorises the loop.
            odd = 3 * (stride - 1)
            m = out_w if stride == 1 else 0  # kernel row 1: the next row / the odd phase
            a0, a1, a2 = taps[0, :n], taps[1, :n], taps[2, :n]
            b0, b1, b2 = taps[odd, m : m + n], taps[odd + 1, m : m + n], taps[odd + 2, m : m + n]
            s2 = m + out_w
            c0, c1, c2 = taps[0, s2 : s2 + n], taps[1, s2 : s2 + n], taps[2, s2 : s2 + n]
            # Two passes: LLVM vectorises a loop only while it needs at most 8 run-time
            # checks that the output does not overlap what the loop reads.
            for q in range(n):
                out[q] = (
                    bias
                    + (w00 * a0[q] + w01 * a1[q] + w02 * a2[q])
                    + (w10 * b0[q] + w11 * b1[q] + w12 * b2[q])
                )
            for q in range(n):
                out[q] += w20 * c0[q] + w21 * c1[q] + w22 * c2[q]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_forward_halves(x, w, b, y, out_w, top, left, rows):  # pragma: no cover
    """Stride-2 :func:`_dw_forward` for even rows of ``2 * out_w`` cells, ``left`` 0 or 1.

    Short rows make per-row loops slow, so a block's input rows are split into their even
    and odd columns by one flat loop over the block (``ev`` and ``od``, rows of ``out_w``
    cells), and column tap j of output column t is then cell t of ``ev``, ``od`` or a
    copy of one moved by a cell (``mv``, zero where the window reaches into the padding).
    Output row ``oh`` reads rows ``2*oh + i`` of those: at a pitch of two rows the taps
    are flat offsets, so the block is computed flat with every other row of results
    thrown away, and the kept rows are copied out.
    """
    planes, height, width = x.shape
    n_ch = w.shape[0]
    out_h = y.shape[1] // out_w
    blocks = (out_h + rows - 1) // rows
    items = planes * blocks
    tasks = min(items, MAX_TASKS)
    half = out_w
    for task in prange(tasks):
        ev = np.empty((2 * rows + 2) * half, dtype=y.dtype)
        od = np.empty((2 * rows + 2) * half, dtype=y.dtype)
        mv = np.empty((2 * rows + 2) * half, dtype=y.dtype)
        acc = np.empty(2 * rows * half, dtype=y.dtype)
        for item in range(task * items // tasks, (task + 1) * items // tasks):
            p, blk = item // blocks, item % blocks
            c = p % n_ch
            oh0 = blk * rows
            nr = min(rows, out_h - oh0)
            n_rows = 2 * nr + 2
            r0 = 2 * oh0 - top
            k_lo = min(n_rows, max(0, -r0))
            k_hi = max(k_lo, min(n_rows, height - r0))
            ev[: k_lo * half] = 0
            od[: k_lo * half] = 0
            ev[k_hi * half : n_rows * half] = 0
            od[k_hi * half : n_rows * half] = 0
            src = x[p].reshape(height * width)[(r0 + k_lo) * width : (r0 + k_hi) * width]
            e, o = ev[k_lo * half : k_hi * half], od[k_lo * half : k_hi * half]
            for m in range((k_hi - k_lo) * half):
                e[m] = src[2 * m]
                o[m] = src[2 * m + 1]
            cells = n_rows * half
            if left == 1:
                # Tap 0 reads column 2t - 1: the odd column of t - 1, zero at t = 0.
                moved, run = od[: cells - 1], mv[1:cells]
                for m in range(cells - 1):
                    run[m] = moved[m]
                for k in range(n_rows):
                    mv[k * half] = 0
                t0, t1, t2 = mv, ev, od
            else:
                # Tap 2 reads column 2t + 2: the even column of t + 1, zero past the row.
                moved, run = ev[1:cells], mv[: cells - 1]
                for m in range(cells - 1):
                    run[m] = moved[m]
                for k in range(n_rows):
                    mv[(k + 1) * half - 1] = 0
                t0, t1, t2 = ev, od, mv
            w00, w01, w02 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
            w10, w11, w12 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
            w20, w21, w22 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
            bias = b[c]
            n = 2 * nr * half
            a0, a1, a2 = t0[:n], t1[:n], t2[:n]
            b0, b1, b2 = t0[half : half + n], t1[half : half + n], t2[half : half + n]
            c0, c1, c2 = (
                t0[2 * half : 2 * half + n],
                t1[2 * half : 2 * half + n],
                t2[2 * half : 2 * half + n],
            )
            out = acc[:n]
            for q in range(n):
                out[q] = (
                    bias
                    + (w00 * a0[q] + w01 * a1[q] + w02 * a2[q])
                    + (w10 * b0[q] + w11 * b1[q] + w12 * b2[q])
                )
            for q in range(n):
                out[q] += w20 * c0[q] + w21 * c1[q] + w22 * c2[q]
            for k in range(nr):
                dst, kept = y[p, (oh0 + k) * half : (oh0 + k + 1) * half], acc[2 * k * half :]
                for t in range(half):
                    dst[t] = kept[t]


def _flat(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) as (N*C, H*W), no copy (the arrays are C-contiguous)."""
    n, c, h, w = a.shape
    return a.reshape(n * c, h * w)


def _planes(a: np.ndarray) -> np.ndarray:
    n, c, h, w = a.shape
    return a.reshape(n * c, h, w)


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The depthwise convolution of ``x`` with ``w`` plus ``b``."""
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    if depthwise_flat.same_size(spec):
        depthwise_flat.correlate_same(_flat(x), w, b, _flat(y), spec.width)
        return y
    if depthwise_flat.forward_by_parity(spec):
        depthwise_flat.correlate_parity(_flat(x), w, b, _flat(y), spec.out_width)
        return y
    rows = block_rows(spec.out_height, spec.out_width)
    top, left = spec.padding[0], spec.padding[2]
    if halves(spec):
        launch(
            _dw_forward_halves,
            readonly(_planes(x)),
            readonly(w),
            readonly(b),
            _flat(y),
            spec.out_width,
            top,
            left,
            rows,
        )
        return y
    launch(
        _dw_forward,
        readonly(_planes(x)),
        readonly(w),
        readonly(b),
        _flat(y),
        spec.out_width,
        spec.stride[0],
        top,
        left,
        rows,
    )
    return y
