"""The Winograd correlation (the forward, and dX) and the tile geometry it shares with dW.

Tiles are m x m blocks of output in (image, row, column) order; each reads the
(m+2) x (m+2) window of a zero-padded copy of the input at its top left. A call runs one
of :mod:`.fused`'s two loop orders over them (see :func:`_by_channels`).
"""

from __future__ import annotations

import numpy as np

from fastcnn.config import get_num_threads, get_workspace_limit
from fastcnn.jit import launch, readonly
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec

from . import fused
from .transforms import IN_KERNELS, constants, named_matrices

#: The transformed input of one chunk of tiles (on small maps, and dW's input and dY) is
#: kept under this many bytes even when the workspace limit allows more, so that it stays
#: in the last-level cache between the transforms and the GEMMs.
_CACHE_FRIENDLY_CHUNK_BYTES = 16 * 2**20
#: Tiles per task of :func:`fused.by_tiles`, in blocks: the width of its GEMMs.
_SPAN = 1
#: Output channels per task of :func:`fused.by_channels`.
_O_BLOCK = 32
#: A worker's transformed input and products in :func:`fused.by_tiles` are kept under
#: this many bytes by taking a task's output channels in blocks (per GEMM and
#: out-transform), so that they stay in its core's cache: on VGG-16's 256@56 (256
#: channels in and out) blocks of 64 ran 1.2-1.3x faster than all 256 at once; on
#: 128 channels in and out, all at once was the fastest.
_TILE_TASK_BYTES = 3 * 2**19
#: A task's transformed filters in :func:`fused.by_channels` are kept under this many
#: bytes by transforming them a block of input channels at a time (each block's GEMMs
#: adding to the last's), so that they stay in the core's cache beside the GEMM's other
#: operands: blocks of 128 channels at F(4,3), of 256 at F(2,3). On ResNet-18's 512@7 and
#: VGG-16's 512@14 at F(2,3), all 512 channels at once (1 MiB) took 1.4-1.5x as long as
#: blocks of 64-256; on VGG-16's 512@28 at F(4,3), all 512 took 1.2-1.4x as long as blocks
#: of 64-256. At F(4,3) on 512@14, 512@7 and 256@14 the block size made no difference.
_CHANNEL_TASK_BYTES = 5 * 2**17


def _tile_grid(out_h: int, out_w: int, m: int) -> tuple[int, int]:
    return -(-out_h // m), -(-out_w // m)


def _chunk_tiles(total: int, bytes_per_tile: int) -> int:
    """Tiles per chunk: the scratch of a chunk within the workspace limit and cache cap."""
    limit = min(get_workspace_limit(), _CACHE_FRIENDLY_CHUNK_BYTES)
    return max(1, min(total, limit // max(bytes_per_tile, 1)))


def _padded(slot: str, x: np.ndarray, offset: tuple[int, int], rows: int, cols: int) -> np.ndarray:
    """``xp[:, :, r, s] = x[:, :, r - offset[0], s - offset[1]]``, zero outside ``x``:
    ``rows x cols`` cells, so that every tile's window lies inside."""
    n_img, n_ch, height, width = x.shape
    xp = scratch(slot, (n_img, n_ch, rows, cols), x.dtype)
    top, left = offset
    r0, r1 = max(0, top), min(rows, top + height)
    c0, c1 = max(0, left), min(cols, left + width)
    if r0 > 0 or c0 > 0 or r1 < rows or c1 < cols:
        xp[...] = 0
    if r0 < r1 and c0 < c1:
        xp[:, :, r0:r1, c0:c1] = x[:, :, r0 - top : r1 - top, c0 - left : c1 - left]
    return xp


def _tile_origins(n_img: int, tiles_h: int, tiles_w: int, m: int) -> tuple[np.ndarray, ...]:
    """Image, row and column of every tile's top left, tiles in (image, row, column) order."""
    t = np.arange(n_img * tiles_h * tiles_w, dtype=np.int64)
    per_image = tiles_h * tiles_w
    return t // per_image, (t % per_image) // tiles_w * m, t % tiles_w * m


def _correlate(
    x: np.ndarray,
    w: np.ndarray,
    groups: int,
    bias: np.ndarray,
    offset: tuple[int, int],
    out_shape: tuple[int, int],
    m: int,
    swap: bool = False,
) -> np.ndarray:
    """3x3 stride-1 correlation of ``x`` with filters ``w`` (plus ``bias``); with
    ``swap``, with ``w`` rotated 180 degrees and its in-group channel axes swapped (dX's
    filters, which the filter transform reads in place of a copy).

    Output cell (r, s) reads input rows ``r - offset[0] ..`` and columns
    ``s - offset[1] ..``; cells outside ``x`` count as zero, so any padding (or a crop,
    for a negative offset) is an offset.
    """
    n_img, n_ch = x.shape[:2]
    n_out = groups * w.shape[1] if swap else w.shape[0]
    tiles_h, tiles_w = _tile_grid(*out_shape, m)
    xp = _padded("winograd_x", x, offset, tiles_h * m + 2, tiles_w * m + 2)
    tn, tr, tc = _tile_origins(n_img, tiles_h, tiles_w, m)
    y = np.empty((n_img, n_out, *out_shape), dtype=x.dtype)
    kc_out = constants(f"at{m}", x.dtype.name)
    workers = get_num_threads()
    w = np.ascontiguousarray(w)
    if _by_channels(tn.size, n_out // groups):
        kc_g = constants(f"g{m}", x.dtype.name)
        step = _chunk_tiles(tn.size, (m + 2) ** 2 * n_ch * x.itemsize)
        for t0 in range(0, tn.size, step):
            tiles = (tn[t0 : t0 + step], tr[t0 : t0 + step], tc[t0 : t0 + step])
            v = _windows(f"bt{m}", xp, tiles, m + 2, "winograd_v")
            stride = _row_stride(tiles[0].size)
            c_block = _channel_task_c_block(m, n_ch // groups, x.itemsize)
            us = _worker_rows("winograd_us", workers, m, _O_BLOCK * c_block, x.dtype)
            prods = _worker_rows("winograd_prods", workers, m, _O_BLOCK * stride, x.dtype)
            blocks = (_O_BLOCK, c_block)
            args = (xp, w, groups, swap, v, kc_g, kc_out, bias, y, *tiles, *blocks, us, prods)
            launch(fused.by_channels, m, *args, calls_blas=True)
    else:
        u = _transformed_filters(w, m, groups, swap)
        kc_in = constants(f"bt{m}", x.dtype.name)
        span = _SPAN * fused.BLOCK
        o_block = _tile_task_o_block(m, span, n_ch // groups, n_out // groups, x.itemsize)
        vs = _worker_rows("winograd_vs", workers, m, n_ch * span, x.dtype)
        prods = _worker_rows("winograd_prods", workers, m, o_block * span, x.dtype)
        args = (xp, u, groups, kc_in, kc_out, bias, y, tn, tr, tc, span, o_block, vs, prods)
        launch(fused.by_tiles, m, *args, calls_blas=True)
    return y


def _worker_rows(slot: str, workers: int, m: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """Per-worker ``(points, cols + ROW_PAD)`` arrays from this thread's scratch: reused
    from call to call, so that no call faults in megabytes of fresh pages."""
    return scratch(slot, (workers, (m + 2) ** 2, cols + fused.ROW_PAD), dtype)


def _tile_task_o_block(m: int, span: int, cin_g: int, out_g: int, itemsize: int) -> int:
    """Output channels per GEMM in :func:`fused.by_tiles`: all of a group's, halved
    while a task's transformed input and products exceed ``_TILE_TASK_BYTES`` (down to
    32)."""
    per_channel = (m + 2) ** 2 * span * itemsize
    return _halved_within(out_g, cin_g, per_channel, _TILE_TASK_BYTES, 32)


def _channel_task_c_block(m: int, cin_g: int, itemsize: int) -> int:
    """Input channels per filter transform in :func:`fused.by_channels`: all of a
    group's, halved while a task's transformed filters exceed ``_CHANNEL_TASK_BYTES``
    (down to 64)."""
    per_channel = (m + 2) ** 2 * _O_BLOCK * itemsize
    return _halved_within(cin_g, 0, per_channel, _CHANNEL_TASK_BYTES, 64)


def _halved_within(block: int, fixed: int, per_channel: int, budget: int, least: int) -> int:
    """``block`` channels, halved (rounding up) while ``fixed + block`` channels of
    ``per_channel`` bytes exceed ``budget``, but not below ``least``."""
    while block > least and (fixed + block) * per_channel > budget:
        block = -(-block // 2)
    return block


def _by_channels(tiles: int, out_g: int) -> bool:
    """Whether to run :func:`fused.by_channels`: with fewer tiles than filters per group,
    each task transforms its own filters, which then never travel through memory (at
    F(4,3) they are 4x the filters' bytes)."""
    return tiles < out_g


def _transformed_filters(w: np.ndarray, m: int, groups: int, swap: bool) -> np.ndarray:
    """``U[p, o*cin_g + c] = (G w[o, c] G^T)[p]`` (``w`` swapped with ``swap``, see
    :func:`_correlate`): the filters transformed once per call (never cached: in training
    they change every step), one row per tile point."""
    filters = w.shape[0] * w.shape[1]  # swapped or not
    u = scratch("winograd_u", ((m + 2) ** 2, filters + fused.ROW_PAD), w.dtype)
    name = f"g{m}"
    kc = constants(name, w.dtype.name)
    launch(fused.filters, IN_KERNELS.index(name), w, groups, swap, u, kc, get_num_threads())
    return u


def _row_stride(tiles: int) -> int:
    """Columns per channel in transformed data: the tile count rounded up to 16 (whole
    cache lines in float32); the columns past the tiles are zero."""
    return -(-tiles // 16) * 16


def _windows(
    name: str, xp: np.ndarray, tiles: tuple[np.ndarray, ...], k: int, slot: str
) -> np.ndarray:
    """``v[p, c*stride + t]``: in-transform ``name`` of the k x k window of every channel
    and tile (top left at ``xp[tn[t], c, tr[t], tc[t]]``), ``stride = _row_stride(tiles)``."""
    n_ch, count = xp.shape[1], tiles[0].size
    points = named_matrices()[name].shape[0] ** 2
    stride = _row_stride(count)
    v = scratch(slot, (points, n_ch * stride + fused.ROW_PAD), xp.dtype)
    kc = constants(name, xp.dtype.name)
    which = IN_KERNELS.index(name)
    launch(fused.windows, which, k, readonly(xp), v, *tiles, stride, kc, get_num_threads())
    return v


def _tile_count(spec: ConvSpec, m: int) -> int:
    tiles_h, tiles_w = _tile_grid(spec.out_height, spec.out_width, m)
    return spec.batch * tiles_h * tiles_w
