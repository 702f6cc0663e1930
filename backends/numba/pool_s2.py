"""Max/min pooling over 3x3 windows at stride 2 (ResNet's pooling layer), both ways.

Kept apart from :mod:`.pool`'s general kernels, whose ``_pick`` and ``_better`` rules (the
first extreme in row-major order, the last NaN if any) they share, so that the values and
the cells a gradient goes to are the general kernels'. Numba's disk cache checks only this
file: after editing those rules in :mod:`.pool`, clear the package's ``__pycache__``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.spec import PoolSpec

from .geometry import MAX_TASKS
from .pool import MAX, MEAN, MIN, POOL_MODE, _beats, _pick, _step

#: Output cells per block of the 3x3 stride-2 kernel: its row buffers stay in L1.
_BLOCK_CELLS = 2048
#: Dtypes whose forward tries :func:`_block3x3_plain` first. On ResNet-18's pool (float32,
#: interleaved) it ran 1.25-1.3x faster than :func:`_block3x3` alone; in float64 it ran
#: 1.2-1.6x slower, so float64 keeps the NaN-aware kernel.
PLAIN_DTYPES = frozenset({np.dtype(np.float32)})
#: Columns per vector: the windows' pass copies whole vectors of a row (see
#: :func:`_windows_row`).
_LANES = 16


@njit(parallel=True, cache=True)
def _pool3x3s2_forward(x, y, mode, fill, top, left, rows, plain, split):  # pragma: no cover
    """Max/min 3x3 windows at stride 2 with padding 0 or 1: ResNet's pooling layer.

    With ``plain`` (see :data:`PLAIN_DTYPES`), each block of output rows first runs
    :func:`_block3x3_plain`, whose selects ignore NaN, and is redone by :func:`_block3x3`
    only if it read a NaN. Both reduce rows first, then columns in order, as the general
    kernel does. Every output cell is written by one task.
    """
    n_img, n_ch = x.shape[0], x.shape[1]
    out_h = y.shape[2]
    blocks = (out_h + rows - 1) // rows
    items = n_img * n_ch * blocks
    tasks = min(items, MAX_TASKS)
    for task in prange(tasks):
        # Row buffers both kernels use: the plain one's padded rows and their even and
        # odd columns (``pair`` as ``odd``), the fallback's pairs and even columns.
        pair = np.empty(split, dtype=x.dtype)
        even = np.empty(split, dtype=x.dtype)
        padded = np.empty((2, 2 * split), dtype=x.dtype)
        for item in range(task * items // tasks, (task + 1) * items // tasks):
            plane, blk = item // blocks, item % blocks
            n, c = plane // n_ch, plane % n_ch
            oh0 = blk * rows
            nr = min(rows, out_h - oh0)
            if plain and _block3x3_plain(
                x, y, n, c, oh0, nr, padded, even, pair, split, fill, top, left, mode
            ):
                continue
            # The mode as a literal in each call, so that the selects have no branch.
            if mode == MAX:
                _block3x3(x, y, n, c, oh0, nr, pair, even, fill, top, left, MAX)
            else:
                _block3x3(x, y, n, c, oh0, nr, pair, even, fill, top, left, MIN)


@njit(cache=True, fastmath=FASTMATH)
def _block3x3_plain(
    x, y, n, c, oh0, nr, padded, even, odd, split, fill, top, left, mode
):  # pragma: no cover
    """Output rows ``oh0 .. oh0+nr`` of one plane as :func:`_block3x3` computes them, with
    selects that ignore NaN, and whether the rows read hold none (the outputs are then
    exact: without NaN the two selects agree, ties and the sign of zero included).

    Output rows are taken in pairs, whose windows share a row: one loop at unit stride
    reduces the pair's five input rows down the columns into ``padded[0]`` and
    ``padded[1]`` (padded column p at index p, the padding as ``fill``), and output
    column t then reduces ``padded[i, 2t : 2t + 3]`` in order (3-4 % faster than a row
    at a time, interleaved and in the suites runs), through ``even`` and ``odd`` (see
    :func:`_windows_row`; rows of ``split`` cells, ``padded``'s of twice that). A sum of
    every value read tells whether one was NaN (or both infinities: then the block is
    redone too). Not inlined: Numba 0.68 dropped a store of a helper inlined twice into a
    parallel loop (see :mod:`.depthwise_flat`), and one call per block costs nothing.
    """
    if mode == MAX:
        return _rows3x3_plain(x, y, n, c, oh0, nr, padded, even, odd, split, fill, top, left, MAX)
    return _rows3x3_plain(x, y, n, c, oh0, nr, padded, even, odd, split, fill, top, left, MIN)


@njit(inline="always", cache=True, fastmath=FASTMATH)
def _rows3x3_plain(
    x, y, n, c, oh0, nr, padded, even, odd, split, fill, top, left, mode
):  # pragma: no cover
    """The loops of :func:`_block3x3_plain`, ``mode`` a literal."""
    height, width = x.shape[2], x.shape[3]
    out_w = y.shape[3]
    span = 2 * out_w + 1  # padded columns the windows read
    hi = min(span, width + left)
    for p in range(left):
        padded[0, p] = padded[1, p] = fill
    for p in range(hi, span):
        padded[0, p] = padded[1, p] = fill
    first, second = padded[0], padded[1]
    inner, inner2 = first[left:hi], second[left:hi]
    total = x.dtype.type(0)
    k = 0
    # A while loop and a last odd row apart: a for loop over pairs with the odd row
    # in a branch ran 1.4x slower.
    while k + 1 < nr:
        r = 2 * (oh0 + k) - top
        lo, last = max(r, 0), min(r + 3, height) - 1
        # Rows outside the input are replaced by the first row inside, as in _block3x3.
        ra, rb, rc = x[n, c, lo], x[n, c, min(lo + 1, last)], x[n, c, last]
        # The next window starts at row r + 2, inside the input (no window starts in
        # the bottom padding): that is rc.
        last = min(r + 5, height) - 1
        rd, re = x[n, c, min(r + 3, last)], x[n, c, last]
        for q in range(hi - left):
            a, b, e, d, f = ra[q], rb[q], rc[q], rd[q], re[q]
            total += ((a + b) + e) + (d + f)
            inner[q] = _plain(_plain(a, b, mode), e, mode)
            inner2[q] = _plain(_plain(e, d, mode), f, mode)
        _windows_row(first, even, odd, split, y[n, c, oh0 + k], mode)
        _windows_row(second, even, odd, split, y[n, c, oh0 + k + 1], mode)
        k += 2
    if k < nr:
        r = 2 * (oh0 + k) - top
        lo, last = max(r, 0), min(r + 3, height) - 1
        ra, rb, rc = x[n, c, lo], x[n, c, min(lo + 1, last)], x[n, c, last]
        for q in range(hi - left):
            a, b, e = ra[q], rb[q], rc[q]
            total += (a + b) + e
            inner[q] = _plain(_plain(a, b, mode), e, mode)
        _windows_row(first, even, odd, split, y[n, c, oh0 + k], mode)
    return total == total


@njit(inline="always", cache=True)
def _windows_row(padded, even, odd, split, out, mode):  # pragma: no cover
    """``out[t]`` = ``padded[2t]``, ``padded[2t + 1]`` and ``padded[2t + 2]`` reduced in
    order (a padded row reduced down its columns).

    The row's even and odd columns are first copied apart, ``split`` of each (the
    ``out_w + 1`` needed rounded up to whole vectors, so that the copy's loop has no
    scalar remainder; the columns copied past the windows' are never read), and the
    reduction then reads them at unit stride. Against reading the row at stride 2
    (gathers), float32, 4 x 64 planes, interleaved: 0.73-0.83x the time with 32-56
    outputs a row, 0.87-0.96x with 28, 0.91x with 80 (memory-bound), 1.03x with 20.
    Without the rounding, 1.02-1.18x with 20-32 outputs.
    """
    out_w = out.shape[0]
    for m in range(split):
        even[m] = padded[2 * m]
        odd[m] = padded[2 * m + 1]
    for t in range(out_w):
        out[t] = _plain(_plain(even[t], odd[t], mode), even[t + 1], mode)


@njit(inline="always", cache=True)
def _plain(a, b, mode):  # pragma: no cover
    """``_pick`` for numbers: ``b`` only if strictly more extreme (a NaN ``b`` is lost)."""
    more = b > a if mode == MAX else b < a
    return b if more else a


@njit(inline="always", cache=True)
def _edge3(ra, rb, rc, m, even, pair, fill, left, mode):  # pragma: no cover
    """Padded columns 2m and 2m + 1 of :func:`_block3x3` where they may be padding."""
    width = ra.shape[0]
    e = o = even.dtype.type(fill)
    ce, co = 2 * m - left, 2 * m + 1 - left
    if 0 <= ce < width:
        e = _pick(_pick(_pick(e, ra[ce], mode), rb[ce], mode), rc[ce], mode)
    if 0 <= co < width:
        o = _pick(_pick(_pick(o, ra[co], mode), rb[co], mode), rc[co], mode)
    even[m] = e
    pair[m] = _pick(e, o, mode)


@njit(inline="always", cache=True)
def _block3x3(x, y, n, c, oh0, nr, pair, even, fill, top, left, mode):  # pragma: no cover
    """Output rows ``oh0 .. oh0+nr`` of one plane for :func:`_pool3x3s2_forward`, NaN
    and all.

    A column pass at stride 2 would need a lone stride-2 load, which LLVM vectorises
    badly (with these selects, a unit-stride pass over the whole row ran 1.4x slower). So
    one pass over each output row's three input rows reduces them at the even and the
    odd padded columns together (pairs of stride-2 loads) into ``even[m]`` (padded column
    2m) and ``pair[m]`` (columns 2m and 2m + 1), and output column t is ``pair[t]``
    reduced with ``even[t + 1]``.
    """
    height, width = x.shape[2], x.shape[3]
    out_w = y.shape[3]
    # Padded columns 2m and 2m + 1 are input columns 2m - left and 2m + 1 - left: pairs
    # of stride-2 loads from ``base`` for m in [m0, m1), the padding outside.
    m0 = left
    m1 = max(m0, min(out_w + 1, (width - 1 + left) // 2))
    for k in range(nr):
        r = 2 * (oh0 + k) - top
        lo, hi = max(r, 0), min(r + 3, height)
        # A window's rows outside the input are replaced by its first row inside: the
        # same extreme (the padding never wins a window that holds an input cell).
        ra, rb, rc = x[n, c, lo], x[n, c, min(lo + 1, hi - 1)], x[n, c, hi - 1]
        ba, bb, bc = ra[2 * m0 - left :], rb[2 * m0 - left :], rc[2 * m0 - left :]
        ev, pr = even[m0:], pair[m0:]
        for m in range(m1 - m0):
            e = _pick(_pick(ba[2 * m], bb[2 * m], mode), bc[2 * m], mode)
            o = _pick(_pick(ba[2 * m + 1], bb[2 * m + 1], mode), bc[2 * m + 1], mode)
            ev[m] = e
            pr[m] = _pick(e, o, mode)
        for m in range(m0):
            _edge3(ra, rb, rc, m, even, pair, fill, left, mode)
        for m in range(m1, out_w + 1):
            _edge3(ra, rb, rc, m, even, pair, fill, left, mode)
        out = y[n, c, oh0 + k]
        nxt = even[1:]
        for t in range(out_w):
            out[t] = _pick(pair[t], nxt[t], mode)


@njit(parallel=True, cache=True)
def _pool3x3s2_backward(gy, x, dx, mode, fill, top, left):  # pragma: no cover
    """dX of :func:`_pool3x3s2_forward`: each gradient to its window's first extreme in
    row-major order over the padded window (its last NaN if any), summed where windows
    overlap.

    Per output row, the windows' three padded rows are copied into buffers (the padding
    as ``fill``); a loop takes each column's extreme over the rows, one over the columns
    each window's (ties by row-major order, as :func:`.pool._beats` decides), and a last
    one adds the gradients at those cells in order.
    """
    n_img, n_ch, height, width = x.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    span = 2 * out_w + 1  # padded columns the windows read
    planes = n_img * n_ch
    tasks = min(planes, MAX_TASKS)
    xf, df, gf = x.reshape(-1), dx.reshape(-1), gy.reshape(-1)
    pairs = out_w + 1  # padded columns 2m and 2m + 1 for m < pairs (one spare)
    for task in prange(tasks):
        # Per-task buffers and flat unsigned indices into the shared arrays: a view per
        # row costs reference counts that both workers update on the same arrays, and a
        # signed index a wrap-around check per element.
        ra = np.empty(2 * pairs, dtype=x.dtype)
        rb = np.empty(2 * pairs, dtype=x.dtype)
        rc = np.empty(2 * pairs, dtype=x.dtype)
        even, odd = np.empty(pairs, dtype=x.dtype), np.empty(pairs, dtype=x.dtype)
        even_row, odd_row = np.empty(pairs, dtype=np.int64), np.empty(pairs, dtype=np.int64)
        cell = np.empty(out_w, dtype=np.int64)
        lo, hi = min(span, left), max(min(span, left), min(span, width + left))
        for plane in range(task * planes // tasks, (task + 1) * planes // tasks):
            base = plane * height * width
            for k in range(height * width):
                df[np.uint64(base + k)] = 0
            for oh in range(out_h):
                r0 = 2 * oh - top
                _padded_row(xf, base, r0, height, width, left, lo, hi, fill, ra)
                _padded_row(xf, base, r0 + 1, height, width, left, lo, hi, fill, rb)
                _padded_row(xf, base, r0 + 2, height, width, left, lo, hi, fill, rc)
                # Each padded column's extreme over the three rows (rows in order), even
                # and odd columns apart so that the next loop reads them at unit stride.
                for m in range(pairs):
                    even[m], even_row[m] = _column_extreme(ra, rb, rc, 2 * m, mode)
                    odd[m], odd_row[m] = _column_extreme(ra, rb, rc, 2 * m + 1, mode)
                # Window t: padded columns 2t, 2t + 1, 2t + 2 in order.
                for t in range(out_w):
                    best, row, col = even[t], even_row[t], 0
                    wins = _beats(odd[t], odd_row[t], best, row, mode)
                    best = odd[t] if wins else best
                    row = odd_row[t] if wins else row
                    col = 1 if wins else col
                    wins = _beats(even[t + 1], even_row[t + 1], best, row, mode)
                    row = even_row[t + 1] if wins else row
                    col = 2 if wins else col
                    cell[t] = 3 * row + col
                g = (plane * out_h + oh) * out_w
                for t in range(out_w):
                    r, col = r0 + cell[t] // 3, 2 * t + cell[t] % 3 - left
                    # A padding cell wins only a window of infinities: its gradient is
                    # dropped, as in the general kernel.
                    if 0 <= r < height and 0 <= col < width:
                        df[np.uint64(base + r * width + col)] += gf[np.uint64(g + t)]


@njit(inline="always", cache=True)
def _padded_row(xf, base, r, height, width, left, lo, hi, fill, out):  # pragma: no cover
    """``out[p]`` = input row ``r``'s column ``p - left``, ``fill`` outside the input."""
    if r < 0 or r >= height:
        lo = hi = out.shape[0]
    for p in range(lo):
        out[p] = fill
    src = base + r * width - left
    for p in range(lo, hi):
        out[p] = xf[np.uint64(src + p)]
    for p in range(hi, out.shape[0]):
        out[p] = fill


@njit(inline="always", cache=True)
def _column_extreme(ra, rb, rc, p, mode):  # pragma: no cover
    """Column ``p``'s extreme over rows ``ra``, ``rb``, ``rc`` and its row (0-2): the
    first in order, or the last NaN; selects, not branches."""
    best, row = _step(rb[p], 1, ra[p], 0, mode)
    return _step(rc[p], 2, best, row, mode)


def applies(spec: PoolSpec) -> bool:
    """Max/min 3x3 windows at stride 2, undilated, padding 0 or 1 on every side."""
    return (
        spec.kernel == (3, 3)
        and spec.stride == (2, 2)
        and spec.dilation == (1, 1)
        and POOL_MODE[spec.mode] != MEAN
        and max(spec.padding) <= 1
    )


def forward(x: np.ndarray, spec: PoolSpec) -> np.ndarray:
    """Max or min pooling of ``x`` where :func:`applies`."""
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    rows = max(1, min(spec.out_height, _BLOCK_CELLS // (spec.out_width + 1)))
    top, left = spec.padding[0], spec.padding[2]
    mode = POOL_MODE[spec.mode]
    plain = np.dtype(spec.dtype) in PLAIN_DTYPES
    split = -(-(spec.out_width + 1) // _LANES) * _LANES
    args = (mode, spec.pad_value, top, left, rows, plain, split)
    launch(_pool3x3s2_forward, readonly(x), y, *args)
    return y


def backward(grad_y: np.ndarray, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
    """dX of max or min pooling where :func:`applies`."""
    grad_x = np.empty(spec.x_shape, dtype=spec.dtype)
    top, left = spec.padding[0], spec.padding[2]
    mode = POOL_MODE[spec.mode]
    launch(
        _pool3x3s2_backward, readonly(grad_y), readonly(x), grad_x, mode, spec.pad_value, top, left
    )
    return grad_x
