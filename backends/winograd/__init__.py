"""Winograd minimal filtering F(m x m, 3 x 3) for 3x3 stride-1 convolutions.

Each m x m block of output ("tile") is computed from the (m+2) x (m+2) input window
around it as ``Y = A^T [(G g G^T) * (B^T d B)] A`` (Lavin & Gray 2016): the filter ``g``
and the window ``d`` are transformed, multiplied point by point, and transformed back.
Summed over input channels, the point-by-point products become one matrix product per
tile point: with the transformed input laid out as ``V[point, channel, tile]`` and the
transformed filters as ``U[point, out_channel, channel]``, ``M[p] = U[p] @ V[p]`` is a
(Cout x Cin) @ (Cin x tiles) GEMM over the whole batch chunk, which BLAS runs near its
speed. F(4,3) does 36 multiplies per 16 outputs where direct summation does 144.

The transforms are two parallel Numba kernels (``_kernels.py``, generated from the matrices
by ``transforms.py``), each reading and writing a tile once and vectorised across a block
of tiles: :func:`_tiles_in` (``L d L^T`` of every window, zero outside the source: the
input transform, and also the filter transform and dY's transform for dW) and
:func:`_tiles_out` (``R M R^T`` scattered back, cropped, plus bias: the inverse transform,
and also dW's final transform). Filters are transformed once per call (never cached: in
training they change every step). Tiles are processed in chunks whose ``V`` and ``M``
stay under ``fastcnn.config.get_workspace_limit()`` (and a cache-sized cap).

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

from . import _kernels
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


#: Transformed input and products of one chunk are kept under this many bytes even when
#: the workspace limit allows more, so that they stay in the last-level cache between
#: the transform, the GEMMs and the inverse transform.
_CACHE_FRIENDLY_CHUNK_BYTES = 16 * 2**20
#: Extra bytes between the tile points of transformed data (see :func:`_skewed`).
_SKEW_BYTES = 64

# Cost model for backend="auto": seconds = the coefficients below . the features of
# _features (an intercept, GEMM FLOPs, bytes of transformed data, bytes of transformed
# filters times chunks, GEMM calls), one model for every tile size. Hand-fitted by
# non-negative least squares on relative error (2026-11-30, a shared 2-core AMD Zen 5,
# OpenBLAS's Haswell kernels): the targets were im2col's model times winograd's time
# over im2col's, as measured single-threaded side by side on the 3x3 stride-1 layers of
# ResNet-18 and VGG-16 (the host was too loaded for two-thread timings to mean anything).
# The intercepts were fixed by hand, not fitted (those layers cannot tell them): three
# Numba launches forward and seven backward at the numba backend's fitted cost of one,
# so that tiny calls go to the exact direct methods. All coefficients were then doubled:
# in `fastcnn bench` at two threads (GEMM 246 GFLOP/s, PyTorch in the same run) winograd
# ran about twice as slow beside im2col and numba as the single-thread fit says (its
# Numba transforms share the two cores with OpenBLAS's spinning threads), and doubled,
# the model never picks it over a backend more than 15 % faster in that run.
# Refit with benchmarks/fit_cost_models.py from `fastcnn bench` runs on a quiet machine.
_COST = {
    CONV2D: (3e-4, 2.7e-12, 8.66e-10, 9.2e-10, 0.0),
    CONV2D_BACKWARD: (8e-4, 0.0, 1.05e-09, 1.25e-09, 6.64e-06),
}


def _rows(a: np.ndarray) -> np.ndarray:
    """The ``(points, stride)`` C-contiguous view of a :func:`_skewed` array."""
    item = a.itemsize
    return np.lib.stride_tricks.as_strided(
        a, (a.shape[0], a.strides[0] // item), (a.strides[0], item)
    )


def _tiles_in(
    name: str,
    src: np.ndarray,
    out: np.ndarray,
    t0: int,
    step: int,
    top: int,
    left: int,
    tiles_h: int,
    tiles_w: int,
) -> None:
    """``out[:, c, t - t0] = L d_t L^T`` for the windows ``d_t`` of ``src`` (see _kernels)."""
    k = named_matrices()[name].shape[1]
    kc = constants(name, src.dtype.name)
    which = IN_KERNELS.index(name)
    args = (_rows(out), out.shape[2], t0, step, top, left, tiles_h, tiles_w, get_num_threads())
    launch(_kernels.tiles_in, which, k, readonly(src), kc, *args)


def _tiles_out(
    name: str,
    prod: np.ndarray,
    bias: np.ndarray,
    dst: np.ndarray,
    t0: int,
    tiles_h: int,
    tiles_w: int,
) -> None:
    """``dst``'s tiles = ``R M_t R^T + bias`` of the products ``prod`` (see _kernels)."""
    m = named_matrices()[name].shape[0]
    kc = constants(name, dst.dtype.name)
    rows = readonly(_rows(prod))
    args = (kc, readonly(bias), dst, t0, tiles_h, tiles_w, get_num_threads())
    launch(_kernels.tiles_out, OUT_KERNELS.index(name), m, rows, prod.shape[2], *args)


# --- the algorithm ---------------------------------------------------------------------------


def _skewed(slot: str | None, points: int, rows: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """A ``(points, rows, cols)`` array whose points lie a whole number of pages plus one
    cache line apart (``slot``: a scratch buffer; None: a new array).

    A transform kernel writes (or reads) all points of a tile at once: points a multiple
    of 4 KiB apart map to the same few L1 sets, and their 16 or 36 streams then evict each
    other on every access (measured: 10x slower filter transforms).
    """
    item = np.dtype(dtype).itemsize
    page = -(-rows * cols * item // 4096) * 4096
    stride = (page + _SKEW_BYTES) // item
    size = (points * stride,)
    flat = scratch(slot, size, dtype) if slot else np.empty(size, dtype=dtype)
    return np.lib.stride_tricks.as_strided(
        flat, (points, rows, cols), (stride * item, cols * item, item)
    )


def _tile_grid(out_h: int, out_w: int, m: int) -> tuple[int, int]:
    return -(-out_h // m), -(-out_w // m)


def _chunk_tiles(total: int, bytes_per_tile: int) -> int:
    """Tiles per chunk: the scratch of a chunk within the workspace limit and cache cap."""
    limit = min(get_workspace_limit(), _CACHE_FRIENDLY_CHUNK_BYTES)
    return max(1, min(total, limit // max(bytes_per_tile, 1)))


def _filters(w: np.ndarray, m: int, groups: int) -> np.ndarray:
    """``U[p, group, o, c] = (G w[o, c] G^T)[p]``, the filters transformed once per call."""
    n_out, cin_g = w.shape[:2]
    points = (m + 2) ** 2
    u = _skewed(None, points, 1, n_out * cin_g, w.dtype)
    # Each filter is a one-tile image of one channel.
    _tiles_in(f"g{m}", w.reshape(-1, 1, 3, 3), u, 0, 3, 0, 0, 1, 1)
    return u.reshape(points, groups, n_out // groups, cin_g)


def _product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Stacked GEMM ``a @ b``, or a broadcast product when the inner size is 1 (depthwise)."""
    if a.shape[-1] == 1:
        np.multiply(a, b, out=out)
    else:
        np.matmul(a, b, out=out)


def _correlate(
    x: np.ndarray,
    u: np.ndarray,
    bias: np.ndarray,
    offset: tuple[int, int],
    out_shape: tuple[int, int],
    m: int,
) -> np.ndarray:
    """3x3 stride-1 correlation of ``x`` with transformed filters ``u`` (plus ``bias``).

    Output cell (r, s) reads input rows ``r - offset[0] ..`` and columns
    ``s - offset[1] ..``; cells outside ``x`` count as zero, so any padding (or a crop,
    for a negative offset) is an offset.
    """
    n_img, n_ch = x.shape[:2]
    points, groups, out_g, cin_g = u.shape
    n_out = groups * out_g
    tiles_h, tiles_w = _tile_grid(*out_shape, m)
    total = n_img * tiles_h * tiles_w
    y = np.empty((n_img, n_out, *out_shape), dtype=x.dtype)
    step = _chunk_tiles(total, points * (n_ch + n_out) * x.itemsize)
    for t0 in range(0, total, step):
        count = min(step, total - t0)
        v = _skewed("winograd_v", points, n_ch, count, x.dtype)
        _tiles_in(f"bt{m}", x, v, t0, m, *offset, tiles_h, tiles_w)
        prod = _skewed("winograd_m", points, n_out, count, x.dtype)
        _product(
            u, v.reshape(points, groups, cin_g, count), prod.reshape(points, groups, out_g, count)
        )
        _tiles_out(f"at{m}", prod, bias, y, t0, tiles_h, tiles_w)
    return y


def _filter_grad(grad_y: np.ndarray, x: np.ndarray, spec: ConvSpec, m: int) -> np.ndarray:
    """dW as the exact gradient of the Winograd forward: ``G^T [sum_t (A dY_t A^T) * V_t] G``."""
    points = (m + 2) ** 2
    groups, n_out = spec.groups, spec.out_channels
    out_g, cin_g = n_out // groups, spec.in_channels // groups
    tiles_h, tiles_w = _tile_grid(spec.out_height, spec.out_width, m)
    total = spec.batch * tiles_h * tiles_w
    top, _, left, _ = spec.padding
    grad_u = _skewed(None, points, 1, n_out * cin_g, spec.dtype)
    grad_u[...] = 0
    grad_u4 = grad_u.reshape(points, groups, out_g, cin_g)
    step = _chunk_tiles(total, points * (spec.in_channels + n_out) * x.itemsize)
    for t0 in range(0, total, step):
        count = min(step, total - t0)
        v = _skewed("winograd_v", points, spec.in_channels, count, x.dtype)
        _tiles_in(f"bt{m}", x, v, t0, m, top, left, tiles_h, tiles_w)
        d = _skewed("winograd_m", points, n_out, count, x.dtype)
        _tiles_in(f"a{m}", grad_y, d, t0, m, 0, 0, tiles_h, tiles_w)
        v4 = v.reshape(points, groups, cin_g, count)
        d4 = d.reshape(points, groups, out_g, count)
        if cin_g == 1:
            grad_u4 += (d4 * v4).sum(axis=-1, keepdims=True)
        else:
            grad_u4 += np.matmul(d4, v4.transpose(0, 1, 3, 2))
    grad_w = np.empty(spec.w_shape, dtype=spec.dtype)
    zeros = np.zeros(1, dtype=spec.dtype)
    _tiles_out(f"gt{m}", grad_u, zeros, grad_w.reshape(-1, 1, 3, 3), 0, 1, 1)
    return grad_w


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
        """Transformed filters plus one chunk's transformed input and products."""
        if not isinstance(spec, ConvSpec):
            return 0
        m = self.tile_for(op, spec)
        points = (m + 2) ** 2
        item = np.dtype(spec.dtype).itemsize
        tiles_h, tiles_w = _tile_grid(spec.out_height, spec.out_width, m)
        per_tile = points * (spec.in_channels + spec.out_channels) * item
        chunk = _chunk_tiles(spec.batch * tiles_h * tiles_w, per_tile)
        filters = points * spec.out_channels * (spec.in_channels // spec.groups) * item
        return chunk * per_tile + filters * (2 if op == CONV2D_BACKWARD else 1)

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
        u = _filters(w, m, spec.groups)
        bias = b if b is not None else np.zeros(spec.out_channels, dtype=spec.dtype)
        top, _, left, _ = spec.padding
        return _correlate(x, u, bias, (top, left), (spec.out_height, spec.out_width), m)

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
            u = _filters(swapped.reshape(spec.in_channels, n_out // groups, 3, 3), m, groups)
            top, _, left, _ = spec.padding
            zeros = np.zeros(spec.in_channels, dtype=spec.dtype)
            grad_x = _correlate(grad_y, u, zeros, (2 - top, 2 - left), (spec.height, spec.width), m)
        if need.w:
            grad_w = _filter_grad(grad_y, x, spec, m)
        if need.b:
            grad_b = bias_gradient(grad_y, spec)
        return ConvGrads(grad_x, grad_w, grad_b)


def _features(op: str, spec: ConvSpec, m: int) -> tuple[float, ...]:
    """Features of the cost model at tile size m: an intercept, GEMM FLOPs, bytes of
    transformed data (input and products), bytes of transformed filters, and GEMM calls.

    The backward pass runs the forward machinery for dX and a second set of GEMMs for dW.
    float64 doubles the FLOP term (half the SIMD lanes); bytes scale with the itemsize.
    """
    points = (m + 2) ** 2
    item = np.dtype(spec.dtype).itemsize
    tiles_h, tiles_w = _tile_grid(spec.out_height, spec.out_width, m)
    tiles = spec.batch * tiles_h * tiles_w
    cin_g = spec.in_channels // spec.groups
    per_tile = points * (spec.in_channels + spec.out_channels) * item
    chunks = -(-tiles // _chunk_tiles(tiles, per_tile))
    passes = 2 if op == CONV2D_BACKWARD else 1
    flops = 2.0 * points * spec.out_channels * cin_g * tiles * item / 4
    data = float(per_tile * tiles)
    filters = float(points * spec.out_channels * cin_g * item * chunks)
    calls = float(points * spec.groups * chunks)
    return (1.0, passes * flops, passes * data, passes * filters, passes * calls)


backend = WinogradBackend()
winograd2 = WinogradBackend(2)
winograd4 = WinogradBackend(4)
