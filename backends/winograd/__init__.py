"""Winograd minimal filtering F(m x m, 3 x 3) for 3x3 stride-1 convolutions.

Each m x m block of output ("tile") is computed from the (m+2) x (m+2) input window
around it as ``Y = A^T [(G g G^T) * (B^T d B)] A`` (Lavin & Gray 2016): the filter ``g``
and the window ``d`` are transformed, multiplied point by point, and transformed back.
Summed over input channels, the point-by-point products become one matrix product per
tile point: with the transformed input laid out as ``V[point, channel, tile]`` and the
transformed filters as ``U[point, out_channel, channel]``, ``M[p] = U[p] @ V[p]`` is a
(Cout x Cin) @ (Cin x tiles) GEMM over the whole batch chunk, which BLAS runs near its
speed. F(4,3) does 36 multiplies per 16 outputs where direct summation does 144.

The whole pipeline of a block of tiles runs in one parallel Numba kernel
(``fused.py``): the input transform (from a zero-padded copy of the input), the GEMMs
(``np.dot`` called by each worker, with BLAS held at one thread) and the inverse
transform, so the transformed data stays in the worker's cache. The transforms are
generated straight-line code (``_kernels.py``, from the matrices by ``transforms.py``),
vectorised across a block of tiles. Filters are transformed once per call (never cached:
in training they change every step); on small maps with many filters, each task
transforms its own block of filters instead. Tiles are processed in chunks whose
transformed data stays under ``fastcnn.config.get_workspace_limit()`` (and a cache-sized
cap).

Backward: dX is the 3x3 stride-1 correlation of dY (read with offset ``2 - pad``) with the
filters rotated 180 degrees and their channel axes swapped, through the same forward path.
dW is the exact gradient of the Winograd forward: ``G^T [sum_t (A dY_t A^T) * V_t] G``,
one (Cout x tiles) @ (tiles x Cin) GEMM per tile point. db is a plain sum.

A transform mixes every cell of a tile, so one NaN or Inf spreads over the tile's
outputs: the backend declares ``keeps_nonfinite_local = False``. Its rounding error grows
with the tile (the transforms' entries and the 1/f scalings grow): it declares the
audit's Winograd error model with its own transform matrices (``error_model``).
"""

from __future__ import annotations

import math

import numpy as np

from fastcnn.config import get_num_threads, get_workspace_limit
from fastcnn.jit import launch, readonly
from fastcnn.ops import CONV2D, CONV2D_BACKWARD
from fastcnn.registry import BackendBase, ConvGrads, ErrorModel, GradNeed, bias_gradient
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec, PoolSpec

from . import fused
from .transforms import (
    IN_KERNELS,
    OUT_KERNELS,
    POINTS,
    TILES,
    constants,
    named_matrices,
    transform_matrices,
)

__all__ = ["POINTS", "TILES", "WinogradBackend", "backend", "transform_matrices"]


def error_model(tile: int) -> ErrorModel:
    """The audit's Winograd model for F(tile, 3) with this backend's own matrices (the
    growth of its bound comes from |A^T|, |G| and |B^T|, after Barabasz et al. 2020)."""
    matrices = tuple(
        tuple(tuple(float(v) for v in row) for row in matrix) for matrix in transform_matrices(tile)
    )
    return ErrorModel("winograd", tile=tile, transforms=matrices)


#: The transformed input of one chunk of tiles (on small maps, and dW's input and dY) is
#: kept under this many bytes even when the workspace limit allows more, so that it stays
#: in the last-level cache between the transforms and the GEMMs.
_CACHE_FRIENDLY_CHUNK_BYTES = 16 * 2**20
#: Tiles per task of :func:`fused.by_tiles`, in blocks: the width of its GEMMs.
_SPAN = 1
#: Tiles per task of dW's :func:`fused.filter_products_by_tiles`, in blocks: the inner
#: dimension of its GEMMs (1 and 4 blocks ran up to 1.13x and 1.27x slower than 2 on
#: ResNet-18's and VGG-16's layers).
_DW_SPAN = 2
#: Output channels per task of dW's :func:`fused.filter_grads_by_channels` (16 and 32
#: ran up to 1.4x and 1.1x slower than 64 on ResNet-18's and VGG-16's deep layers; 128
#: and 256 no faster), and the least bytes of products for which it runs.
_DW_O_BLOCK = 64
_DW_PRODUCT_BYTES = 4 * 2**20
#: Output channels per task of :func:`fused.by_channels`.
_O_BLOCK = 32

# Cost model for backend="auto": seconds = the coefficients below . the features of
# _features (an intercept, GEMM FLOPs, bytes of transformed data, bytes of filters read,
# GEMM calls, narrow GEMMs' FLOPs), one model for every tile size. Fitted with
# benchmarks/fit_cost_models.py (non-negative least squares on relative error) on two
# runs (benchmarks/runs/2026-11-30-refit2-suites.json, of this code, and
# 2026-11-30-refit-quick-lenet-large.json, whose layers this code runs alike; its rows:
# ResNet-18's and VGG-16's 3x3 stride-1 layers, winograd2 and winograd4, float32, two
# threads, a 2-core AMD Zen 5, numpy's OpenBLAS on its own kernels): worst error 29 %
# forward, 27 % backward.
_COST = {
    CONV2D: (4.6e-05, 4.57e-12, 7.38e-11, 1.38e-10, 2.37e-08, 1.7e-12),
    CONV2D_BACKWARD: (0.0, 5.68e-12, 1.11e-10, 3.77e-10, 5.34e-08, 4.53e-12),
}


# --- the algorithm ---------------------------------------------------------------------------


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
) -> np.ndarray:
    """3x3 stride-1 correlation of ``x`` with filters ``w`` (plus ``bias``).

    Output cell (r, s) reads input rows ``r - offset[0] ..`` and columns
    ``s - offset[1] ..``; cells outside ``x`` count as zero, so any padding (or a crop,
    for a negative offset) is an offset.
    """
    n_img, n_ch = x.shape[:2]
    n_out = w.shape[0]
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
            us = _worker_rows("winograd_us", workers, m, _O_BLOCK * w.shape[1], x.dtype)
            prods = _worker_rows("winograd_prods", workers, m, _O_BLOCK * stride, x.dtype)
            args = (xp, w, v, kc_g, kc_out, bias, y, *tiles, _O_BLOCK, us, prods)
            launch(fused.by_channels, m, *args, calls_blas=True)
    else:
        u = _transformed_filters(w, m)
        kc_in = constants(f"bt{m}", x.dtype.name)
        span = _SPAN * fused.BLOCK
        vs = _worker_rows("winograd_vs", workers, m, n_ch * span, x.dtype)
        prods = _worker_rows("winograd_prods", workers, m, n_out // groups * span, x.dtype)
        args = (xp, u, groups, kc_in, kc_out, bias, y, tn, tr, tc, span, vs, prods)
        launch(fused.by_tiles, m, *args, calls_blas=True)
    return y


def _worker_rows(slot: str, workers: int, m: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """Per-worker ``(points, cols + ROW_PAD)`` arrays from this thread's scratch: reused
    from call to call, so that no call faults in megabytes of fresh pages."""
    return scratch(slot, (workers, (m + 2) ** 2, cols + fused.ROW_PAD), dtype)


def _by_channels(tiles: int, out_g: int) -> bool:
    """Whether to run :func:`fused.by_channels`: with fewer tiles than filters per group,
    each task transforms its own filters, which then never travel through memory (at
    F(4,3) they are 4x the filters' bytes)."""
    return tiles < out_g


def _transformed_filters(w: np.ndarray, m: int) -> np.ndarray:
    """``U[p, o*cin_g + c] = (G w[o, c] G^T)[p]``: the filters transformed once per call
    (never cached: in training they change every step), one row per tile point."""
    n_out, cin_g = w.shape[:2]
    u = scratch("winograd_u", ((m + 2) ** 2, n_out * cin_g + fused.ROW_PAD), w.dtype)
    name = f"g{m}"
    kc = constants(name, w.dtype.name)
    launch(fused.filters, IN_KERNELS.index(name), w, u, kc, get_num_threads())
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
    parts = scratch("winograd_parts", (workers, n_out * n_ch), xp.dtype)
    kc_v = constants(f"bt{m}", xp.dtype.name)
    kc_d = constants(f"a{m}", xp.dtype.name)
    args = (m, xp, dyp, kc_v, kc_d, *tiles, span, vs, ds, sums, parts)
    launch(fused.filter_products_by_tiles, *args, calls_blas=True)
    grad_u = sums[0]
    for k in range(1, min(workers, -(-tiles[0].size // span))):
        grad_u[:, : n_out * n_ch] += sums[k, :, : n_out * n_ch]  # not the rows' padding
    return grad_u


# --- the backend -----------------------------------------------------------------------------


class WinogradBackend(BackendBase):
    """F(m x m, 3 x 3) minimal filtering; ``tile=None`` picks m per call by the cost model."""

    ops = frozenset({CONV2D, CONV2D_BACKWARD})
    keeps_nonfinite_local = False
    # Its GEMMs run on OpenBLAS, whose rounding changes with the thread count.
    thread_invariant = False

    def __init__(self, tile: int | None = None) -> None:
        self.tile = tile
        self.name = "winograd" if tile is None else f"winograd{tile}"
        if tile is None:
            self.summary = (
                "Winograd F(2x2,3x3) or F(4x4,3x3), tile chosen per call by cost "
                "(see winograd2 / winograd4): transforms in Numba, one GEMM per tile point"
            )
        else:
            self.summary = (
                f"Winograd F({tile}x{tile},3x3) for 3x3 stride-1 convolutions: transforms "
                f"in Numba, {(tile + 2) ** 2} GEMMs over channels (one per tile point)"
            )
        # The widest tile this backend may run: its error bound is the loosest.
        self.error_model = error_model(tile if tile is not None else max(TILES))

    def supports(self, op: str, spec: ConvSpec | PoolSpec) -> str | None:
        if not isinstance(spec, ConvSpec):
            return "it has no pooling"
        if spec.kernel != (3, 3):
            return f"it computes 3x3 kernels only, not kernel={spec.kernel}"
        if spec.stride != (1, 1):
            return f"it computes stride 1 only, not stride={spec.stride}"
        if spec.dilation != (1, 1):
            return f"it computes dilation 1 only, not dilation={spec.dilation}"
        return None

    # --- tile choice, memory and cost ----------------------------------------------------------

    def tile_for(self, op: str, spec: ConvSpec) -> int:
        """The output tile size m this backend runs for ``op`` on ``spec``."""
        if self.tile is not None:
            return self.tile
        return min(TILES, key=lambda m: self._estimate(op, spec, m))

    def workspace_bytes(self, op: str, spec: ConvSpec | PoolSpec) -> int:
        """The padded input, the transformed filters (or, on small maps, one chunk's
        transformed input) and the workers' block buffers; dW adds its chunk's
        transformed input and dY (and the workers' products of a block of filters), or
        the workers' buffers and sums."""
        if not isinstance(spec, ConvSpec):
            return 0
        m = self.tile_for(op, spec)
        points = (m + 2) ** 2
        item = np.dtype(spec.dtype).itemsize
        tiles_h, tiles_w = _tile_grid(spec.out_height, spec.out_width, m)
        tiles = spec.batch * tiles_h * tiles_w
        n_ch, n_out = spec.in_channels, spec.out_channels
        padded = spec.batch * n_ch * (tiles_h * m + 2) * (tiles_w * m + 2) * item
        if _by_channels(tiles, n_out // spec.groups):
            chunk = _chunk_tiles(tiles, points * n_ch * item)
            main = chunk * points * n_ch * item
            block = points * _O_BLOCK * (n_ch // spec.groups + chunk) * item
        else:
            main = points * n_out * (n_ch // spec.groups) * item
            block = points * (n_ch + n_out) * _SPAN * fused.BLOCK * item
        total = padded + main + get_num_threads() * block
        if op == CONV2D_BACKWARD and _dw_by_tiles(tiles, n_ch, n_out, spec.groups):
            span = _DW_SPAN * fused.BLOCK
            per_worker = points * ((n_ch + n_out) * span + n_ch * n_out) + n_ch * n_out
            total += get_num_threads() * per_worker * item
        elif op == CONV2D_BACKWARD:
            chunk = _chunk_tiles(tiles, points * (n_ch + n_out) * item)
            total += chunk * points * (n_ch + n_out) * item
            if _dw_by_channels(spec, m):  # the workers' products of a block of filters
                block = min(_DW_O_BLOCK, n_out // spec.groups) * (n_ch // spec.groups)
                total += get_num_threads() * points * block * item
        return total

    def estimate_seconds(self, op: str, spec: ConvSpec | PoolSpec) -> float:
        """Predicted seconds for ``op`` on ``spec`` (the fitted model above)."""
        if not isinstance(spec, ConvSpec):
            return math.inf
        return self._estimate(op, spec, self.tile_for(op, spec))

    def _estimate(self, op: str, spec: ConvSpec, m: int) -> float:
        return float(np.dot(_COST[op], _features(op, spec, m)))

    def cost_features(self, op: str, spec: ConvSpec) -> tuple[float, ...]:
        """The cost model's features for ``op`` on ``spec`` at the tile it runs."""
        return _features(op, spec, self.tile_for(op, spec))

    # --- convolution ---------------------------------------------------------------------------

    def conv2d(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
    ) -> np.ndarray:
        m = self.tile_for(CONV2D, spec)
        bias = b if b is not None else np.zeros(spec.out_channels, dtype=spec.dtype)
        top, _, left, _ = spec.padding
        out_shape = (spec.out_height, spec.out_width)
        return _correlate(x, w, spec.groups, bias, (top, left), out_shape, m)

    def conv2d_backward(
        self,
        grad_y: np.ndarray,
        x: np.ndarray,
        w: np.ndarray,
        spec: ConvSpec,
        need: GradNeed,
    ) -> ConvGrads:
        m = self.tile_for(CONV2D_BACKWARD, spec)
        grad_x = grad_w = grad_b = None
        if need.x:
            # dX[c] = sum_o dY[o] correlated with w[o, c] rotated 180 degrees: in-group
            # channel axes swapped, read 2 - pad cells before each output cell.
            groups, n_out, cin_g = spec.groups, spec.out_channels, spec.in_channels // spec.groups
            rotated = w.reshape(groups, n_out // groups, cin_g, 3, 3)[..., ::-1, ::-1]
            swapped = np.ascontiguousarray(rotated.transpose(0, 2, 1, 3, 4))
            swapped = swapped.reshape(spec.in_channels, n_out // groups, 3, 3)
            top, _, left, _ = spec.padding
            zeros = np.zeros(spec.in_channels, dtype=spec.dtype)
            offset, in_shape = (2 - top, 2 - left), (spec.height, spec.width)
            grad_x = _correlate(grad_y, swapped, groups, zeros, offset, in_shape, m)
        if need.w:
            grad_w = _filter_grad(grad_y, x, spec, m)
        if need.b:
            grad_b = bias_gradient(grad_y, spec)
        return ConvGrads(grad_x, grad_w, grad_b)


def _features(op: str, spec: ConvSpec, m: int) -> tuple[float, ...]:
    """Features of the cost model at tile size m: an intercept, then summed over the
    passes of ``op`` (the forward; or dX, which is a correlation like the forward, and
    dW) the GEMM FLOPs, the bytes of data transformed (input and products), the bytes of
    filters read (transformed ones, or plain ones for :func:`fused.by_channels`, which
    transforms them per task), GEMM calls (each has a fixed cost), the GEMM FLOPs again
    when there are fewer tiles than a block (GEMMs that narrow run far below BLAS's
    speed).

    float64 doubles the FLOP terms (half the SIMD lanes); bytes scale with the itemsize.
    """
    if op == CONV2D:
        passes = [_correlation_features(spec, m, spec.in_channels, spec.out_channels)]
    else:
        dx = _correlation_features(spec, m, spec.out_channels, spec.in_channels)
        passes = [dx, _filter_grad_features(spec, m)]
    return (1.0, *(float(sum(column)) for column in zip(*passes, strict=True)))


def _tile_count(spec: ConvSpec, m: int) -> int:
    tiles_h, tiles_w = _tile_grid(spec.out_height, spec.out_width, m)
    return spec.batch * tiles_h * tiles_w


def _correlation_features(spec: ConvSpec, m: int, n_in: int, n_out: int) -> tuple[float, ...]:
    """:func:`_features`' terms for one :func:`_correlate` of ``n_in`` channels into
    ``n_out`` (the forward, or dX with the two swapped)."""
    points, item, tiles = (m + 2) ** 2, np.dtype(spec.dtype).itemsize, _tile_count(spec, m)
    cin_g, out_g = n_in // spec.groups, n_out // spec.groups
    flops = 2.0 * points * n_out * cin_g * tiles * item / 4
    data = float(points * (n_in + n_out) * item * tiles)
    if _by_channels(tiles, out_g):
        chunks = -(-tiles // _chunk_tiles(tiles, points * n_in * item))
        filters = float(9 * n_out * cin_g * item * chunks)
        calls = float(points * spec.groups * -(-out_g // _O_BLOCK) * chunks)
    else:
        filters = float(points * n_out * cin_g * item)
        calls = float(points * spec.groups * -(-tiles // fused.BLOCK))
    narrow = flops if tiles < fused.BLOCK else 0.0
    return flops, data, filters, calls, narrow


def _filter_grad_features(spec: ConvSpec, m: int) -> tuple[float, ...]:
    """:func:`_features`' terms for :func:`_filter_grad`."""
    points, item, tiles = (m + 2) ** 2, np.dtype(spec.dtype).itemsize, _tile_count(spec, m)
    n_ch, n_out = spec.in_channels, spec.out_channels
    flops = 2.0 * points * n_out * (n_ch // spec.groups) * tiles * item / 4
    data = float(points * (n_ch + n_out) * item * tiles)
    if _dw_by_tiles(tiles, n_ch, n_out, spec.groups):
        calls = float(points * -(-tiles // (_DW_SPAN * fused.BLOCK)))
    elif _dw_by_channels(spec, m):
        calls = float(points * spec.groups * -(-(n_out // spec.groups) // _DW_O_BLOCK))
    else:
        chunks = -(-tiles // _chunk_tiles(tiles, points * (n_ch + n_out) * item))
        calls = float(points * spec.groups * chunks)
    narrow = flops if tiles < fused.BLOCK else 0.0
    return flops, data, 0.0, calls, narrow


backend = WinogradBackend()
winograd2 = WinogradBackend(2)
winograd4 = WinogradBackend(4)
