"""The Winograd pipeline as parallel Numba kernels that call BLAS from inside each worker.

One parallel region per call does every step of a tile block, so the transformed data
stays in the worker's cache between them: the input transform (from a zero-padded copy
of the input, so no window needs a bounds check), one GEMM per tile point (``np.dot``,
which Numba sends to BLAS; the caller holds BLAS at one thread, as every worker calls it
at once) and the inverse transform. Before this, the steps ran one after another over
the whole chunk: Numba's workers and BLAS's then fought over the two cores between the
steps, and each step reread its data from memory (the whole was 2-3 times its parts).

Two loop orders, chosen by the caller:

- :func:`by_tiles` (many tiles per filter): the filters are transformed once beforehand;
  each task is a block of tiles, with every output channel.
- :func:`by_channels` (few tiles, many filters: deep layers on small maps): the input of
  the whole chunk is transformed first; each task is a block of output channels whose
  filters it transforms itself, so the transformed filters (4x the filters' bytes at
  F(4,3)) never travel through memory.

dW's products likewise: over a chunk's tiles one point per task (:func:`filter_products`,
then :func:`filter_grads` out-transforms them), by blocks of tiles summed per worker
(:func:`filter_products_by_tiles`), or by blocks of output channels out-transformed in
the worker's cache (:func:`filter_grads_by_channels`).

Transformed data is laid out ``[point, row * stride + tile]``, a 2-D C-contiguous array
whose rows are the tile points, so that each point's matrix is a contiguous slice
reshaped (what ``np.dot`` needs). Rows are padded by one cache line (see ``ROW_PAD``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH, add_product, add_product_nt

from ._kernels import (
    BLOCK,
    _in_a2,
    _in_a4,
    _in_bt2,
    _in_bt4,
    _in_g2,
    _in_g4,
    _out_at2,
    _out_at4,
    _out_gt2,
    _out_gt4,
)

#: Extra elements at the end of each point's row: rows a multiple of 4 KiB apart map to
#: the same L1 sets, and the 16 or 36 streams of a transform would evict each other.
ROW_PAD = 16


@njit(cache=True, fastmath=FASTMATH)
def _in(which, win, out, kc):  # pragma: no cover
    """Dispatch to the generated in-kernel ``which`` (order of ``IN_KERNELS``)."""
    if which == 0:
        _in_bt2(win, out, kc)
    elif which == 1:
        _in_bt4(win, out, kc)
    elif which == 2:
        _in_g2(win, out, kc)
    elif which == 3:
        _in_g4(win, out, kc)
    elif which == 4:
        _in_a2(win, out, kc)
    else:
        _in_a4(win, out, kc)


@njit(cache=True, fastmath=FASTMATH)
def _out(which, prod, res, bias, kc):  # pragma: no cover
    """Dispatch to the generated out-kernel ``which`` (order of ``OUT_KERNELS``)."""
    if which == 0:
        _out_at2(prod, res, bias, kc)
    elif which == 1:
        _out_at4(prod, res, bias, kc)
    elif which == 2:
        _out_gt2(prod, res, bias, kc)
    else:
        _out_gt4(prod, res, bias, kc)


@njit(cache=True, fastmath=FASTMATH)
def _block_to_rows(tmp, rows, at, nq):  # pragma: no cover
    """``rows[p, at + q] = tmp[p*BLOCK + q]`` for every row p and q < nq. A whole block
    copies through slices with the constant trip count BLOCK: LLVM vectorises that loop,
    not the one over nq (1.4x faster on a transform's 36 rows). The loops stay inline
    here and in :func:`_rows_to_block`: a shared copy helper called per row made whole
    Winograd calls 1.3-1.7x slower."""
    for p in range(rows.shape[0]):
        if nq == BLOCK:
            dst, src = rows[p, at : at + BLOCK], tmp[p * BLOCK : (p + 1) * BLOCK]
            for q in range(BLOCK):
                dst[q] = src[q]
        else:
            for q in range(nq):
                rows[p, at + q] = tmp[p * BLOCK + q]


@njit(cache=True, fastmath=FASTMATH)
def _rows_to_block(rows, at, tmp, nq):  # pragma: no cover
    """``tmp[p*BLOCK + q] = rows[p, at + q]``: :func:`_block_to_rows` the other way."""
    for p in range(rows.shape[0]):
        if nq == BLOCK:
            dst, src = tmp[p * BLOCK : (p + 1) * BLOCK], rows[p, at : at + BLOCK]
            for q in range(BLOCK):
                dst[q] = src[q]
        else:
            for q in range(nq):
                tmp[p * BLOCK + q] = rows[p, at + q]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gather(xp, n, c, r, s, win, q, k):  # pragma: no cover
    """``win[(i*k + j)*BLOCK + q] = xp[n, c, r + i, s + j]``. The window sizes the
    transforms use have their own loops: with k a constant LLVM unrolls them (4x faster)."""
    if k == 6:
        for i in range(6):
            for j in range(6):
                win[(i * 6 + j) * BLOCK + q] = xp[n, c, r + i, s + j]
    elif k == 4:
        for i in range(4):
            for j in range(4):
                win[(i * 4 + j) * BLOCK + q] = xp[n, c, r + i, s + j]
    else:
        for i in range(k):
            for j in range(k):
                win[(i * k + j) * BLOCK + q] = xp[n, c, r + i, s + j]


@njit(cache=True, fastmath=FASTMATH)
def _windows(
    which, k, xp, c_first, n_ch, tn, tr, tc, win, tmp, v, stride, at, kc
):  # pragma: no cover
    """``v[:, ci*stride + at + q]`` = in-transform ``which`` of tile q's k x k window of
    channel ``c_first + ci``, whose top left is ``xp[tn[q], c, tr[q], tc[q]]``."""
    nq = tn.shape[0]
    for ci in range(n_ch):
        c = c_first + ci
        for q in range(nq):
            _gather(xp, tn[q], c, tr[q], tc[q], win, q, k)
        _in(which, win, tmp, kc)
        _block_to_rows(tmp, v, ci * stride + at, nq)


@njit(cache=True, fastmath=FASTMATH)
def _filter_shape(w, groups, swap):  # pragma: no cover
    """Output channels and input channels per group of the correlation with ``w``, or
    with ``w`` swapped (see :func:`_filters`)."""
    if swap:
        return groups * w.shape[1], w.shape[0] // groups
    return w.shape[0], w.shape[1]


@njit(cache=True, fastmath=FASTMATH)
def _filters(
    which, w, groups, swap, o_first, n_o, c_first, n_c, win, tmp, u, at, kc
):  # pragma: no cover
    """``u[:, at + oi*n_c + ci]`` = in-transform ``which`` of filter (o_first + oi,
    c_first + ci): of ``w[o, c]``, or with ``swap`` of ``w`` rotated 180 degrees with its
    in-group channel axes swapped (dX's filters, read in place:
    ``w[g*out_g + c, o - g*cin_g, 2-i, 2-j]`` for o in group g, where ``cin_g, out_g``
    are ``w``'s own)."""
    w_cin_g, w_out_g = w.shape[1], w.shape[0] // groups  # w's own, for swap
    for oi in range(n_o):
        o = o_first + oi
        g = o // w_cin_g  # o's group, for swap
        for c0 in range(c_first, c_first + n_c, BLOCK):
            nq = min(BLOCK, c_first + n_c - c0)
            for q in range(nq):
                if swap:
                    f = w[g * w_out_g + c0 + q, o - g * w_cin_g]
                    for i in range(3):
                        for j in range(3):
                            win[(i * 3 + j) * BLOCK + q] = f[2 - i, 2 - j]
                else:
                    for i in range(3):
                        for j in range(3):
                            win[(i * 3 + j) * BLOCK + q] = w[o, c0 + q, i, j]
            _in(which, win, tmp, kc)
            _block_to_rows(tmp, u, at + oi * n_c + c0 - c_first, nq)


@njit(cache=True, fastmath=FASTMATH)
def _products(u, u_at, v, v_at, prod, rows, inner, cols, add=False):  # pragma: no cover
    """For every point p: ``prod[p, :rows*cols] = U_p @ V_p`` (``+=`` with ``add``), with
    ``U_p`` the (rows x inner) matrix at ``u[p, u_at:]`` and ``V_p`` the (inner x cols)
    one at ``v[p, v_at:]``. One input channel per group (depthwise) is a broadcast
    product, not a GEMM."""
    for p in range(u.shape[0]):
        a = u[p, u_at : u_at + rows * inner].reshape((rows, inner))
        b = v[p, v_at : v_at + inner * cols].reshape((inner, cols))
        c = prod[p, : rows * cols].reshape((rows, cols))
        if inner == 1:
            for i in range(rows):
                for j in range(cols):
                    product = a[i, 0] * b[0, j]
                    c[i, j] = c[i, j] + product if add else product
        elif add:
            add_product(a, b, c)
        else:
            np.dot(a, b, c)


@njit(cache=True, fastmath=FASTMATH)
def _scatter(
    which, m, prod, o_first, n_o, stride, at, tn, tr, tc, tmp, res, bias, y, kc
):  # pragma: no cover
    """Output channel ``o_first + oi`` of the tiles ``tn, tr, tc`` (origins in ``y``) =
    out-transform ``which`` of ``prod[:, oi*stride + at + q]`` plus the bias, cropped."""
    height, width = y.shape[2], y.shape[3]
    nq = tn.shape[0]
    for oi in range(n_o):
        o = o_first + oi
        _rows_to_block(prod, oi * stride + at, tmp, nq)
        _out(which, tmp, res, bias[o], kc)
        for q in range(nq):
            n, r0, c0 = tn[q], tr[q], tc[q]
            rows, cols = min(m, height - r0), min(m, width - c0)
            if rows == 4 and cols == 4:  # whole F(4,3) tiles: loops LLVM unrolls
                for a in range(4):
                    for b in range(4):
                        y[n, o, r0 + a, c0 + b] = res[(a * 4 + b) * BLOCK + q]
            else:
                for a in range(rows):
                    for b in range(cols):
                        y[n, o, r0 + a, c0 + b] = res[(a * m + b) * BLOCK + q]


@njit(cache=True)
def _buffers(k, alpha, like):  # pragma: no cover
    """A worker's flat block buffers, of ``like``'s dtype: windows (k x k) and transformed
    tiles (alpha x alpha)."""
    return np.zeros(k * k * BLOCK, like.dtype), np.zeros(alpha * alpha * BLOCK, like.dtype)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def filters(which, w, groups, swap, u, kc, workers):  # pragma: no cover
    """``u[:, o*cin + c]`` = in-transform ``which`` of filter (o, c) (see :func:`_filters`),
    for every filter."""
    n_out, cin = _filter_shape(w, groups, swap)
    alpha = int(np.sqrt(u.shape[0]) + 0.5)
    for worker in prange(max(1, min(workers, n_out))):
        win, tmp = _buffers(3, alpha, u)
        for o in range(worker, n_out, workers):
            _filters(which, w, groups, swap, o, 1, 0, cin, win, tmp, u, o * cin, kc)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def windows(which, k, xp, v, tn, tr, tc, stride, kc, workers):  # pragma: no cover
    """``v[:, c*stride + t]`` = in-transform ``which`` of tile t's k x k window of channel
    c of ``xp`` (top left at ``xp[tn[t], c, tr[t], tc[t]]``), every channel and tile."""
    n_ch, total = xp.shape[1], tn.shape[0]
    alpha = int(np.sqrt(v.shape[0]) + 0.5)
    blocks = (total + BLOCK - 1) // BLOCK
    tasks = n_ch * blocks
    for worker in prange(max(1, min(workers, tasks))):
        win, tmp = _buffers(k, alpha, v)
        for task in range(worker, tasks, workers):
            c, b = task // blocks, task % blocks
            t0, t1 = b * BLOCK, min(total, b * BLOCK + BLOCK)
            tiles = (tn[t0:t1], tr[t0:t1], tc[t0:t1])
            _windows(which, k, xp, c, 1, *tiles, win, tmp, v, stride, c * stride + t0, kc)
            if t1 == total:  # the row's padding after the last tile: zero, so GEMMs may
                for p in range(v.shape[0]):  # run over the whole stride
                    v[p, c * stride + total : (c + 1) * stride] = 0


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def filter_products(d, v, gu, groups, stride, first, workers):  # pragma: no cover
    """``gu[p] (+)= D_p @ V_p^T`` per group for every point p: dW's products summed over
    the tiles, with ``D_p`` (out_g x stride) and ``V_p`` (cin_g x stride) from the rows of
    ``d`` and ``v`` (see :func:`windows`) and ``gu`` rows ``[point, (g*out_g + o)*cin_g + c]``.
    The first chunk of tiles writes ``gu``, the others add to it. Tasks of one point, so
    that each worker's GEMMs run on its own core."""
    points = d.shape[0]
    n_out = (d.shape[1] - ROW_PAD) // stride
    n_ch = (v.shape[1] - ROW_PAD) // stride
    out_g, cin_g = n_out // groups, n_ch // groups
    for worker in prange(max(1, min(workers, points))):
        for p in range(worker, points, workers):
            for g in range(groups):
                a = d[p, g * out_g * stride : (g + 1) * out_g * stride].reshape((out_g, stride))
                b = v[p, g * cin_g * stride : (g + 1) * cin_g * stride].reshape((cin_g, stride))
                c = gu[p, g * out_g * cin_g : (g + 1) * out_g * cin_g].reshape((out_g, cin_g))
                if first:
                    np.dot(a, b.T, c)
                else:
                    add_product_nt(a, b, c)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def filter_products_by_tiles(
    m, xp, dyp, kc_v, kc_d, tn, tr, tc, span, vs, ds, gus
):  # pragma: no cover
    """``gus[k][p] = sum of D_p @ V_p^T`` over worker k's tasks of ``span`` tiles: dW's
    products (as :func:`filter_products`, one group) with each task's transformed input
    ``V`` (windows of ``xp``) and dY ``D`` (windows of ``dyp``) made in the worker's own
    buffers ``vs[k]`` and ``ds[k]``, so that they never travel through memory. Tile t's
    windows have their top left at ``[tn[t], :, tr[t], tc[t]]`` in both; a task after
    the worker's first adds its products by GEMM (``beta = 1``). Workers without a task
    leave ``gus[k]`` as it was: the caller sums the first ``min(workers, tasks)``."""
    n_ch, n_out = xp.shape[1], dyp.shape[1]
    k = m + 2
    total = tn.shape[0]
    tasks = (total + span - 1) // span
    workers = vs.shape[0]
    for worker in prange(max(1, min(workers, tasks))):
        win, tmp = _buffers(k, k, xp)
        v, d, gu = vs[worker], ds[worker], gus[worker]
        for task in range(worker, tasks, workers):
            first, last = task * span, min(total, task * span + span)
            for t0 in range(first, last, BLOCK):
                t1 = min(last, t0 + BLOCK)
                tiles = (tn[t0:t1], tr[t0:t1], tc[t0:t1])
                _windows(m // 4, k, xp, 0, n_ch, *tiles, win, tmp, v, span, t0 - first, kc_v)
                _windows(4 + m // 4, m, dyp, 0, n_out, *tiles, win, tmp, d, span, t0 - first, kc_d)
            if last - first < span:  # a short last task: its unused columns count as zero
                for p in range(v.shape[0]):
                    for c in range(n_ch):
                        v[p, c * span + last - first : (c + 1) * span] = 0
                    for o in range(n_out):
                        d[p, o * span + last - first : (o + 1) * span] = 0
            for p in range(v.shape[0]):
                a = d[p, : n_out * span].reshape((n_out, span))
                b = v[p, : n_ch * span].reshape((n_ch, span))
                c = gu[p, : n_out * n_ch].reshape((n_out, n_ch))
                if task == worker:
                    np.dot(a, b.T, c)
                else:
                    add_product_nt(a, b, c)


#: Blocks of filters :func:`filter_grads` stages at once: each row of ``gu`` is then read
#: in runs of 1 KiB, which the prefetchers follow (36 rows read 128 bytes at a time ran at
#: a fifth of the memory's speed).
_STAGED_BLOCKS = 8


@njit(cache=True, fastmath=FASTMATH)
def _out_filters(which, gu, at, count, flat, first, stage, res, kc):  # pragma: no cover
    """``flat[first + f]`` = out-transform ``which`` (``G^T X G``) of ``gu[:, at + f]``,
    for ``count`` filters, staged ``stage.shape[0]`` blocks at a time."""
    span = stage.shape[0] * BLOCK
    points = gu.shape[0]
    for f0 in range(0, count, span):
        n_f = min(span, count - f0)
        for p in range(points):  # each row read in one run: n_f contiguous values
            for blk in range((n_f + BLOCK - 1) // BLOCK):
                src = gu[p, at + f0 + blk * BLOCK : at + f0 + n_f]
                dst = stage[blk, p * BLOCK : (p + 1) * BLOCK]
                if src.size >= BLOCK:  # whole blocks: a loop LLVM vectorises
                    for q in range(BLOCK):
                        dst[q] = src[q]
                else:
                    for q in range(src.size):
                        dst[q] = src[q]
        for blk in range((n_f + BLOCK - 1) // BLOCK):
            _out(which, stage[blk], res, 0.0, kc)
            for q in range(min(BLOCK, n_f - blk * BLOCK)):
                for e in range(9):
                    flat[first + f0 + blk * BLOCK + q, e] = res[e * BLOCK + q]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def filter_grads(which, gu, grad_w, kc, workers):  # pragma: no cover
    """``grad_w[o, c]`` = out-transform ``which`` (``G^T X G``) of ``gu[:, o*cin + c]``;
    each worker takes one contiguous range of filters."""
    n_out, cin = grad_w.shape[0], grad_w.shape[1]
    points, total = gu.shape[0], n_out * cin
    flat = grad_w.reshape((total, 9))
    span = _STAGED_BLOCKS * BLOCK
    spans = (total + span - 1) // span
    workers = max(1, min(workers, spans))
    for worker in prange(workers):
        stage = np.zeros((_STAGED_BLOCKS, points * BLOCK), dtype=gu.dtype)
        res = np.zeros(9 * BLOCK, dtype=gu.dtype)
        first = worker * spans // workers * span
        last = min(total, (worker + 1) * spans // workers * span)
        _out_filters(which, gu, first, last - first, flat, first, stage, res, kc)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def filter_grads_by_channels(which, d, v, grad_w, stride, o_block, kc, gus):  # pragma: no cover
    """``grad_w`` from the transformed dY ``d`` and input ``v`` of every tile (rows
    ``[point, channel*stride + tile]``, see :func:`windows`), in tasks of ``o_block``
    output channels of one group: a task's products ``D_p @ V_p^T`` for every point go to
    the worker's own ``gus[k]`` (rows ``[point, oi*cin_g + c]``) and are out-transformed
    from there into ``grad_w``, so they never travel through memory (as with
    :func:`filter_products` then :func:`filter_grads`)."""
    points = d.shape[0]
    n_out, cin_g = grad_w.shape[0], grad_w.shape[1]
    groups = (v.shape[1] - ROW_PAD) // stride // cin_g
    out_g = n_out // groups
    per_group = (out_g + o_block - 1) // o_block
    tasks = groups * per_group
    workers = gus.shape[0]
    flat = grad_w.reshape((n_out * cin_g, 9))
    for worker in prange(max(1, min(workers, tasks))):
        gu = gus[worker]
        stage = np.zeros((_STAGED_BLOCKS, points * BLOCK), dtype=gu.dtype)
        res = np.zeros(9 * BLOCK, dtype=gu.dtype)
        for task in range(worker, tasks, workers):
            g = task // per_group
            o0 = g * out_g + (task % per_group) * o_block
            n_o = min(o_block, (g + 1) * out_g - o0)
            for p in range(points):
                a = d[p, o0 * stride : (o0 + n_o) * stride].reshape((n_o, stride))
                b = v[p, g * cin_g * stride : (g + 1) * cin_g * stride].reshape((cin_g, stride))
                np.dot(a, b.T, gu[p, : n_o * cin_g].reshape((n_o, cin_g)))
            _out_filters(which, gu, 0, n_o * cin_g, flat, o0 * cin_g, stage, res, kc)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def by_tiles(
    m, xp, u, groups, kc_in, kc_out, bias, y, tn, tr, tc, span, o_block, vs, prods
):  # pragma: no cover
    """``y`` = 3x3 correlation of ``xp`` with the transformed filters ``u`` (rows
    ``[point, (group*out_g + o)*cin_g + c]``), in tasks of ``span`` tiles (a multiple of
    ``BLOCK``: the GEMMs' width) with every output channel, ``o_block`` of them per GEMM
    and out-transform. Tile t reads ``xp[tn[t], :, tr[t]:, tc[t]:]`` and writes ``y``
    there. ``vs[k]`` and ``prods[k]`` are worker k's transformed input and products (the
    caller keeps them, so that no call faults in fresh pages; there is one per worker)."""
    n_ch, n_out = xp.shape[1], y.shape[1]
    k = m + 2
    cin_g, out_g = n_ch // groups, n_out // groups
    total = tn.shape[0]
    tasks = (total + span - 1) // span
    workers = vs.shape[0]
    for worker in prange(max(1, min(workers, tasks))):
        win, tmp = _buffers(k, k, y)
        res = np.zeros(m * m * BLOCK, dtype=y.dtype)
        v, prod = vs[worker], prods[worker]
        for task in range(worker, tasks, workers):
            first = task * span
            for t0 in range(first, min(total, first + span), BLOCK):
                t1 = min(total, t0 + BLOCK)
                tiles = (tn[t0:t1], tr[t0:t1], tc[t0:t1])
                _windows(m // 4, k, xp, 0, n_ch, *tiles, win, tmp, v, span, t0 - first, kc_in)
            for g in range(groups):
                for o0 in range(g * out_g, (g + 1) * out_g, o_block):
                    n_o = min(o_block, (g + 1) * out_g - o0)
                    _products(u, o0 * cin_g, v, g * cin_g * span, prod, n_o, cin_g, span)
                    for t0 in range(first, min(total, first + span), BLOCK):
                        t1 = min(total, t0 + BLOCK)
                        tiles = (tn[t0:t1], tr[t0:t1], tc[t0:t1])
                        args = (o0, n_o, span, t0 - first, *tiles, tmp, res, bias, y, kc_out)
                        _scatter(m // 4, m, prod, *args)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def by_channels(
    m, xp, w, groups, swap, v, kc_g, kc_out, bias, y, tn, tr, tc, o_block, c_block, us, prods
):  # pragma: no cover
    """``y`` = 3x3 correlation with the filters of ``w`` (see :func:`_filters`;
    transformed here) of the input whose windows ``v`` holds (see :func:`windows`; rows
    ``[point, c*stride + t]``), in tasks of ``o_block`` output channels of one group,
    whose filters are transformed ``c_block`` input channels at a time, each block's
    products added to the last's. Tiles as in :func:`by_tiles`; ``us[k]`` and
    ``prods[k]`` are worker k's transformed filters and products."""
    n_ch, n_out = xp.shape[1], y.shape[1]
    cin_g = n_ch // groups
    out_g = n_out // groups
    k = m + 2
    total = tn.shape[0]
    stride = (v.shape[1] - ROW_PAD) // n_ch
    per_group = -(-out_g // o_block)
    tasks = groups * per_group
    workers = us.shape[0]
    for worker in prange(max(1, min(workers, tasks))):
        win, tmp = _buffers(3, k, y)
        res = np.zeros(m * m * BLOCK, dtype=y.dtype)
        u, prod = us[worker], prods[worker]
        for task in range(worker, tasks, workers):
            g = task // per_group
            o_first = g * out_g + (task % per_group) * o_block
            n_o = min(o_block, (g + 1) * out_g - o_first)
            for c0 in range(0, cin_g, c_block):
                n_c = min(c_block, cin_g - c0)
                _filters(2 + m // 4, w, groups, swap, o_first, n_o, c0, n_c, win, tmp, u, 0, kc_g)
                v_at = (g * cin_g + c0) * stride
                _products(u, 0, v, v_at, prod, n_o, n_c, stride, c0 > 0)
            for t0 in range(0, total, BLOCK):
                t1 = min(total, t0 + BLOCK)
                tiles = (tn[t0:t1], tr[t0:t1], tc[t0:t1])
                args = (o_first, n_o, stride, t0, *tiles, tmp, res, bias, y, kc_out)
                _scatter(m // 4, m, prod, *args)
