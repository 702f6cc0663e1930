"""Winograd minimal filtering F(m x m, 3 x 3) for 3x3 stride-1 convolutions.

Each m x m block of output ("tile") is computed from the (m+2) x (m+2) input window
around it as ``Y = A^T [(G g G^T) * (B^T d B)] A`` (Lavin & Gray 2016): the filter ``g``
and the window ``d`` are transformed, multiplied point by point, and transformed back.
Summed over input channels, the point-by-point products become one matrix product per
tile point: with the transformed input laid out as ``V[point, channel, tile]`` and the
transformed filters as ``U[point, out_channel, channel]``, ``M[p] = U[p] @ V[p]`` is a
(Cout x Cin) @ (Cin x tiles) GEMM over the whole batch chunk, which BLAS runs near its
speed. F(4,3) does 36 multiplies per 16 outputs where direct summation does 144.

The transforms are two Numba kernels, each reading and writing a tile once and vectorised
across a block of tiles: :func:`_tiles_in` (``L d L^T`` of every window, zero outside the
source: the input transform, and also the filter transform and dY's transform for dW) and
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
with the tile (the transforms' entries and the 1/f scalings grow), which it declares as
``error_factor``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

import numpy as np
from numba import njit, prange

from fastcnn.config import get_workspace_limit
from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.ops import CONV2D, CONV2D_BACKWARD
from fastcnn.registry import BackendBase, ConvGrads, GradNeed
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec, PoolSpec

#: Interpolation points per output tile size m (plus the point at infinity, implied).
#: Points of the smallest magnitude keep the transforms' entries (powers of the points,
#: and 1/f_j with f_j the products of the points' differences) closest to 1, which is what
#: keeps the rounding error low (Barabasz et al. 2020); 0 and infinity give sparse rows,
#: and +-a pairs give symmetric ones. These are wincnn's and Lavin's choices.
POINTS: dict[int, tuple[Fraction, ...]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2)),
}
TILES = tuple(POINTS)

#: Normwise float32 error relative to direct summation, rounded up, per tile size: the
#: ratios of Barabasz et al. 2020's measurements (direct 4.6e-8, F(2,3) 7.7e-8, F(4,3)
#: 3.3e-7). The audit multiplies its direct-summation tolerance by this.
ERROR_FACTOR = {2: 2.0, 4: 8.0}

#: Tiles transformed together by one task of a transform kernel: the vector length of
#: its inner loops.
_BLOCK = 64
#: Transformed input and products of one chunk are kept under this many bytes even when
#: the workspace limit allows more, so that they stay in the last-level cache between
#: the transform, the GEMMs and the inverse transform.
_CACHE_FRIENDLY_CHUNK_BYTES = 16 * 2**20

# Cost model for backend="auto": seconds = the coefficients below . the features of
# WinogradBackend.cost_features (see there). Hand-fitted (placeholder until refitted).
_COST = {
    CONV2D: (5e-05, 6e-12, 2e-10, 4e-10, 2e-06),
    CONV2D_BACKWARD: (1e-4, 6e-12, 2e-10, 4e-10, 2e-06),
}


# --- transform matrices ----------------------------------------------------------------------


def _poly_mul(p: list[Fraction], q: list[Fraction]) -> list[Fraction]:
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return out


def transform_matrices(m: int, r: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ``(A^T, G, B^T)`` of F(m, r) from :data:`POINTS`, as object arrays of Fractions.

    Toom-Cook: correlation is the transpose of polynomial multiplication evaluated at the
    finite points ``a_j`` and at infinity. ``A^T[i, j] = a_j^i``; ``G[j, k] = a_j^k / |f_j|``
    with ``f_j = prod_{l != j} (a_j - a_l)``; row j of ``B^T`` holds the coefficients of
    ``sign(f_j) prod_{l != j} (x - a_l)``; the point at infinity adds a last column
    ``e_{m-1}`` to ``A^T``, a last row ``e_{r-1}`` to ``G`` and the coefficients of
    ``prod_l (x - a_l)`` to ``B^T`` (wincnn's construction and sign convention).
    """
    points = POINTS[m]
    alpha = m + r - 1
    assert len(points) == alpha - 1
    at = np.zeros((m, alpha), dtype=object)
    g = np.zeros((alpha, r), dtype=object)
    bt = np.zeros((alpha, alpha), dtype=object)
    for j, a in enumerate(points):
        others = [b for b in points if b != a]
        f = math.prod((a - b for b in others), start=Fraction(1))
        poly = [Fraction(1)]
        for b in others:
            poly = _poly_mul(poly, [-b, Fraction(1)])
        sign = 1 if f > 0 else -1
        at[:, j] = [a**i for i in range(m)]
        g[j] = [a**k / abs(f) for k in range(r)]
        bt[j] = [sign * c for c in poly] + [Fraction(0)] * (alpha - len(poly))
    full = [Fraction(1)]
    for b in points:
        full = _poly_mul(full, [-b, Fraction(1)])
    at[:, alpha - 1] = [Fraction(int(i == m - 1)) for i in range(m)]
    g[alpha - 1] = [Fraction(int(k == r - 1)) for k in range(r)]
    bt[alpha - 1] = full
    for matrix in (at, g, bt):
        matrix[matrix == 0] = Fraction(0)
    return at, g, bt


@cache
def _matrices(m: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A^T, G, B^T)`` of F(m, 3) rounded to ``dtype``, read-only."""
    return tuple(readonly(np.array(a.astype(float), dtype=dtype)) for a in transform_matrices(m))


# --- kernels ---------------------------------------------------------------------------------


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _tiles_in(src, lt, out, t0, step, top, left, tiles_h, tiles_w):  # pragma: no cover
    """``out[u*a + v, c, t - t0] = (L d L^T)[u, v]`` for tiles ``t0 .. t0 + out.shape[2]``.

    ``L`` is ``lt`` (a x k). Tile ``t = (n*tiles_h + ty)*tiles_w + tx`` reads the k x k
    window of ``src[n, c]`` whose top left is row ``ty*step - top``, column
    ``tx*step - left``; cells outside ``src`` read as zero. One task per channel and
    block of tiles: it gathers the windows tile-minor, so that both passes of the
    transform run along the block, and writes each tile's values once.
    """
    n_ch, height, width = src.shape[1], src.shape[2], src.shape[3]
    alpha, k = lt.shape
    count = out.shape[2]
    blocks = (count + _BLOCK - 1) // _BLOCK
    per_image = tiles_h * tiles_w
    for task in prange(n_ch * blocks):
        c = task // blocks
        q0 = (task % blocks) * _BLOCK
        nq = min(_BLOCK, count - q0)
        win = np.zeros((k, k, _BLOCK), dtype=out.dtype)
        half = np.empty((alpha, k, _BLOCK), dtype=out.dtype)
        row = np.empty(_BLOCK, dtype=out.dtype)
        for q in range(nq):
            t = t0 + q0 + q
            n = t // per_image
            ty = (t % per_image) // tiles_w
            tx = t % tiles_w
            r0 = ty * step - top
            c0 = tx * step - left
            plane = src[n, c]
            if r0 >= 0 and c0 >= 0 and r0 + k <= height and c0 + k <= width:
                for i in range(k):
                    for j in range(k):
                        win[i, j, q] = plane[r0 + i, c0 + j]
            else:
                for i in range(k):
                    for j in range(k):
                        r, s = r0 + i, c0 + j
                        inside = 0 <= r < height and 0 <= s < width
                        win[i, j, q] = plane[r, s] if inside else 0
        # Columns first: half[u, j] = sum_i L[u, i] win[i, j]; zero coefficients skipped.
        for u in range(alpha):
            for j in range(k):
                h = half[u, j]
                h[:] = 0
                for i in range(k):
                    coef = lt[u, i]
                    if coef != 0:
                        wi = win[i, j]
                        for q in range(_BLOCK):
                            h[q] += coef * wi[q]
        for u in range(alpha):
            for v in range(alpha):
                row[:] = 0
                for j in range(k):
                    coef = lt[v, j]
                    if coef != 0:
                        h = half[u, j]
                        for q in range(_BLOCK):
                            row[q] += coef * h[q]
                out[u * alpha + v, c, q0 : q0 + nq] = row[:nq]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _tiles_out(prod, rt, bias, dst, t0, tiles_h, tiles_w):  # pragma: no cover
    """``dst`` tile t (m x m, cropped at the edges) = ``R M_t R^T + bias[o]``.

    ``R`` is ``rt`` (m x a); ``M_t[u, v] = prod[u*a + v, o, t - t0]``. Tile t covers rows
    ``ty*m ..`` and columns ``tx*m ..`` of ``dst[n, o]`` (the same tile numbering as
    :func:`_tiles_in`). One task per output channel and block of tiles; every cell of
    ``dst`` is written by exactly one task.
    """
    n_out, height, width = dst.shape[1], dst.shape[2], dst.shape[3]
    m, alpha = rt.shape
    count = prod.shape[2]
    blocks = (count + _BLOCK - 1) // _BLOCK
    per_image = tiles_h * tiles_w
    for task in prange(n_out * blocks):
        o = task // blocks
        q0 = (task % blocks) * _BLOCK
        nq = min(_BLOCK, count - q0)
        pts = np.zeros((alpha * alpha, _BLOCK), dtype=dst.dtype)
        for p in range(alpha * alpha):
            pts[p, :nq] = prod[p, o, q0 : q0 + nq]
        half = np.empty((m, alpha, _BLOCK), dtype=dst.dtype)
        res = np.empty((m, m, _BLOCK), dtype=dst.dtype)
        for a in range(m):
            for v in range(alpha):
                h = half[a, v]
                h[:] = 0
                for u in range(alpha):
                    coef = rt[a, u]
                    if coef != 0:
                        src = pts[u * alpha + v]
                        for q in range(_BLOCK):
                            h[q] += coef * src[q]
        for a in range(m):
            for b in range(m):
                acc = res[a, b]
                acc[:] = bias[o]
                for v in range(alpha):
                    coef = rt[b, v]
                    if coef != 0:
                        h = half[a, v]
                        for q in range(_BLOCK):
                            acc[q] += coef * h[q]
        for q in range(nq):
            t = t0 + q0 + q
            n = t // per_image
            r0 = ((t % per_image) // tiles_w) * m
            c0 = (t % tiles_w) * m
            rows = min(m, height - r0)
            cols = min(m, width - c0)
            for a in range(rows):
                for b in range(cols):
                    dst[n, o, r0 + a, c0 + b] = res[a, b, q]


# --- the algorithm ---------------------------------------------------------------------------


def _tile_grid(out_h: int, out_w: int, m: int) -> tuple[int, int]:
    return -(-out_h // m), -(-out_w // m)


def _chunk_tiles(total: int, bytes_per_tile: int) -> int:
    """Tiles per chunk: the scratch of a chunk within the workspace limit and cache cap."""
    limit = min(get_workspace_limit(), _CACHE_FRIENDLY_CHUNK_BYTES)
    return max(1, min(total, limit // max(bytes_per_tile, 1)))


def _filters(w: np.ndarray, g: np.ndarray, groups: int) -> np.ndarray:
    """``U[p, group, o, c] = (G w[o, c] G^T)[p]``, the filters transformed once per call."""
    n_out, cin_g = w.shape[:2]
    alpha = g.shape[0]
    u = np.empty((alpha * alpha, 1, n_out * cin_g), dtype=w.dtype)
    launch(_tiles_in, readonly(w.reshape(-1, 1, 3, 3)), g, u, 0, 3, 0, 0, 1, 1)
    return u.reshape(alpha * alpha, groups, n_out // groups, cin_g)


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
    at, _, bt = _matrices(m, x.dtype.name)
    tiles_h, tiles_w = _tile_grid(*out_shape, m)
    total = n_img * tiles_h * tiles_w
    y = np.empty((n_img, n_out, *out_shape), dtype=x.dtype)
    step = _chunk_tiles(total, points * (n_ch + n_out) * x.itemsize)
    src, bias = readonly(x), readonly(bias)
    for t0 in range(0, total, step):
        count = min(step, total - t0)
        v = scratch("winograd_v", (points, n_ch, count), x.dtype)
        launch(_tiles_in, src, bt, v, t0, m, offset[0], offset[1], tiles_h, tiles_w)
        prod = scratch("winograd_m", (points, n_out, count), x.dtype)
        _product(
            u, v.reshape(points, groups, cin_g, count), prod.reshape(points, groups, out_g, count)
        )
        launch(_tiles_out, readonly(prod), at, bias, y, t0, tiles_h, tiles_w)
    return y


def _filter_grad(grad_y: np.ndarray, x: np.ndarray, spec: ConvSpec, m: int) -> np.ndarray:
    """dW as the exact gradient of the Winograd forward: ``G^T [sum_t (A dY_t A^T) * V_t] G``."""
    at, g, bt = _matrices(m, spec.dtype)
    points = at.shape[1] ** 2
    groups, n_out = spec.groups, spec.out_channels
    out_g, cin_g = n_out // groups, spec.in_channels // groups
    tiles_h, tiles_w = _tile_grid(spec.out_height, spec.out_width, m)
    total = spec.batch * tiles_h * tiles_w
    top, _, left, _ = spec.padding
    grad_u = np.zeros((points, groups, out_g, cin_g), dtype=spec.dtype)
    step = _chunk_tiles(total, points * (spec.in_channels + n_out) * x.itemsize)
    a = readonly(np.ascontiguousarray(at.T))
    src_x, src_dy = readonly(x), readonly(grad_y)
    for t0 in range(0, total, step):
        count = min(step, total - t0)
        v = scratch("winograd_v", (points, spec.in_channels, count), x.dtype)
        launch(_tiles_in, src_x, bt, v, t0, m, top, left, tiles_h, tiles_w)
        d = scratch("winograd_m", (points, n_out, count), x.dtype)
        launch(_tiles_in, src_dy, a, d, t0, m, 0, 0, tiles_h, tiles_w)
        v4 = v.reshape(points, groups, cin_g, count)
        d4 = d.reshape(points, groups, out_g, count)
        if cin_g == 1:
            grad_u += (d4 * v4).sum(axis=-1, keepdims=True)
        else:
            grad_u += np.matmul(d4, v4.transpose(0, 1, 3, 2))
    grad_w = np.empty(spec.w_shape, dtype=spec.dtype)
    gt = readonly(np.ascontiguousarray(g.T))
    zeros = readonly(np.zeros(1, dtype=spec.dtype))
    flat = readonly(grad_u.reshape(points, 1, n_out * cin_g))
    launch(_tiles_out, flat, gt, zeros, grad_w.reshape(-1, 1, 3, 3), 0, 1, 1)
    return grad_w


# --- the backend -----------------------------------------------------------------------------


class WinogradBackend(BackendBase):
    """F(m x m, 3 x 3) minimal filtering; ``tile=None`` picks m per call by the cost model."""

    ops = frozenset({CONV2D, CONV2D_BACKWARD})
    keeps_nonfinite_local = False

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
        # The worst tile this backend may run.
        self.error_factor = ERROR_FACTOR[tile] if tile is not None else max(ERROR_FACTOR.values())

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
        _, g, _ = _matrices(m, spec.dtype)
        u = _filters(w, g, spec.groups)
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
            _, g, _ = _matrices(m, spec.dtype)
            u = _filters(swapped.reshape(spec.in_channels, n_out // groups, 3, 3), g, groups)
            top, _, left, _ = spec.padding
            zeros = np.zeros(spec.in_channels, dtype=spec.dtype)
            grad_x = _correlate(grad_y, u, zeros, (2 - top, 2 - left), (spec.height, spec.width), m)
        if need.w:
            grad_w = _filter_grad(grad_y, x, spec, m)
        if need.b:
            grad_b = grad_y.sum(axis=(0, 2, 3), dtype=spec.dtype)
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
