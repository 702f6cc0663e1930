"""The forward with one image per worker: each worker lowers its image, then multiplies.

Each worker of a compiled parallel loop takes whole images. It gathers an image's
windows into a buffer of its own (a strided 1x1 layer's subsampled cells, or the
lowered columns of :mod:`.gather`), with a row of ones for the bias, and multiplies the
filters by it with BLAS at one thread, writing the output image in place. The copy and
the GEMM that reads it then run on the same core.

The whole batch lowered at once and multiplied by BLAS on two threads is the GEMM
reading what the other core has just written: a 1x1 stride-2 GEMM took 0.1 ms more
than on a buffer copied earlier. Interleaved against that, five rounds: 0.49-0.81x the
time on ResNet-18's stride-2 1x1 layers with 784 and 196 outputs per image, 0.75-0.94x
on its stride-2 3x3 layers with as many. Where one image's GEMM is thin (see
:data:`MIN_OUTPUTS`) the batch stays one GEMM, and where one image fills a chunk of its
own, the GEMM already writes the output in place on both threads (by image took 1.14x
the time on the stem in a first trial).

Each output image is one GEMM over the same operands, whichever worker computes it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.config import get_num_threads, get_workspace_limit
from fastcnn.jit import launch, readonly
from fastcnn.spec import ConvSpec

from .gather import gather_columns


@njit(cache=True)
def _subsample(x, cols, n, sh, sw, out_h, out_w):  # pragma: no cover
    # A 1x1 layer where every output reads input: cell (r, q) reads (sh*r, sw*q), there
    # being no padding at the top or the left. cols: (C + ones, OH*OW). Only the cells
    # read are copied; the gather would first split every plane into its phases.
    for c in range(x.shape[1]):
        for r in range(out_h):
            src, dst = x[n, c, sh * r], cols[c, r * out_w : (r + 1) * out_w]
            for q in range(out_w):
                dst[q] = src[sw * q]


@njit(parallel=True, cache=True)
def _by_images(
    x, filters, y, kernel, stride, dilation, top, left, phases, ones
):  # pragma: no cover
    # x: (N, C, H, W); filters: (O, C*kh*kw + ones); y: (N, O, OH, OW). phases: the
    # (rows, columns) of a stride phase of an image's padded input, for the gather;
    # (0, 0) for a 1x1 layer, subsampled directly.
    n_img, channels, height, width = x.shape
    n_out, out_h, out_w = y.shape[1:]
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    rows, cells = channels * kh * kw, out_h * out_w
    shape = (channels, kh, kw, 1, out_h, out_w, height, width)
    flat = x.reshape(-1)
    for n in prange(n_img):
        cols = np.empty((rows + ones, cells), dtype=x.dtype)
        if phases[0] == 0:
            _subsample(x, cols, n, sh, sw, out_h, out_w)
        else:
            hq, wq = phases
            dst = cols[:rows].reshape(-1)
            gather_columns(flat, dst, shape, n, 0, sh, sw, dh, dw, top, left, hq, wq)
        if ones:
            cols[rows, :] = 1
        np.dot(filters, cols, y[n].reshape(n_out, cells))


#: Fewer outputs per image than this make one image's GEMM on one thread too thin: the
#: batch's GEMM on all threads won (1.2-1.4x this way on the 49 of ResNet-18's 512@14
#: stride 2 and 512@7, 1.12x on the 1x1 512@14).
MIN_OUTPUTS = 100


def applies(spec: ConvSpec) -> bool:
    """An ungrouped layer with at least one image per thread, :data:`MIN_OUTPUTS` per
    image, and the threads' buffers within the workspace limit. The callers check the
    rest (see the module docstring)."""
    threads, cells = get_num_threads(), spec.out_height * spec.out_width
    rows = spec.in_channels * spec.kernel[0] * spec.kernel[1] + 1
    fits = threads * rows * cells * np.dtype(spec.dtype).itemsize <= get_workspace_limit()
    wide = cells >= MIN_OUTPUTS
    return spec.groups == 1 and spec.batch >= threads and wide and fits


def forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    spec: ConvSpec,
    phases: tuple[int, int] | None = None,
) -> np.ndarray:
    """``y[n] = W @ cols(x[n]) + b``, one image per worker (see :func:`applies`).

    ``phases`` is ``(rows, columns)`` of a stride phase of an image's padded input (see
    :func:`.gather.gather`); None for a 1x1 layer whose every output reads an input
    cell, which is subsampled directly.
    """
    filters = w.reshape(spec.out_channels, -1)
    if b is not None:
        filters = np.concatenate([filters, b[:, np.newaxis]], axis=1)
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    top, left = spec.padding[0], spec.padding[2]
    geometry = (spec.kernel, spec.stride, spec.dilation, top, left, phases or (0, 0))
    launch(_by_images, readonly(x), readonly(filters), y, *geometry, b is not None, calls_blas=True)
    return y
