"""im2col + GEMM: lower every window to a column, then one matrix product per group.

The lowered matrix has the layout ``(C, kh, kw, N, OH, OW)``: for group ``g`` its rows
``g*Kg:(g+1)*Kg`` form a ``(Kg, N*OH*OW)`` matrix, so the forward pass is
``Y_g = W_g @ cols_g`` (one BLAS GEMM per group, whole batch chunk at once, which keeps
skinny late layers efficient), ``dW_g = dY_g @ cols_g.T`` (BLAS reads the transpose in
place) and ``dcols_g = W_g.T @ dY_g``, scattered back by col2im one kernel tap at a time.
Windows are gathered with stride tricks, never with Python loops over positions.

Scratch is bounded: the batch is processed in chunks (and a single huge image in bands of
output rows) so that lowered matrices stay under ``fastcnn.config.get_workspace_limit()``.
Pooling uses the same lowering, reducing over the tap axis.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from fastcnn.config import get_workspace_limit
from fastcnn.registry import BackendBase, ConvGrads, GradNeed
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec, PoolSpec

# Cost model for backend="auto": seconds = the coefficients below . the features of
# Im2colBackend.cost_features: for convolutions an intercept, dense GEMM FLOPs,
# depthwise FLOPs, lowered bytes at stride 1 and at other strides, output bytes, and
# filter bytes times the number of chunks (each chunk's GEMM repacks them); for pooling
# an intercept and window-tap bytes of max/min and of mean. Fitted by non-negative least
# squares on relative error to `fastcnn bench` timings (benchmarks/fit_cost_models.py);
# 4.85e-12 s/FLOP is 206 GFLOP/s of GEMM. float64 doubles the FLOP terms (half the SIMD
# lanes); byte terms already scale with the itemsize.
_COST = {
    "conv2d": (6.82e-05, 4.85e-12, 0.0, 7.33e-11, 1.49e-10, 1.73e-10, 1.07e-10),
    "conv2d_backward": (9.52e-05, 8.11e-12, 2.87e-10, 4.4e-10, 6.86e-10, 2.66e-10, 7.01e-10),
    "pool2d": (1.03e-4, 1.86e-10, 2.04e-10),
    "pool2d_backward": (9.36e-05, 2.2e-09, 3.8e-10),
}
#: Lowered columns are built and consumed in chunks of about this size even when the
#: workspace limit allows more: a chunk that stays in the last-level cache between the
#: gather and the GEMM made ResNet-18's 64@56 layer 1.6x faster than one 58 MB chunk.
_CACHE_FRIENDLY_CHUNK_BYTES = 8 * 2**20

Chunk = tuple[int, int, int, int]


def _chunks(batch: int, out_rows: int, bytes_per_row: int) -> Iterator[Chunk]:
    """Batch slices (or, for one oversized image, row bands) within the workspace limit."""
    limit = min(get_workspace_limit(), _CACHE_FRIENDLY_CHUNK_BYTES)
    per_image = bytes_per_row * out_rows
    if per_image <= limit:
        step = max(1, limit // max(per_image, 1))
        for n0 in range(0, batch, step):
            yield n0, min(n0 + step, batch), 0, out_rows
        return
    rows = max(1, limit // max(bytes_per_row, 1))
    for n in range(batch):
        for r0 in range(0, out_rows, rows):
            yield n, n + 1, r0, min(r0 + rows, out_rows)


def _slab(
    x: np.ndarray, spec: ConvSpec | PoolSpec, chunk: Chunk, fill: float
) -> tuple[np.ndarray, int]:
    """The padded input rows that output rows ``r0:r1`` of images ``n0:n1`` read.

    Returns the slab and the padded-coordinate row it starts at. Cells outside the input
    (padding, and a ceil_mode window's overhang) hold ``fill``.
    """
    n0, n1, r0, r1 = chunk
    top, _, left, _ = spec.padding
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel, spec.stride, spec.dilation
    first = r0 * sh
    height = (r1 - 1 - r0) * sh + dh * (kh - 1) + 1
    width = (spec.out_width - 1) * sw + dw * (kw - 1) + 1
    width = max(width, left + spec.width)
    slab = scratch("slab", (n1 - n0, x.shape[1], height, width), x.dtype)
    slab.fill(fill)
    # Rows of x that fall inside the slab: padded row p holds x row p - top.
    src0, src1 = max(first - top, 0), min(first + height - top, spec.height)
    if src1 > src0:
        dst0 = src0 + top - first
        slab[:, :, dst0 : dst0 + src1 - src0, left : left + spec.width] = x[n0:n1, :, src0:src1]
    return slab, first


def _windows(slab: np.ndarray, spec: ConvSpec | PoolSpec, rows: int) -> np.ndarray:
    """A read-only ``(N, C, kh, kw, rows, OW)`` view of every window of the slab."""
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel, spec.stride, spec.dilation
    sn, sc, sy, sx = slab.strides
    return as_strided(
        slab,
        shape=(slab.shape[0], slab.shape[1], kh, kw, rows, spec.out_width),
        strides=(sn, sc, dh * sy, dw * sx, sh * sy, sw * sx),
        writeable=False,
    )


def _tap_view(target: np.ndarray, spec: ConvSpec | PoolSpec, i: int, j: int, rows: int):
    """The cells of a padded slab that kernel tap (i, j) touches, one per output position."""
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    r, c = i * dh, j * dw
    return target[
        :, :, r : r + sh * (rows - 1) + 1 : sh, c : c + sw * (spec.out_width - 1) + 1 : sw
    ]


class Im2colBackend(BackendBase):
    """Window lowering plus one BLAS GEMM per group and chunk."""

    name = "im2col"
    summary = "lower windows to a matrix (im2col), one GEMM per group via numpy.matmul / BLAS"
    ops = frozenset({"conv2d", "conv2d_backward", "pool2d", "pool2d_backward"})
    exact = True  # sums of products only: integer data give exact results
    # OpenBLAS blocks a GEMM per thread count, so its rounding changes with it (measured:
    # float32 (1024 x 144) @ (144 x 32) differs between 1, 2 and 3 threads); pinning
    # BLAS to one thread would cost the GEMM's parallel speed.
    thread_invariant = False

    # --- memory and cost --------------------------------------------------------------------

    def _conv_row_bytes(self, spec: ConvSpec, op: str) -> int:
        """Scratch per output row of one image: the lowered rows (twice for backward)."""
        kh, kw = spec.kernel
        item = np.dtype(spec.dtype).itemsize
        per_row = spec.in_channels * kh * kw * spec.out_width * item
        return per_row * (2 if op == "conv2d_backward" else 1)

    def workspace_bytes(self, op: str, spec: ConvSpec | PoolSpec) -> int:
        """The lowered matrices of one chunk (capped by the workspace limit when chunking)."""
        if isinstance(spec, ConvSpec):
            row = self._conv_row_bytes(spec, op)
        else:
            kh, kw = spec.kernel
            row = spec.channels * kh * kw * spec.out_width * np.dtype(spec.dtype).itemsize
        whole = row * spec.out_height * spec.batch
        budget = min(get_workspace_limit(), _CACHE_FRIENDLY_CHUNK_BYTES)
        return min(whole, max(budget, row))

    def estimate_seconds(self, op: str, spec: ConvSpec | PoolSpec) -> float:
        """Predicted seconds for ``op`` on ``spec`` (the fitted model above)."""
        return float(np.dot(_COST[op], self.cost_features(op, spec)))

    def cost_features(self, op: str, spec: ConvSpec | PoolSpec) -> tuple[float, ...]:
        """The cost model's features for ``op`` on ``spec`` (see ``_COST``)."""
        item = np.dtype(spec.dtype).itemsize
        if isinstance(spec, PoolSpec):
            taps = float(spec.flops * item)
            return (1.0, 0.0, taps) if spec.mode == "mean" else (1.0, taps, 0.0)
        row_bytes = self._conv_row_bytes(spec, "conv2d")
        lowered_bytes = float(spec.batch * row_bytes * spec.out_height)
        out_bytes = spec.batch * spec.out_channels * spec.out_height * spec.out_width * item
        flops = spec.flops * item / 4
        is_dense = spec.out_channels // spec.groups > 1
        dense, depthwise = (flops, 0.0) if is_dense else (0.0, flops)
        # A strided gather of windows is slower per byte; BLAS repacks the filters for
        # every chunk's GEMM, which shows on deep layers with small images.
        strided = spec.stride != (1, 1)
        chunks = sum(1 for _ in _chunks(spec.batch, spec.out_height, row_bytes))
        w_bytes = spec.out_channels * (spec.in_channels // spec.groups) * item
        w_bytes *= spec.kernel[0] * spec.kernel[1]
        return (
            1.0,
            dense,
            depthwise,
            0.0 if strided else lowered_bytes,
            lowered_bytes if strided else 0.0,
            float(out_bytes),
            float(w_bytes * chunks),
        )

    # --- convolution ----------------------------------------------------------------------

    def _lower(self, x: np.ndarray, spec: ConvSpec, chunk: Chunk) -> tuple[np.ndarray, int]:
        """Columns ``(G, Kg, nb*rows*OW)`` for a chunk, and the slab's first padded row."""
        n0, n1, r0, r1 = chunk
        slab, first = _slab(x, spec, chunk, 0.0)
        windows = _windows(slab, spec, r1 - r0)  # (nb, C, kh, kw, rows, OW)
        cols = scratch(
            "cols", (spec.in_channels, *spec.kernel, n1 - n0, r1 - r0, spec.out_width), x.dtype
        )
        np.copyto(cols, windows.transpose(1, 2, 3, 0, 4, 5))
        return cols.reshape(spec.groups, -1, (n1 - n0) * (r1 - r0) * spec.out_width), first

    def conv2d(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
    ) -> np.ndarray:
        y = np.empty(spec.y_shape, dtype=spec.dtype)
        w_g = w.reshape(spec.groups, spec.out_channels // spec.groups, -1)
        row_bytes = self._conv_row_bytes(spec, "conv2d")
        for chunk in _chunks(spec.batch, spec.out_height, row_bytes):
            n0, n1, r0, r1 = chunk
            cols, _ = self._lower(x, spec, chunk)
            gemm = scratch("gemm", (*w_g.shape[:2], cols.shape[2]), x.dtype)
            out = np.matmul(w_g, cols, out=gemm)  # (G, Og, nb*rows*OW)
            del cols  # free before the next chunk is lowered, so only one is ever alive
            out = out.reshape(spec.out_channels, n1 - n0, r1 - r0, spec.out_width)
            y[n0:n1, :, r0:r1] = out.transpose(1, 0, 2, 3)
        if b is not None:
            y += b[np.newaxis, :, np.newaxis, np.newaxis]
        return y

    def conv2d_backward(
        self,
        grad_y: np.ndarray,
        x: np.ndarray,
        w: np.ndarray,
        spec: ConvSpec,
        need: GradNeed,
    ) -> ConvGrads:
        groups, cout = spec.groups, spec.out_channels
        w_g = w.reshape(groups, cout // groups, -1)
        grad_w = np.zeros((groups, cout // groups, w_g.shape[2]), dtype=spec.dtype)
        grad_x = np.zeros(spec.x_shape, dtype=spec.dtype) if need.x else None
        top, _, left, _ = spec.padding
        kh, kw = spec.kernel
        if need.x or need.w:
            row_bytes = self._conv_row_bytes(spec, "conv2d_backward")
            for chunk in _chunks(spec.batch, spec.out_height, row_bytes):
                n0, n1, r0, r1 = chunk
                rows = r1 - r0
                # dY as (G, Og, nb*rows*OW): the GEMMs' layout for both gradients.
                gy = grad_y[n0:n1, :, r0:r1].transpose(1, 0, 2, 3)
                gy = np.ascontiguousarray(gy).reshape(groups, cout // groups, -1)
                if need.w:
                    cols, _ = self._lower(x, spec, chunk)
                    grad_w += np.matmul(gy, cols.transpose(0, 2, 1))
                    del cols
                if grad_x is None:
                    continue
                dcols = scratch("dcols", (groups, w_g.shape[2], gy.shape[2]), x.dtype)
                np.matmul(w_g.transpose(0, 2, 1), gy, out=dcols)  # (G, Kg, nb*rows*OW)
                dcols = dcols.reshape(spec.in_channels, kh, kw, n1 - n0, rows, spec.out_width)
                slab, first = _slab(x, spec, chunk, 0.0)
                grad_slab = scratch("grad_slab", slab.shape, slab.dtype)
                grad_slab.fill(0)
                for i in range(kh):
                    for j in range(kw):
                        # col2im: every output position adds its tap gradient to the cell
                        # that tap read.
                        view = _tap_view(grad_slab, spec, i, j, rows)
                        view += dcols[:, i, j].transpose(1, 0, 2, 3)
                del dcols
                # Keep the slab cells that are real input (not padding) and add them in.
                src0, src1 = max(first - top, 0), min(first + slab.shape[2] - top, spec.height)
                if src1 > src0:
                    d0 = src0 + top - first
                    grad_x[n0:n1, :, src0:src1] += grad_slab[
                        :, :, d0 : d0 + src1 - src0, left : left + spec.width
                    ]
                del slab, grad_slab
        grad_b = grad_y.sum(axis=(0, 2, 3), dtype=spec.dtype) if need.b else None
        return ConvGrads(grad_x, grad_w.reshape(spec.w_shape) if need.w else None, grad_b)

    # --- pooling ------------------------------------------------------------------------------

    def _pool_chunks(self, spec: PoolSpec) -> Iterator[Chunk]:
        kh, kw = spec.kernel
        row = spec.channels * kh * kw * spec.out_width * np.dtype(spec.dtype).itemsize
        return _chunks(spec.batch, spec.out_height, row)

    @staticmethod
    def _divisor(spec: PoolSpec) -> np.ndarray:
        """avg_pool2d's divisor per output position, as an ``(OH, OW)`` array."""
        counts = []
        for out, stride, k, size, pad in (
            (spec.out_height, spec.stride[0], spec.kernel[0], spec.height, spec.padding[0]),
            (spec.out_width, spec.stride[1], spec.kernel[1], spec.width, spec.padding[2]),
        ):
            start = np.arange(out) * stride - pad
            end = np.minimum(start + k, size + pad)
            if spec.count_include_pad:
                counts.append(end - start)
            else:
                counts.append(np.minimum(end, size) - np.maximum(start, 0))
        return np.multiply.outer(counts[0], counts[1]).astype(spec.dtype)

    def _pool_windows(self, x: np.ndarray, spec: PoolSpec, chunk: Chunk) -> np.ndarray:
        """Lowered windows ``(nb, C, kh*kw, rows, OW)`` of a chunk."""
        n0, n1, r0, r1 = chunk
        slab, _ = _slab(x, spec, chunk, spec.pad_value)
        windows = _windows(slab, spec, r1 - r0)
        return windows.reshape(n1 - n0, spec.channels, -1, r1 - r0, spec.out_width)

    def pool2d(self, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        y = np.empty(spec.y_shape, dtype=spec.dtype)
        divisor = self._divisor(spec) if spec.mode == "mean" else None
        for chunk in self._pool_chunks(spec):
            n0, n1, r0, r1 = chunk
            cols = self._pool_windows(x, spec, chunk)
            if spec.mode == "max":
                y[n0:n1, :, r0:r1] = cols.max(axis=2)  # NaN propagates, as in PyTorch
            elif spec.mode == "min":
                y[n0:n1, :, r0:r1] = cols.min(axis=2)
            else:
                y[n0:n1, :, r0:r1] = cols.sum(axis=2) / divisor[r0:r1]
            del cols
        return y

    def pool2d_backward(self, grad_y: np.ndarray, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        grad_x = np.zeros(spec.x_shape, dtype=spec.dtype)
        kh, kw = spec.kernel
        top, _, left, _ = spec.padding
        if spec.mode == "mean":
            share_all = grad_y / self._divisor(spec)
        for chunk in self._pool_chunks(spec):
            n0, n1, r0, r1 = chunk
            rows = r1 - r0
            slab, first = _slab(x, spec, chunk, spec.pad_value)
            grad_slab = np.zeros_like(slab)
            if spec.mode == "mean":
                share = share_all[n0:n1, :, r0:r1]
                for i in range(kh):
                    for j in range(kw):
                        _tap_view(grad_slab, spec, i, j, rows)[...] += share
            else:
                cols = _windows(slab, spec, rows).reshape(
                    n1 - n0, spec.channels, -1, rows, spec.out_width
                )
                # argmax/argmin give the first extreme; a window holding NaN routes to
                # its last NaN, as PyTorch's kernel does.
                pick = np.argmax if spec.mode == "max" else np.argmin
                nan = np.isnan(cols)
                last_nan = cols.shape[2] - 1 - np.argmax(nan[:, :, ::-1], axis=2)
                winner = np.where(nan.any(axis=2), last_nan, pick(cols, axis=2))
                del nan, last_nan
                del cols
                gy = grad_y[n0:n1, :, r0:r1]
                for i in range(kh):
                    for j in range(kw):
                        won = winner == i * kw + j
                        _tap_view(grad_slab, spec, i, j, rows)[...] += np.where(won, gy, 0)
            src0, src1 = max(first - top, 0), min(first + slab.shape[2] - top, spec.height)
            if src1 > src0:
                d0 = src0 + top - first
                grad_x[n0:n1, :, src0:src1] += grad_slab[
                    :, :, d0 : d0 + src1 - src0, left : left + spec.width
                ]
        return grad_x


backend = Im2colBackend()
