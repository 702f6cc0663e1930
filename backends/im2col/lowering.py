"""Convolution by lowering: windows to columns through the stride phases, one GEMM per group.

The lowered matrix has the layout ``(C, kh, kw, N, OH, width)``: for group ``g`` its rows
``g*Kg:(g+1)*Kg`` form a ``(Kg, N*OH*width)`` matrix, so the forward pass is
``Y_g = W_g @ cols_g`` (one BLAS GEMM per group, whole batch chunk at once, which keeps
skinny late layers efficient), ``dW_g = dY_g @ cols_g.T`` (BLAS reads the transpose in
place) and ``dcols_g = W_g.T @ dY_g``, scattered back by col2im (a compiled pass, :mod:`.col2im`).
The input is first split into the stride phases of its padded form (one phase at
stride 1), where every tap's windows lie at unit stride: each tap's columns are then a
block copy, and with ``width`` the phase's width (a column or two beyond the output,
dropped afterwards) one contiguous run per image; both steps are one compiled pass per
input channel (:mod:`.gather`). At stride 1 with output rows as wide as
the input, no phases are needed: each tap's block is a run of the input plane itself
(:func:`_flat_taps`). No Python loops over positions.

Scratch is bounded: the batch is processed in chunks (and a single huge image in bands of
output rows) so that lowered matrices stay under ``fastcnn.config.get_workspace_limit()``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fastcnn.config import get_workspace_limit
from fastcnn.ops import CONV2D, CONV2D_BACKWARD
from fastcnn.registry import GradNeed
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec, PoolSpec

from . import by_image
from .col2im import col2im
from .gather import gather
from .place import place

#: Lowered columns are built and consumed in chunks of about this size even when the
#: workspace limit allows more: a chunk that stays in the last-level cache between the
#: gather and the GEMM is faster than one large chunk streamed through memory twice.
CACHE_FRIENDLY_CHUNK_BYTES = 8 * 2**20

#: Images ``n0:n1`` and output rows ``r0:r1`` of one chunk.
Chunk = tuple[int, int, int, int]


def chunk_budget() -> int:
    """Bytes of scratch one chunk may use: the workspace limit, or less to stay in cache."""
    return min(get_workspace_limit(), CACHE_FRIENDLY_CHUNK_BYTES)


def chunks(batch: int, out_rows: int, bytes_per_row: int) -> Iterator[Chunk]:
    """Batch slices (or, for one oversized image, row bands) within the workspace limit."""
    limit = chunk_budget()
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


def slab_extent(spec: ConvSpec | PoolSpec, chunk: Chunk) -> tuple[int, int, int]:
    """First padded row, rows and columns of the padded input that a chunk reads."""
    r0, r1 = chunk[2:]
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel, spec.stride, spec.dilation
    height = (r1 - 1 - r0) * sh + dh * (kh - 1) + 1
    width = (spec.out_width - 1) * sw + dw * (kw - 1) + 1
    return r0 * sh, height, max(width, spec.padding[2] + spec.width)


def row_width(spec: ConvSpec) -> int:
    """Columns per output row in the lowered matrix.

    The stride phases of the padded input hold every tap's windows at unit stride. When
    the output rows are computed on the full width of a phase (a column or two more than
    the output, dropped afterwards), each tap's columns are one contiguous run of its
    phase, copied at memory speed; rows of a few outputs copied one by one cost more than
    the GEMM's extra columns, unless those exceed an eighth of the output.
    """
    wq = -(-slab_extent(spec, (0, 1, 0, 1))[2] // spec.stride[1])
    return wq if 8 * wq <= 9 * spec.out_width else spec.out_width


def row_bytes(spec: ConvSpec, op: str, width: int | None = None) -> int:
    """Scratch per output row of one image: the lowered rows (twice for backward), of
    ``width`` columns (default :func:`row_width`)."""
    kh, kw = spec.kernel
    item = np.dtype(spec.dtype).itemsize
    per_row = spec.in_channels * kh * kw * (width or row_width(spec)) * item
    return per_row * (2 if op == CONV2D_BACKWARD else 1)


def writes_in_place(spec: ConvSpec) -> bool:
    """Whether the forward's GEMMs write straight into the output: ungrouped layers whose
    chunks hold one image (or a band of its rows). Their columns are lowered at the
    output's width, so that the GEMM's result is laid out as the output; otherwise moving
    it into place (and adding the bias) is a pass over the output, which on a large
    first layer (VGG-16's 64@224 from 3 channels) took twice the GEMM's time. Where a
    chunk holds several images, one GEMM over all of them wins: per-image GEMMs into
    the output ran 2-36 % slower on ResNet-18's stride-2 and 512@7 layers."""
    per_image = row_bytes(spec, CONV2D, spec.out_width) * spec.out_height
    return spec.groups == 1 and 2 * per_image > chunk_budget()


def _drop_columns(a: np.ndarray, spec: ConvSpec) -> None:
    """Zero the lowered columns past the output's width (``a`` ends in ``rows*width``)."""
    a.reshape(*a.shape[:-1], -1, row_width(spec))[..., spec.out_width :] = 0


def _lowers_flat(spec: ConvSpec, width: int) -> bool:
    """Whether :func:`_flat_taps` lowers: stride 1, undilated, rows as wide as the input
    and the output (one column of padding a side for 3x3)."""
    return spec.stride == spec.dilation == (1, 1) and width == spec.out_width == spec.width


def _flat_taps(x: np.ndarray, spec: ConvSpec, chunk: Chunk, cols: np.ndarray) -> None:
    """Fill ``cols`` ``(C, kh, kw, nb, rows*W)`` where :func:`_lowers_flat`.

    Output rows as wide as the input make tap (i, j) of every output cell of an image
    one flat offset into its input plane: the block is one contiguous run per image
    and channel, copied at once (on 7x7 maps, 49 cells instead of seven runs of 7,
    whose fixed costs made the lowering a quarter of the GEMM's time). Cells whose
    window column lies outside the row (where the offset wrapped into the next or the
    previous row) and rows outside the input are then set to zero.
    """
    n0, n1, r0, r1 = chunk
    height, width = spec.height, spec.width
    (kh, kw), top, left = spec.kernel, spec.padding[0], spec.padding[2]
    planes = x[n0:n1].reshape(n1 - n0, spec.in_channels, -1).transpose(1, 0, 2)
    length = (r1 - r0) * width
    for i in range(kh):
        for j in range(kw):
            block = cols[:, i, j]
            start = (r0 + i - top) * width + j - left
            a, e = max(0, -start), max(0, min(length, height * width - start))
            block[..., :a] = 0
            block[..., e:] = 0
            if e > a:
                block[..., a:e] = planes[..., start + a : start + e]
            # Cells whose window column lies left or right of the row: the run wrapped
            # into the neighbouring row there (or, past the input's first or last
            # row, into the other end's clipped part).
            rows = block.reshape(*block.shape[:2], r1 - r0, width)
            rows[..., : max(0, left - j)] = 0
            rows[..., max(0, width + left - j) :] = 0


def _phase_shape(spec: ConvSpec, chunk: Chunk) -> tuple[int, int]:
    """Rows (one spare) and columns of a stride phase of the padded input a chunk reads."""
    _, height, width = slab_extent(spec, chunk)
    return -(-height // spec.stride[0]) + 1, -(-width // spec.stride[1])


def _image_phase_shape(spec: ConvSpec) -> tuple[int, int]:
    """:func:`_phase_shape` of a chunk of one whole image, as :mod:`.by_image` lowers."""
    return _phase_shape(spec, (0, 1, 0, spec.out_height))


def _lower(
    x: np.ndarray, spec: ConvSpec, chunk: Chunk, width: int | None = None, ones: bool = False
) -> np.ndarray:
    """Columns ``(G, Kg, nb*rows*width)`` of a chunk, rows ``(C, kh, kw)`` as ``w``'s,
    ``width`` columns per output row (default :func:`row_width`); with ``ones`` (one group
    only) a last row of ones, against which a bias column of the filters adds the bias.

    The input is split into the stride phases of its padded form; each tap's columns
    are then a unit-stride block of its phase (see :func:`row_width` and :mod:`.gather`).
    """
    n0, n1, r0, r1 = chunk
    width = width or row_width(spec)
    shape = (spec.in_channels, *spec.kernel, n1 - n0, r1 - r0, width)
    rows, length = spec.in_channels * spec.kernel[0] * spec.kernel[1], int(np.prod(shape[3:]))
    flat = scratch("cols", ((rows + int(ones)) * length,), x.dtype)
    cols = flat[: rows * length].reshape(shape)
    if _lowers_flat(spec, width):
        _flat_taps(x, spec, chunk, cols.reshape(*shape[:4], -1))
    else:
        (sh, sw), (top, _, left, _) = spec.stride, spec.padding
        geometry = (n0, r0 * sh, sh, sw, *spec.dilation, top, left)
        gather(x, cols, geometry, _phase_shape(spec, chunk))
    flat[rows * length :] = 1
    return flat.reshape(spec.groups, -1, length)


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """``Y_g = W_g @ cols_g + b``, chunk by chunk; the bias is added as each chunk's
    output is moved into place (one pass over the output, not two), or by the GEMM
    itself where it writes in place (see :func:`writes_in_place`), or where each worker
    lowers and multiplies images of its own (:mod:`.by_image`)."""
    if writes_in_place(spec):
        return _forward_in_place(x, w, b, spec)
    if by_image.applies(spec):
        return by_image.forward(x, w, b, spec, _image_phase_shape(spec))
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    w_g = w.reshape(spec.groups, spec.out_channels // spec.groups, -1)
    for chunk in chunks(spec.batch, spec.out_height, row_bytes(spec, CONV2D)):
        n0, n1, r0, r1 = chunk
        cols = _lower(x, spec, chunk)
        gemm = scratch("gemm", (*w_g.shape[:2], cols.shape[2]), x.dtype)
        out = np.matmul(w_g, cols, out=gemm)  # (G, Og, nb*rows*wq)
        del cols  # free before the next chunk is lowered, so only one is ever alive
        place(out.reshape(spec.out_channels, n1 - n0, r1 - r0, -1), y, (n0, r0), b)
    return y


def _forward_in_place(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
) -> np.ndarray:
    """The forward of one group, each chunk (an image or a band of its rows) lowered at
    the output's width and its GEMM writing straight into the output, with the bias as
    one more filter column against a row of ones."""
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    planes = y.reshape(spec.batch, spec.out_channels, -1)  # a view: y is contiguous
    filters = w.reshape(spec.out_channels, -1)
    if b is not None:
        filters = np.concatenate([filters, b[:, np.newaxis]], axis=1)
    width = spec.out_width
    for chunk in chunks(spec.batch, spec.out_height, row_bytes(spec, CONV2D, width)):
        n0, n1, r0, r1 = chunk
        cols = _lower(x, spec, chunk, width, ones=b is not None)
        for n in range(n0, n1):  # one (see writes_in_place), unless the limit just changed
            at = (n - n0) * (r1 - r0) * width
            part = cols[0, :, at : at + (r1 - r0) * width]
            np.matmul(filters, part, out=planes[n, :, r0 * width : r1 * width])
    return y


def backward(
    grad_y: np.ndarray, x: np.ndarray, w: np.ndarray, spec: ConvSpec, need: GradNeed
) -> tuple[np.ndarray | None, np.ndarray]:
    """``dW = dY @ cols.T`` and ``dX = col2im(W.T @ dY)``, chunk by chunk, or where
    dW is wanted an image per worker (:mod:`.by_image`); ``dW`` is ``(G, Og, Kg)`` (zero
    unless ``need.w``)."""
    if by_image.applies(spec, need):
        return by_image.backward(grad_y, x, w, spec, need, _image_phase_shape(spec))
    groups, cout = spec.groups, spec.out_channels
    w_g = w.reshape(groups, cout // groups, -1)
    # dW is written whole by the first chunk's GEMM where it is wanted, else left zero.
    grad_w = (np.empty if need.w else np.zeros)((groups, cout // groups, w_g.shape[2]), spec.dtype)
    grad_x = np.zeros(spec.x_shape, dtype=spec.dtype) if need.x else None
    width = row_width(spec)
    first = True
    for chunk in chunks(spec.batch, spec.out_height, row_bytes(spec, CONV2D_BACKWARD)):
        n0, n1, r0, r1 = chunk
        # dY as (G, Og, nb*rows*wq), zero in the dropped columns: both GEMMs' layout.
        gy = scratch("gy", (cout, n1 - n0, r1 - r0, width), x.dtype)
        gy[..., spec.out_width :] = 0
        gy[..., : spec.out_width] = grad_y[n0:n1, :, r0:r1].transpose(1, 0, 2, 3)
        gy = gy.reshape(groups, cout // groups, -1)
        if need.w:
            cols = _lower(x, spec, chunk)
            _drop_columns(cols, spec)  # so that a NaN there cannot reach dW
            # The first chunk's GEMM writes dW itself: a product array beside it is as
            # large as dW, all fresh pages (see fastcnn.scratch). From a fresh process,
            # 0.35-0.7x the backward's time on ResNet-18's stride-2 512@14 and 512@7.
            if first:
                np.matmul(gy, cols.transpose(0, 2, 1), out=grad_w)
            else:
                grad_w += np.matmul(gy, cols.transpose(0, 2, 1))
            first = False
            del cols
        if grad_x is not None:
            dcols = scratch("dcols", (groups, w_g.shape[2], gy.shape[2]), x.dtype)
            np.matmul(w_g.transpose(0, 2, 1), gy, out=dcols)
            geometry = (n0, r0 * spec.stride[0], *spec.stride, *spec.dilation)
            geometry += (spec.padding[0], spec.padding[2])
            shape = (spec.in_channels, *spec.kernel, n1 - n0, r1 - r0, width)
            col2im(dcols.reshape(shape), grad_x, geometry, spec.out_width)
    return grad_x, grad_w
