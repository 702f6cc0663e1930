"""im2col + GEMM: lower every window to a column, then one matrix product per group.

The lowered matrix has the layout ``(C, kh, kw, N, OH, width)``: for group ``g`` its rows
``g*Kg:(g+1)*Kg`` form a ``(Kg, N*OH*width)`` matrix, so the forward pass is
``Y_g = W_g @ cols_g`` (one BLAS GEMM per group, whole batch chunk at once, which keeps
skinny late layers efficient), ``dW_g = dY_g @ cols_g.T`` (BLAS reads the transpose in
place) and ``dcols_g = W_g.T @ dY_g``, scattered back by col2im one kernel tap at a time.
The input is first split into the stride phases of its padded form (one phase at
stride 1), where every tap's windows lie at unit stride: each tap's columns are then a
block copy, and with ``width`` the phase's width (a column or two beyond the output,
dropped afterwards) one contiguous run per image. No Python loops over positions.

A 1x1 convolution is not lowered: it is ``W @ x[n]`` on the input as it lies (after one
subsampling copy for a stride), with the images side by side on small maps.

Scratch is bounded: the batch is processed in chunks (and a single huge image in bands of
output rows) so that lowered matrices stay under ``fastcnn.config.get_workspace_limit()``.
Pooling uses a window view of the padded input, reducing over the tap axis.
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
# filter bytes times the number of chunks (each chunk's GEMM repacks them; for a 1x1
# convolution, which is not lowered, the "lowered" bytes are those it copies); for pooling
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

#: A 1x1 convolution multiplies the filters by the input as it lies in memory, one GEMM
#: per image; below this many output positions per image those GEMMs are too thin for
#: BLAS, so the images are laid side by side as one operand (one transpose copy).
_SIDE_BY_SIDE_POSITIONS = 400

Chunk = tuple[int, int, int, int]


def _axis_box(out: int, stride: int, pad: int, size: int) -> tuple[int, int]:
    """Outputs ``[first, last)`` of a 1x1 window along one axis that read real input."""
    first = -(-pad // stride)
    last = min(out, (size - 1 + pad) // stride + 1)
    return first, max(first, last)


def _pointwise_box(spec: ConvSpec) -> tuple[tuple[int, int], tuple[int, int], bool]:
    """For a 1x1 convolution: the output rows and columns that read input (the others
    read only padding and are zero), and whether that is the whole output."""
    top, _, left, _ = spec.padding
    rows = _axis_box(spec.out_height, spec.stride[0], top, spec.height)
    cols = _axis_box(spec.out_width, spec.stride[1], left, spec.width)
    whole = rows == (0, spec.out_height) and cols == (0, spec.out_width)
    return rows, cols, whole


def _pointwise_input(a: np.ndarray, spec: ConvSpec, rows: tuple, cols: tuple) -> np.ndarray:
    """The cells of ``a`` (shaped like the input) that the 1x1 windows in the box read."""
    (sh, sw), (top, _, left, _) = spec.stride, spec.padding
    y0, x0 = rows[0] * sh - top, cols[0] * sw - left
    return a[
        :,
        :,
        y0 : y0 + sh * (rows[1] - rows[0] - 1) + 1 : sh,
        x0 : x0 + sw * (cols[1] - cols[0] - 1) + 1 : sw,
    ]


def _flat(a: np.ndarray, slot: str, groups: int) -> np.ndarray:
    """``a`` (nb, C, h, w) as ``(nb, G, C/G, h*w)``; a copy in scratch ``slot`` if strided."""
    if not a.flags.c_contiguous:
        buf = scratch(slot, a.shape, a.dtype)
        np.copyto(buf, a)
        a = buf
    return a.reshape(a.shape[0], groups, -1, a.shape[2] * a.shape[3])


def _side_by_side(a: np.ndarray, slot: str) -> np.ndarray:
    """``(nb, G, K, P)`` as ``(G, K, nb*P)``: the images side by side, one operand."""
    nb, groups, k, p = a.shape
    out = scratch(slot, (groups, k, nb, p), a.dtype)
    np.copyto(out, a.transpose(1, 2, 0, 3))
    return out.reshape(groups, k, nb * p)


def _unstack(a: np.ndarray, nb: int) -> np.ndarray:
    """``(G, K, nb*P)`` back to an ``(nb, G, K, P)`` view."""
    groups, k, _ = a.shape
    return a.reshape(groups, k, nb, -1).transpose(2, 0, 1, 3)


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


def _slab_extent(spec: ConvSpec | PoolSpec, chunk: Chunk) -> tuple[int, int, int]:
    """First padded row, rows and columns of the padded input that a chunk reads."""
    r0, r1 = chunk[2:]
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel, spec.stride, spec.dilation
    height = (r1 - 1 - r0) * sh + dh * (kh - 1) + 1
    width = (spec.out_width - 1) * sw + dw * (kw - 1) + 1
    return r0 * sh, height, max(width, spec.padding[2] + spec.width)


def _slab(
    x: np.ndarray, spec: ConvSpec | PoolSpec, chunk: Chunk, fill: float
) -> tuple[np.ndarray, int]:
    """The padded input rows that output rows ``r0:r1`` of images ``n0:n1`` read.

    Returns the slab and the padded-coordinate row it starts at. Cells outside the input
    (padding, and a ceil_mode window's overhang) hold ``fill``.
    """
    n0, n1 = chunk[:2]
    top, _, left, _ = spec.padding
    first, height, width = _slab_extent(spec, chunk)
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


def _row_width(spec: ConvSpec) -> int:
    """Columns per output row in the lowered matrix.

    The stride phases of the padded input hold every tap's windows at unit stride. When
    the output rows are computed on the full width of a phase (a column or two more than
    the output, dropped afterwards), each tap's columns are one contiguous run of its
    phase, copied at memory speed; rows of a few outputs copied one by one cost more than
    the GEMM's extra columns, unless those exceed an eighth of the output.
    """
    wq = -(-_slab_extent(spec, (0, 1, 0, 1))[2] // spec.stride[1])
    return wq if 8 * wq <= 9 * spec.out_width else spec.out_width


def _phases(spec: ConvSpec, chunk: Chunk, slot: str) -> np.ndarray:
    """A zeroed scratch grid ``(sh, sw, C, nb, hq + 1, wq)`` for the stride phases of the
    padded input a chunk reads (one spare row: the last tap's run overhangs into it by a
    few dropped columns)."""
    _, height, width = _slab_extent(spec, chunk)
    (sh, sw), nb = spec.stride, chunk[1] - chunk[0]
    grid = scratch(
        slot,
        (sh, sw, spec.in_channels, nb, -(-height // sh) + 1, -(-width // sw)),
        np.dtype(spec.dtype),
    )
    grid.fill(0)
    return grid


def _phase_cells(spec: ConvSpec, chunk: Chunk, grid: np.ndarray) -> Iterator[tuple]:
    """Per phase ``(a, b)``: the grid cells that hold real input, and those input cells
    (padded row ``first + a + sh*q`` and column ``b + sw*p`` of the chunk)."""
    (sh, sw), (top, _, left, _) = spec.stride, spec.padding
    first = chunk[2] * sh
    rows, cols = grid.shape[-2:]
    for a in range(sh):
        q0 = max(0, -(-(top - first - a) // sh))
        q1 = min(rows, (spec.height - 1 + top - first - a) // sh + 1)
        for b in range(sw):
            p0, p1 = max(0, -(-(left - b) // sw)), min(cols, (spec.width - 1 + left - b) // sw + 1)
            if q1 > q0 and p1 > p0:
                y0, x0 = first + a + sh * q0 - top, b + sw * p0 - left
                src = np.s_[
                    :,
                    :,
                    y0 : y0 + sh * (q1 - q0 - 1) + 1 : sh,
                    x0 : x0 + sw * (p1 - p0 - 1) + 1 : sw,
                ]
                yield grid[a, b, :, :, q0:q1, p0:p1], src


def _tap_blocks(spec: ConvSpec, grid: np.ndarray, rows: int) -> Iterator[tuple]:
    """Per kernel tap ``(i, j)``: the ``(C, nb, rows, width)`` block of its phase that it
    reads, one contiguous run per image when ``width`` is the phase's."""
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel, spec.stride, spec.dilation
    width, wq = _row_width(spec), grid.shape[-1]
    flat = grid.reshape(*grid.shape[:4], -1)
    for i in range(kh):
        for j in range(kw):
            (oi, a), (oj, b) = divmod(i * dh, sh), divmod(j * dw, sw)
            if width == wq:
                start = oi * wq + oj
                block = flat[a, b, :, :, start : start + rows * wq]
                yield i, j, block.reshape(*block.shape[:2], rows, wq)
            else:
                yield i, j, grid[a, b, :, :, oi : oi + rows, oj : oj + width]


def _drop_columns(a: np.ndarray, spec: ConvSpec) -> None:
    """Zero the lowered columns past the output's width (``a`` ends in ``rows*width``)."""
    a.reshape(*a.shape[:-1], -1, _row_width(spec))[..., spec.out_width :] = 0


class Im2colBackend(BackendBase):
    """Window lowering plus one BLAS GEMM per group and chunk."""

    name = "im2col"
    summary = "lower windows to a matrix (im2col), one GEMM per group via numpy.matmul / BLAS"
    ops = frozenset({"conv2d", "conv2d_backward", "pool2d", "pool2d_backward"})

    # --- memory and cost --------------------------------------------------------------------

    def _conv_row_bytes(self, spec: ConvSpec, op: str) -> int:
        """Scratch per output row of one image: the lowered rows (twice for backward)."""
        kh, kw = spec.kernel
        item = np.dtype(spec.dtype).itemsize
        per_row = spec.in_channels * kh * kw * _row_width(spec) * item
        return per_row * (2 if op == "conv2d_backward" else 1)

    def workspace_bytes(self, op: str, spec: ConvSpec | PoolSpec) -> int:
        """The lowered matrices of one chunk (capped by the workspace limit when chunking)."""
        if isinstance(spec, ConvSpec) and self._is_pointwise(spec):
            per_image = self._pointwise_image_bytes(spec)
            budget = min(get_workspace_limit(), _CACHE_FRIENDLY_CHUNK_BYTES)
            return min(per_image * spec.batch, max(budget, per_image))
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
        if self._is_pointwise(spec):
            lowered_bytes, chunks = self._pointwise_copy_bytes(spec)
        else:
            row_bytes = self._conv_row_bytes(spec, "conv2d")
            lowered_bytes = float(spec.batch * row_bytes * spec.out_height)
            chunks = sum(1 for _ in _chunks(spec.batch, spec.out_height, row_bytes))
        out_bytes = spec.batch * spec.out_channels * spec.out_height * spec.out_width * item
        flops = spec.flops * item / 4
        is_dense = spec.out_channels // spec.groups > 1
        dense, depthwise = (flops, 0.0) if is_dense else (0.0, flops)
        # A strided gather of windows is slower per byte; BLAS repacks the filters for
        # every chunk's GEMM, which shows on deep layers with small images.
        strided = spec.stride != (1, 1)
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

    # --- 1x1 convolution: a GEMM on the input as it lies, no lowering ---------------------

    @staticmethod
    def _pointwise_image_bytes(spec: ConvSpec) -> int:
        """Scratch per image of the 1x1 path, an upper bound for forward and backward:
        gathered input and gradient, and both again side by side."""
        (r0, r1), (c0, c1), _ = _pointwise_box(spec)
        item = np.dtype(spec.dtype).itemsize
        return 4 * (spec.in_channels + spec.out_channels) * (r1 - r0) * (c1 - c0) * item

    def _pointwise_copy_bytes(self, spec: ConvSpec) -> tuple[float, int]:
        """What the 1x1 path copies, in the cost model's terms: the bytes of its input
        gather and side-by-side transposes (none for stride 1 without padding on large
        maps), and its number of chunks."""
        (r0, r1), (c0, c1), whole = _pointwise_box(spec)
        item = np.dtype(spec.dtype).itemsize
        positions = spec.batch * (r1 - r0) * (c1 - c0) * item
        gathered = not whole or spec.stride != (1, 1)
        copies, chunks = 0.0, 0
        for _, _, side in self._pointwise_chunks(spec):
            chunks += 1
            if side:
                copies = float(positions * (spec.in_channels + spec.out_channels))
        copies += positions * spec.in_channels if gathered else 0.0
        return copies, chunks

    def _is_pointwise(self, spec: ConvSpec) -> bool:
        """1x1 kernel (any stride, padding, dilation) whose per-image scratch fits."""
        return spec.kernel == (1, 1) and (
            self._pointwise_image_bytes(spec) <= get_workspace_limit()
        )

    def _pointwise_chunks(self, spec: ConvSpec) -> Iterator[tuple[int, int, bool]]:
        """Image slices within the scratch budget, and whether to lay them side by side."""
        (r0, r1), (c0, c1), _ = _pointwise_box(spec)
        limit = min(get_workspace_limit(), _CACHE_FRIENDLY_CHUNK_BYTES)
        step = max(1, limit // max(self._pointwise_image_bytes(spec), 1))
        thin = (r1 - r0) * (c1 - c0) < _SIDE_BY_SIDE_POSITIONS
        for n0 in range(0, spec.batch, step):
            n1 = min(n0 + step, spec.batch)
            yield n0, n1, thin and n1 - n0 > 1

    def _pointwise_forward(self, x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
        """``y[n] = W @ x[n]`` per group, on the (subsampled) input; padding gives zeros."""
        rows, cols, whole = _pointwise_box(spec)
        y = (np.empty if whole else np.zeros)(spec.y_shape, dtype=spec.dtype)
        w_g = w.reshape(spec.groups, spec.out_channels // spec.groups, -1)
        y_box = y[:, :, rows[0] : rows[1], cols[0] : cols[1]]
        for n0, n1, side in self._pointwise_chunks(spec):
            xs = _flat(_pointwise_input(x[n0:n1], spec, rows, cols), "pw_x", spec.groups)
            if side:
                xt = _side_by_side(xs, "pw_xt")
                out = np.matmul(
                    w_g, xt, out=scratch("gemm", (*w_g.shape[:2], xt.shape[2]), x.dtype)
                )
                y_box[n0:n1] = _unstack(out, n1 - n0).reshape(y_box[n0:n1].shape)
            elif whole:
                np.matmul(w_g, xs, out=y[n0:n1].reshape(n1 - n0, *w_g.shape[:2], -1))
            else:
                y_box[n0:n1] = np.matmul(w_g, xs).reshape(y_box[n0:n1].shape)
        return y

    def _pointwise_backward(
        self, grad_y: np.ndarray, x: np.ndarray, w: np.ndarray, spec: ConvSpec, need: GradNeed
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """``dW = sum_n dY[n] @ X[n].T`` and ``dX = W.T @ dY`` scattered to the cells read."""
        rows, cols, whole = _pointwise_box(spec)
        groups = spec.groups
        w_t = w.reshape(groups, spec.out_channels // groups, -1).transpose(0, 2, 1)
        grad_w = np.zeros((groups, *w_t.shape[1:][::-1]), dtype=spec.dtype)
        grad_x = None
        if need.x:
            dense = whole and spec.stride == (1, 1)  # every input cell is read exactly once
            grad_x = (np.empty if dense else np.zeros)(spec.x_shape, dtype=spec.dtype)
        for n0, n1, side in self._pointwise_chunks(spec):
            nb = n1 - n0
            gy_box = grad_y[n0:n1, :, rows[0] : rows[1], cols[0] : cols[1]]
            gy = _flat(gy_box, "pw_gy", groups)
            if need.w:
                xs = _flat(_pointwise_input(x[n0:n1], spec, rows, cols), "pw_x", groups)
            if side:
                gy = _side_by_side(gy, "pw_gyt")
                if need.w:
                    grad_w += np.matmul(gy, _side_by_side(xs, "pw_xt").transpose(0, 2, 1))
            elif need.w:
                grad_w += np.matmul(gy, xs.transpose(0, 1, 3, 2)).sum(axis=0)
            if not need.x:
                continue
            dx = np.matmul(
                w_t,
                gy,
                out=scratch("pw_dx", (*gy.shape[:-2], *w_t.shape[1:2], gy.shape[-1]), gy.dtype),
            )
            target = _pointwise_input(grad_x[n0:n1], spec, rows, cols)
            target[...] = (_unstack(dx, nb) if side else dx).reshape(target.shape)
        return grad_x, grad_w

    # --- convolution ----------------------------------------------------------------------

    def _lower(self, x: np.ndarray, spec: ConvSpec, chunk: Chunk) -> np.ndarray:
        """Columns ``(G, Kg, nb*rows*width)`` of a chunk, rows ``(C, kh, kw)`` as ``w``'s.

        The input is split once into the stride phases of its padded form; each tap's
        columns are then a unit-stride block of its phase (see ``_row_width``).
        """
        n0, n1, r0, r1 = chunk
        grid = _phases(spec, chunk, "phases")
        for cells, src in _phase_cells(spec, chunk, grid):
            cells[...] = x[n0:n1][src].transpose(1, 0, 2, 3)
        shape = (spec.in_channels, *spec.kernel, n1 - n0, r1 - r0, _row_width(spec))
        cols = scratch("cols", shape, x.dtype)
        for i, j, block in _tap_blocks(spec, grid, r1 - r0):
            cols[:, i, j] = block
        return cols.reshape(spec.groups, -1, (n1 - n0) * (r1 - r0) * shape[-1])

    def conv2d(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
    ) -> np.ndarray:
        if self._is_pointwise(spec):
            y = self._pointwise_forward(x, w, spec)
            if b is not None:
                y += b[np.newaxis, :, np.newaxis, np.newaxis]
            return y
        y = np.empty(spec.y_shape, dtype=spec.dtype)
        w_g = w.reshape(spec.groups, spec.out_channels // spec.groups, -1)
        row_bytes = self._conv_row_bytes(spec, "conv2d")
        for chunk in _chunks(spec.batch, spec.out_height, row_bytes):
            n0, n1, r0, r1 = chunk
            cols = self._lower(x, spec, chunk)
            gemm = scratch("gemm", (*w_g.shape[:2], cols.shape[2]), x.dtype)
            out = np.matmul(w_g, cols, out=gemm)  # (G, Og, nb*rows*wq)
            del cols  # free before the next chunk is lowered, so only one is ever alive
            out = out.reshape(spec.out_channels, n1 - n0, r1 - r0, -1)[..., : spec.out_width]
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
        grad_x, grad_w = None, None
        if need.x or need.w:
            lowered = not self._is_pointwise(spec)
            backward = self._lowered_backward if lowered else self._pointwise_backward
            grad_x, grad_w = backward(grad_y, x, w, spec, need)
        grad_b = grad_y.sum(axis=(0, 2, 3), dtype=spec.dtype) if need.b else None
        return ConvGrads(grad_x, grad_w.reshape(spec.w_shape) if need.w else None, grad_b)

    def _lowered_backward(
        self, grad_y: np.ndarray, x: np.ndarray, w: np.ndarray, spec: ConvSpec, need: GradNeed
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """dW = dY @ cols.T and dX = col2im(W.T @ dY), chunk by chunk."""
        groups, cout = spec.groups, spec.out_channels
        w_g = w.reshape(groups, cout // groups, -1)
        grad_w = np.zeros((groups, cout // groups, w_g.shape[2]), dtype=spec.dtype)
        grad_x = np.zeros(spec.x_shape, dtype=spec.dtype) if need.x else None
        row_bytes = self._conv_row_bytes(spec, "conv2d_backward")
        width = _row_width(spec)
        for chunk in _chunks(spec.batch, spec.out_height, row_bytes):
            n0, n1, r0, r1 = chunk
            # dY as (G, Og, nb*rows*wq), zero in the dropped columns: both GEMMs' layout.
            gy = scratch("gy", (cout, n1 - n0, r1 - r0, width), x.dtype)
            gy[..., spec.out_width :] = 0
            gy[..., : spec.out_width] = grad_y[n0:n1, :, r0:r1].transpose(1, 0, 2, 3)
            gy = gy.reshape(groups, cout // groups, -1)
            if need.w:
                cols = self._lower(x, spec, chunk)
                _drop_columns(cols, spec)  # so that a NaN there cannot reach dW
                grad_w += np.matmul(gy, cols.transpose(0, 2, 1))
                del cols
            if grad_x is not None:
                dcols = scratch("dcols", (groups, w_g.shape[2], gy.shape[2]), x.dtype)
                np.matmul(w_g.transpose(0, 2, 1), gy, out=dcols)
                self._col2im(dcols, grad_x, spec, chunk)
        return grad_x, grad_w

    def _col2im(self, dcols: np.ndarray, grad_x: np.ndarray, spec: ConvSpec, chunk: Chunk) -> None:
        """Add each lowered column's gradient to the input cell it was read from."""
        n0, n1, r0, r1 = chunk
        _drop_columns(dcols, spec)
        dcols = dcols.reshape(spec.in_channels, *spec.kernel, n1 - n0, r1 - r0, -1)
        grid = _phases(spec, chunk, "grad_phases")
        for i, j, block in _tap_blocks(spec, grid, r1 - r0):
            block += dcols[:, i, j]
        for cells, dst in _phase_cells(spec, chunk, grid):
            grad_x[n0:n1][dst] += cells.transpose(1, 0, 2, 3)

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
                # argmax/argmin give the first extreme, and the first NaN if any.
                pick = np.argmax if spec.mode == "max" else np.argmin
                winner = pick(cols, axis=2)
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
