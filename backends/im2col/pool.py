"""Pooling through a window view of the padded input, reducing over the tap axis.

The padded rows a chunk reads are copied into a slab (``pad_value`` around the input);
a read-only strided view of the slab holds every window, so the forward pass is one
reduction and the backward pass adds each tap's share through a strided view of a
gradient slab.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from fastcnn.scratch import scratch
from fastcnn.spec import PoolSpec

from .lowering import Chunk, chunks, slab_extent


def row_bytes(spec: PoolSpec) -> int:
    """Lowered windows per output row of one image."""
    kh, kw = spec.kernel
    return spec.channels * kh * kw * spec.out_width * np.dtype(spec.dtype).itemsize


def _chunks(spec: PoolSpec) -> Iterator[Chunk]:
    return chunks(spec.batch, spec.out_height, row_bytes(spec))


def _slab(x: np.ndarray, spec: PoolSpec, chunk: Chunk, fill: float) -> tuple[np.ndarray, int]:
    """The padded input rows that output rows ``r0:r1`` of images ``n0:n1`` read.

    Returns the slab and the padded-coordinate row it starts at. Cells outside the input
    (padding, and a ceil_mode window's overhang) hold ``fill``.
    """
    n0, n1 = chunk[:2]
    top, _, left, _ = spec.padding
    first, height, width = slab_extent(spec, chunk)
    slab = scratch("slab", (n1 - n0, x.shape[1], height, width), x.dtype)
    slab.fill(fill)
    # Rows of x that fall inside the slab: padded row p holds x row p - top.
    src0, src1 = max(first - top, 0), min(first + height - top, spec.height)
    if src1 > src0:
        dst0 = src0 + top - first
        slab[:, :, dst0 : dst0 + src1 - src0, left : left + spec.width] = x[n0:n1, :, src0:src1]
    return slab, first


def _windows(slab: np.ndarray, spec: PoolSpec, rows: int) -> np.ndarray:
    """Lowered windows ``(nb, C, kh*kw, rows, OW)`` of a slab: a read-only strided view."""
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel, spec.stride, spec.dilation
    sn, sc, sy, sx = slab.strides
    windows = as_strided(
        slab,
        shape=(slab.shape[0], slab.shape[1], kh, kw, rows, spec.out_width),
        strides=(sn, sc, dh * sy, dw * sx, sh * sy, sw * sx),
        writeable=False,
    )
    return windows.reshape(slab.shape[0], spec.channels, -1, rows, spec.out_width)


def _tap_view(target: np.ndarray, spec: PoolSpec, i: int, j: int, rows: int) -> np.ndarray:
    """The cells of a padded slab that kernel tap (i, j) touches, one per output position."""
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    r, c = i * dh, j * dw
    return target[
        :, :, r : r + sh * (rows - 1) + 1 : sh, c : c + sw * (spec.out_width - 1) + 1 : sw
    ]


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


def pool2d(x: np.ndarray, spec: PoolSpec) -> np.ndarray:
    """Pooling forward: each chunk's windows reduced over their taps."""
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    divisor = _divisor(spec) if spec.mode == "mean" else None
    for chunk in _chunks(spec):
        n0, n1, r0, r1 = chunk
        slab, _ = _slab(x, spec, chunk, spec.pad_value)
        cols = _windows(slab, spec, r1 - r0)
        if spec.mode == "max":
            y[n0:n1, :, r0:r1] = cols.max(axis=2)  # NaN propagates, as in PyTorch
        elif spec.mode == "min":
            y[n0:n1, :, r0:r1] = cols.min(axis=2)
        else:
            y[n0:n1, :, r0:r1] = cols.sum(axis=2) / divisor[r0:r1]
        del cols
    return y


def _tap_gradients(
    grad_slab: np.ndarray, slab: np.ndarray, gy: np.ndarray, spec: PoolSpec, rows: int
) -> None:
    """Add each tap's share of a chunk's ``gy`` to the gradient slab: the mean's share
    (``gy`` already divided) to every tap, or ``gy`` to the winning tap of max/min."""
    kh, kw = spec.kernel
    if spec.mode == "mean":
        for i in range(kh):
            for j in range(kw):
                _tap_view(grad_slab, spec, i, j, rows)[...] += gy
        return
    cols = _windows(slab, spec, rows)
    # argmax/argmin give the first extreme; a window holding NaN routes to its last NaN,
    # as PyTorch's kernel does.
    pick = np.argmax if spec.mode == "max" else np.argmin
    nan = np.isnan(cols)
    last_nan = cols.shape[2] - 1 - np.argmax(nan[:, :, ::-1], axis=2)
    winner = np.where(nan.any(axis=2), last_nan, pick(cols, axis=2))
    del cols, nan, last_nan
    for i in range(kh):
        for j in range(kw):
            won = winner == i * kw + j
            _tap_view(grad_slab, spec, i, j, rows)[...] += np.where(won, gy, 0)


def pool2d_backward(grad_y: np.ndarray, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
    """Pooling backward: per chunk, tap shares added on a padded gradient slab, whose
    inner part is then added to ``dX``."""
    grad_x = np.zeros(spec.x_shape, dtype=spec.dtype)
    top, _, left, _ = spec.padding
    if spec.mode == "mean":
        grad_y = grad_y / _divisor(spec)
    for chunk in _chunks(spec):
        n0, n1, r0, r1 = chunk
        slab, first = _slab(x, spec, chunk, spec.pad_value)
        grad_slab = np.zeros_like(slab)
        _tap_gradients(grad_slab, slab, grad_y[n0:n1, :, r0:r1], spec, r1 - r0)
        src0, src1 = max(first - top, 0), min(first + slab.shape[2] - top, spec.height)
        if src1 > src0:
            d0 = src0 + top - first
            grad_x[n0:n1, :, src0:src1] += grad_slab[
                :, :, d0 : d0 + src1 - src0, left : left + spec.width
            ]
    return grad_x
