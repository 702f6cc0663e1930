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
filters rotated 180 degrees and their channel axes swapped (which the filter transform
reads in place), through the same forward path.
dW is the exact gradient of the Winograd forward: ``G^T [sum_t (A dY_t A^T) * V_t] G``,
one (Cout x tiles) @ (tiles x Cin) GEMM per tile point, by the path that keeps its data in
cache for the layer's shape. db is a plain sum.

Modules: ``correlate.py`` (the forward and dX, and the tile geometry), ``filter_grad.py``
(dW), ``fused.py`` (the parallel kernels), ``transforms.py`` and the generated
``_kernels.py`` (the transform matrices and their straight-line code); this one holds the
backend, its error model and its cost model.

A transform mixes every cell of a tile, so one NaN or Inf spreads over the tile's
outputs: the backend declares ``keeps_nonfinite_local = False``. Its rounding error grows
with the tile (the transforms' entries and the 1/f scalings grow): it declares the
audit's Winograd error model with its own transform matrices (``error_model``).
"""

from __future__ import annotations

import math

import numpy as np

from fastcnn.config import get_num_threads
from fastcnn.ops import CONV2D, CONV2D_BACKWARD
from fastcnn.registry import BackendBase, ConvGrads, ErrorModel, GradNeed, bias_gradient
from fastcnn.spec import ConvSpec, PoolSpec

from . import fused
from .correlate import (
    _O_BLOCK,
    _SPAN,
    _by_channels,
    _channel_task_c_block,
    _chunk_tiles,
    _correlate,
    _tile_count,
    _tile_grid,
    _tile_task_o_block,
)
from .filter_grad import _DW_O_BLOCK, _DW_SPAN, _dw_by_channels, _dw_by_tiles, _filter_grad
from .transforms import POINTS, TILES, transform_matrices

__all__ = ["POINTS", "TILES", "WinogradBackend", "backend", "transform_matrices"]


def error_model(tile: int) -> ErrorModel:
    """The audit's Winograd model for F(tile, 3) with this backend's own matrices (the
    growth of its bound comes from |A^T|, |G| and |B^T|, after Barabasz et al. 2020)."""
    matrices = tuple(
        tuple(tuple(float(v) for v in row) for row in matrix) for matrix in transform_matrices(tile)
    )
    return ErrorModel("winograd", tile=tile, transforms=matrices)


# Cost model for backend="auto": seconds = the coefficients below . the features of
# _features (an intercept, GEMM FLOPs, bytes of transformed data, bytes of filters read,
# GEMM calls, narrow GEMMs' FLOPs), one model for every tile size. Fitted with
# benchmarks/fit_cost_models.py (non-negative least squares on relative error) on three
# runs in benchmarks/runs/: 2026-12-08-refit-winograd.json (the 3x3 stride-1 layers of
# ResNet-18, VGG-16 and the quick suite) and 2026-12-08-resnet20-quick-b{32,2}.json
# (ResNet-20's CIFAR layers and the quick suite at batches 32 and 2), winograd2 and
# winograd4, float32, two threads, a 2-core AMD Zen 4 (the machine im2col's and numba's
# convolution models were fitted on): worst error 29 % forward and backward. The model
# fitted on the Zen 5 of 2026-12-01 (GEMMs 2.4x as fast) put these rows at a median 38 %
# (forward) and 32 % (backward) under their times here, so auto took Winograd where
# im2col was faster: F(2,3)'s backward of ResNet-18's 512@7, 1.17-1.23x im2col's time.
# The small layers fix the intercept (a call's fixed cost): fitted on large layers alone
# it was 0, and auto picked Winograd on ResNet-20's layers at 1.4-2.5x the fastest
# backend's time.
_COST = {
    CONV2D: (0.000124, 6.04e-12, 1.45e-10, 2.14e-10, 3.01e-08, 9.31e-12),
    CONV2D_BACKWARD: (0.000241, 6.58e-12, 1.62e-10, 5.25e-10, 5.11e-08, 5.55e-12),
}

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
            c_block = _channel_task_c_block(m, n_ch // spec.groups, item)
            block = points * _O_BLOCK * (c_block + chunk) * item
        else:
            main = points * n_out * (n_ch // spec.groups) * item
            span = _SPAN * fused.BLOCK
            cin_g, out_g = n_ch // spec.groups, n_out // spec.groups
            o_block = _tile_task_o_block(m, span, cin_g, out_g, item)
            block = points * (n_ch + o_block) * span * item
        total = padded + main + get_num_threads() * block
        if op == CONV2D_BACKWARD and _dw_by_tiles(tiles, n_ch, n_out, spec.groups):
            span = _DW_SPAN * fused.BLOCK
            per_worker = points * ((n_ch + n_out) * span + n_ch * n_out)
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
            # channel axes swapped (the filter transform reads them so: a copy took
            # 0.23 ms at 256 x 256 filters), read 2 - pad cells before each output cell.
            top, _, left, _ = spec.padding
            zeros = np.zeros(spec.in_channels, dtype=spec.dtype)
            offset, in_shape = (2 - top, 2 - left), (spec.height, spec.width)
            grad_x = _correlate(grad_y, w, spec.groups, zeros, offset, in_shape, m, swap=True)
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
