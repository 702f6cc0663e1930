"""dW of the Winograd forward, ``G^T [sum_t (A dY_t A^T) * V_t] G``, by one of three
paths: through whole chunks of tiles, in the workers' own buffers by tiles (large maps),
or by blocks of output channels out-transformed in cache (deep layers on small maps)."""

from __future__ import annotations

import numpy as np

from fastcnn.config import get_num_threads
from fastcnn.jit import launch
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec

from . import fused
from .correlate import (
    _chunk_tiles,
    _padded,
    _row_stride,
    _tile_count,
    _tile_grid,
    _tile_origins,
    _windows,
    _worker_rows,
)
from .transforms import OUT_KERNELS, constants

#: Tiles per task of dW's :func:`fused.filter_products_by_tiles`, in blocks: the inner
#: dimension of its GEMMs (1 and 4 blocks ran up to 1.13x and 1.27x slower than 2 on
#: ResNet-18's and VGG-16's layers).
_DW_SPAN = 2
#: Output channels per task of dW's :func:`fused.filter_grads_by_channels` (16 and 32
#: ran up to 1.4x and 1.1x slower than 64 on ResNet-18's and VGG-16's deep layers; 128
#: and 256 no faster), and the least bytes of products for which it runs.
_DW_O_BLOCK = 64
_DW_PRODUCT_BYTES = 4 * 2**20


def _filter_grad(grad_y: np.ndarray, x: np.ndarray, spec: ConvSpec, m: int) -> np.ndarray:
    """dW as the exact gradient of the Winograd forward: ``G^T [sum_t (A dY_t A^T) * V_t] G``."""
    tiles_h, tiles_w = _tile_grid(spec.out_height, spec.out_width, m)
    top, _, left, _ = spec.padding
    xp = _padded("winograd_x", x, (top, left), tiles_h * m + 2, tiles_w * m + 2)
    dyp = _padded("winograd_dy", grad_y, (0, 0), tiles_h * m, tiles_w * m)
    tiles = _tile_origins(spec.batch, tiles_h, tiles_w, m)
    n_ch, n_out = spec.in_channels, spec.out_channels
    grad_w = np.empty(spec.w_shape, dtype=spec.dtype)
    name = f"gt{m}"
    kc = constants(name, np.dtype(spec.dtype).name)
    which = OUT_KERNELS.index(name)
    if _dw_by_tiles(tiles[0].size, n_ch, n_out, spec.groups):
        grad_u = _products_by_tiles(xp, dyp, tiles, m)
    elif _dw_by_channels(spec, m):
        _grads_by_channels(xp, dyp, tiles, spec, m, which, kc, grad_w)
        return grad_w
    else:
        grad_u = _products_by_chunks(xp, dyp, tiles, spec.groups, m)
    launch(fused.filter_grads, which, grad_u, grad_w, kc, get_num_threads())
    return grad_w


def _dw_by_tiles(tiles: int, n_ch: int, n_out: int, groups: int) -> bool:
    """Whether dW's products run :func:`fused.filter_products_by_tiles` (ungrouped layers
    only): when the transformed input and dY of all tiles are at least twice the workers'
    partial sums, which are what that kernel moves through memory instead (measured on
    ResNet-18's and VGG-16's layers at F(4,3): 1.2-1.6x faster above that, up to 1.5x
    slower below it)."""
    sums = get_num_threads() * n_ch * n_out
    return groups == 1 and tiles * (n_ch + n_out) >= 2 * sums


def _dw_by_channels(spec: ConvSpec, m: int) -> bool:
    """Whether dW runs :func:`fused.filter_grads_by_channels`: when one chunk holds every
    tile and the products of all filters (``points * Cout * Cin_g`` values) are 4 MiB or
    more, which :func:`fused.filter_grads` would otherwise read back from memory (38 MB
    on VGG-16's 512@14 layer). Measured at F(4,3): 1.3-1.4x faster on the 512-channel
    layers on 14x14 and 7x7 maps, 1.03x on ResNet-18's 256@14; within 5 % either way on
    VGG-16's 512@28 layers and ResNet-18's 128@28 (2.4 MB, which this leaves out)."""
    points, item = (m + 2) ** 2, np.dtype(spec.dtype).itemsize
    tiles = _tile_count(spec, m)
    one_chunk = _chunk_tiles(tiles, points * (spec.in_channels + spec.out_channels) * item)
    products = points * spec.out_channels * (spec.in_channels // spec.groups) * item
    return one_chunk >= tiles and products >= _DW_PRODUCT_BYTES


def _grads_by_channels(
    xp: np.ndarray,
    dyp: np.ndarray,
    tiles: tuple[np.ndarray, ...],
    spec: ConvSpec,
    m: int,
    which: int,
    kc: np.ndarray,
    grad_w: np.ndarray,
) -> None:
    """``grad_w`` (out-transform ``which``) with each task's products out-transformed
    while in the worker's cache: see :func:`_dw_by_channels`."""
    stride = _row_stride(tiles[0].size)
    v = _windows(f"bt{m}", xp, tiles, m + 2, "winograd_v")
    d = _windows(f"a{m}", dyp, tiles, m, "winograd_m")
    o_block = min(_DW_O_BLOCK, spec.out_channels // spec.groups)
    cols = o_block * (spec.in_channels // spec.groups)
    gus = _worker_rows("winograd_sums", get_num_threads(), m, cols, xp.dtype)
    args = (which, d, v, grad_w, stride, o_block, kc, gus)
    launch(fused.filter_grads_by_channels, *args, calls_blas=True)


def _products_by_chunks(
    xp: np.ndarray, dyp: np.ndarray, tiles: tuple[np.ndarray, ...], groups: int, m: int
) -> np.ndarray:
    """dW's products summed over the tiles, ``gu[point, (g*out_g + o)*cin_g + c]``: the
    windows of a chunk of tiles transformed into memory, then one task per point."""
    points = (m + 2) ** 2
    n_ch, n_out = xp.shape[1], dyp.shape[1]
    tn, tr, tc = tiles
    grad_u = scratch("winograd_u", (points, n_out * n_ch // groups + fused.ROW_PAD), xp.dtype)
    step = _chunk_tiles(tn.size, points * (n_ch + n_out) * xp.itemsize)
    for t0 in range(0, tn.size, step):
        chunk = (tn[t0 : t0 + step], tr[t0 : t0 + step], tc[t0 : t0 + step])
        stride = _row_stride(chunk[0].size)
        v = _windows(f"bt{m}", xp, chunk, m + 2, "winograd_v")
        d = _windows(f"a{m}", dyp, chunk, m, "winograd_m")
        args = (d, v, grad_u, groups, stride, t0 == 0, get_num_threads())
        launch(fused.filter_products, *args, calls_blas=True)
    return grad_u


def _products_by_tiles(
    xp: np.ndarray, dyp: np.ndarray, tiles: tuple[np.ndarray, ...], m: int
) -> np.ndarray:
    """dW's products as :func:`_products_by_chunks` (one group), each worker transforming
    its own tasks' windows in cache and summing its products; the workers' sums are
    added here."""
    n_ch, n_out = xp.shape[1], dyp.shape[1]
    workers = get_num_threads()
    span = _DW_SPAN * fused.BLOCK
    vs = _worker_rows("winograd_vs", workers, m, n_ch * span, xp.dtype)
    ds = _worker_rows("winograd_prods", workers, m, n_out * span, xp.dtype)
    sums = _worker_rows("winograd_sums", workers, m, n_out * n_ch, xp.dtype)
    kc_v = constants(f"bt{m}", xp.dtype.name)
    kc_d = constants(f"a{m}", xp.dtype.name)
    args = (m, xp, dyp, kc_v, kc_d, *tiles, span, vs, ds, sums)
    launch(fused.filter_products_by_tiles, *args, calls_blas=True)
    grad_u = sums[0]
    for k in range(1, min(workers, -(-tiles[0].size // span))):
        grad_u[:, : n_out * n_ch] += sums[k, :, : n_out * n_ch]  # not the rows' padding
    return grad_u
