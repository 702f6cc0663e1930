"""A strided 1x1 convolution's forward with one image per worker: subsample, then GEMM.

Each worker of a compiled parallel loop takes whole images: it copies the image's
subsampled cells (and, for the bias, a row of ones) into a buffer of its own and
multiplies the filters by it with BLAS at one thread, writing the output image in place.
The copy and the GEMM that reads it then run on the same core. Done as one NumPy copy of
the whole batch followed by BLAS on two threads, the GEMM read cells the other core had
just written and took 0.1 ms more than on a buffer copied earlier; on ResNet-18's three
stride-2 1x1 layers with 784 and 196 outputs per image this way took 0.77-0.84x the time
(interleaved, five rounds). On smaller maps the images stay side by side in one GEMM on
both threads (:mod:`.pointwise`): one image's GEMM on one thread was then too thin, 1.12x
the time on the 49 outputs of 512@14.

Each output image is one GEMM over the same operands as before, so the result does not
depend on which worker computes it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.config import get_num_threads, get_workspace_limit
from fastcnn.jit import launch, readonly
from fastcnn.spec import ConvSpec


@njit(parallel=True, cache=True)
def _by_images(x, filters, y, sh, sw, ones):  # pragma: no cover
    # x: (N, C, H, W); filters: (O, C + ones); y: (N, O, OH, OW). Output cell (r, q) reads
    # input cell (sh*r, sw*q): where every output reads input, there is no padding at the
    # top or the left.
    n_img, channels = x.shape[:2]
    n_out, out_h, out_w = y.shape[1:]
    cells = out_h * out_w
    for n in prange(n_img):
        cols = np.empty((channels + ones, cells), dtype=x.dtype)
        for c in range(channels):
            for r in range(out_h):
                src, dst = x[n, c, sh * r], cols[c, r * out_w : (r + 1) * out_w]
                for q in range(out_w):
                    dst[q] = src[sw * q]
        if ones:
            cols[channels, :] = 1
        np.dot(filters, cols, y[n].reshape(n_out, cells))


def applies(spec: ConvSpec) -> bool:
    """A strided ungrouped 1x1 layer with at least one image per thread and the threads'
    buffers within the workspace limit. The caller checks the rest: every output reads
    an input cell, and an image has enough of them for a GEMM of its own."""
    threads = get_num_threads()
    buffers = threads * (spec.in_channels + 1) * spec.out_height * spec.out_width
    fits = buffers * np.dtype(spec.dtype).itemsize <= get_workspace_limit()
    strided = spec.stride != (1, 1)
    return strided and spec.groups == 1 and spec.batch >= threads and fits


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """``y[n] = W @ x[n, :, ::sh, ::sw] + b``, one image per worker, where every output
    reads an input cell (see :func:`applies`).

    Each worker's buffer holds one image's subsampled input, ``C + 1`` rows of
    ``OH * OW`` values.
    """
    filters = w.reshape(spec.out_channels, -1)
    if b is not None:
        filters = np.concatenate([filters, b[:, np.newaxis]], axis=1)
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    sh, sw = spec.stride
    launch(_by_images, readonly(x), readonly(filters), y, sh, sw, b is not None, calls_blas=True)
    return y
