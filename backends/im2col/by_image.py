"""Forward and backward with one image per worker: each lowers its image, then multiplies.

Each worker of a compiled parallel loop takes whole images. It gathers an image's
windows into a buffer of its own (a strided 1x1 layer's subsampled cells, or the
lowered columns of :mod:`.gather`) and multiplies the filters by it with BLAS at one
thread, writing the output image in place. The copy and the GEMM that reads it then run
on the same core. With a bias, the output image starts as the bias and the GEMM adds its
product to it (beta = 1) while it is in the worker's cache. The bias as one more filter
column against a row of ones in the buffer (as the batch's path adds it) took more time,
interleaved, nine rounds or more: 1.03-1.09x on ResNet-18's stride-2 1x1 layers with
784 and 196 outputs per image and 1.01-1.05x on its stride-2 3x3 layers, in float32;
1.3x on the 1x1 256@28 in float64.

The whole batch lowered at once and multiplied by BLAS on two threads is the GEMM
reading what the other core has just written: a 1x1 stride-2 GEMM took 0.1 ms more
than on a buffer copied earlier. Interleaved against that, five rounds: 0.49-0.81x the
time on ResNet-18's stride-2 1x1 layers with 784 and 196 outputs per image, 0.75-0.94x
on its stride-2 3x3 layers with as many. Where one image's GEMM is thin (see
:data:`MIN_OUTPUTS`) the batch stays one GEMM, and where one image fills a chunk of its
own, the GEMM already writes the output in place on both threads (by image took 1.14x
the time on the stem in a first trial).

Each output image is one GEMM over the same operands, whichever worker computes it.

A 1x1 stride-1 layer needs no buffer: each worker multiplies the filters by its image's
input as it lies, into an output image that starts as the bias (see
:func:`pointwise_applies`).

The backward likewise, where dW is wanted: each worker adds ``dY[n] @ cols(x[n]).T`` to
a dW of its own (one GEMM with beta = 1), then multiplies ``W.T @ dY[n]`` into the same
buffer and scatters it into ``dX[n]`` (col2im, or for a 1x1 layer straight back to the
cells read). The workers' dW are summed in a fixed order, so the result depends on the
thread count but not on the scheduling. dX, dW and db against the whole batch's path,
interleaved, nine rounds or more: 0.74 and 0.88 of the time on ResNet-18's stride-2 3x3
layers with 784 and 196 outputs per image, 0.79 on its stem; 0.89, 0.95 and 1.04 on its
stride-2 1x1 layers with 784, 196 and 196. dX alone took 1.0-1.7x the time this way (the
batch's GEMM and col2im are no slower), so it keeps the batch's path.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.config import get_num_threads, get_workspace_limit
from fastcnn.jit import add_product, add_product_nt, launch, readonly
from fastcnn.registry import GradNeed
from fastcnn.spec import ConvSpec

from .col2im import scatter_columns
from .gather import gather_columns


@njit(cache=True)
def _subsample(x, cols, n, sh, sw, out_h, out_w):  # pragma: no cover
    # A 1x1 layer where every output reads input: cell (r, q) reads (sh*r, sw*q), there
    # being no padding at the top or the left. cols: (C, OH*OW). Only the cells
    # read are copied; the gather would first split every plane into its phases.
    for c in range(x.shape[1]):
        for r in range(out_h):
            src, dst = x[n, c, sh * r], cols[c, r * out_w : (r + 1) * out_w]
            for q in range(out_w):
                dst[q] = src[sw * q]


@njit(cache=True)
def _spread(cols, grad_x, n, sh, sw, out_h, out_w):  # pragma: no cover
    # The way back of _subsample: each column's gradient to the one cell it read (no two
    # read the same cell).
    for c in range(grad_x.shape[1]):
        for r in range(out_h):
            src, dst = cols[c, r * out_w : (r + 1) * out_w], grad_x[n, c, sh * r]
            for q in range(out_w):
                dst[sw * q] = src[q]


@njit(cache=True)
def _lower_image(x, cols, n, geometry):  # pragma: no cover
    # cols: (C*kh*kw, OH*OW) gets image n's windows. geometry: see _geometry.
    channels, height, width = x.shape[1:]
    out_h, out_w, kh, kw, sh, sw, dh, dw, top, left, hq, wq = geometry
    if hq == 0:
        _subsample(x, cols, n, sh, sw, out_h, out_w)
        return
    shape = (channels, kh, kw, 1, out_h, out_w, height, width)
    dst = cols[: channels * kh * kw].reshape(-1)
    gather_columns(x.reshape(-1), dst, shape, n, 0, sh, sw, dh, dw, top, left, hq, wq)


@njit(cache=True)
def _product_into(filters, operand, bias, out, has_bias):  # pragma: no cover
    # out = filters @ operand (+ bias per row). With a bias, out starts as the bias and
    # the GEMM adds its product to it (beta = 1), in the worker's cache.
    if not has_bias:
        np.dot(filters, operand, out)
        return
    for o in range(out.shape[0]):
        out[o, :] = bias[o]
    add_product(filters, operand, out)


@njit(parallel=True, cache=True)
def _by_images(x, filters, bias, y, geometry, has_bias):  # pragma: no cover
    # x: (N, C, H, W); filters: (O, C*kh*kw); y: (N, O, OH, OW).
    n_out, out_h, out_w = y.shape[1:]
    rows, cells = filters.shape[1], out_h * out_w
    # Numba passes no tuple into a parallel loop's body: the geometry goes in as numbers.
    oh, ow, kh, kw, sh, sw, dh, dw, top, left, hq, wq = geometry
    for n in prange(x.shape[0]):
        cols = np.empty((rows, cells), dtype=x.dtype)
        _lower_image(x, cols, n, (oh, ow, kh, kw, sh, sw, dh, dw, top, left, hq, wq))
        _product_into(filters, cols, bias, y[n].reshape(n_out, cells), has_bias)


@njit(parallel=True, cache=True)
def _pointwise_by_images(x, filters, bias, y, has_bias):  # pragma: no cover
    # A 1x1 stride-1 layer whose every output reads input (no padding): image n's input
    # is the GEMM's operand as it lies.
    n_ch, n_out, cells = x.shape[1], y.shape[1], y.shape[2] * y.shape[3]
    for n in prange(x.shape[0]):
        operand = x[n].reshape(n_ch, cells)
        _product_into(filters, operand, bias, y[n].reshape(n_out, cells), has_bias)


@njit(parallel=True, cache=True)
def _backward_by_images(x, grad_y, w_t, grad_x, grad_ws, geometry, need_x):  # pragma: no cover
    # grad_y: (N, O, OH, OW); w_t: (C*kh*kw, O), the filters transposed; grad_x: (N, C,
    # H, W), zero, or empty without need_x; grad_ws: (workers, O, C*kh*kw), zero: worker
    # k adds the products of images k, k + workers, ... to grad_ws[k].
    n_img, channels, height, width = x.shape
    n_out, cells = grad_y.shape[1], grad_y.shape[2] * grad_y.shape[3]
    oh, ow, kh, kw, sh, sw, dh, dw, top, left, hq, wq = geometry
    shape = (channels, kh, kw, 1, oh, ow, height, width)
    flat_grad_x = grad_x.reshape(-1)
    workers = grad_ws.shape[0]
    for k in prange(workers):
        cols = np.empty((w_t.shape[0], cells), dtype=x.dtype)
        for n in range(k, n_img, workers):
            gy = grad_y[n].reshape(n_out, cells)
            _lower_image(x, cols, n, (oh, ow, kh, kw, sh, sw, dh, dw, top, left, hq, wq))
            add_product_nt(gy, cols, grad_ws[k])
            if not need_x:
                continue
            np.dot(w_t, gy, cols)  # the same buffer takes the columns' gradients
            if hq == 0:
                _spread(cols, grad_x, n, sh, sw, oh, ow)
            else:
                dcols = cols.reshape(-1)
                scatter_columns(dcols, flat_grad_x, shape, n, 0, sh, sw, dh, dw, top, left, ow)


#: Fewer outputs per image than this make one image's GEMM on one thread too thin: the
#: batch's GEMM on all threads won (1.2-1.4x this way on the 49 of ResNet-18's 512@14
#: stride 2 and 512@7, 1.12x on the 1x1 512@14).
MIN_OUTPUTS = 100


#: A 1x1 stride-1 output image larger than this leaves the worker's cache (a core's L2
#: here) between the bias written into it and the GEMM adding its product. Against the
#: batch's path, interleaved, 9 rounds or more: 0.86-0.90x the time on MobileNet's
#: 512@14 (0.4 MB an image) and 0.70-0.76x on 128@14, but 0.93-1.23x on 128@56 (1.6 MB)
#: and 1.0-1.13x on 64@112 (3.2 MB).
MAX_POINTWISE_IMAGE_BYTES = 2**20


def applies(spec: ConvSpec, need: GradNeed | None = None) -> bool:
    """Whether the forward (``need`` None), or the backward for ``need``, goes by image: an
    ungrouped layer with at least one image per thread, :data:`MIN_OUTPUTS` per image,
    the threads' buffers within the workspace limit, and for the backward, dW wanted.
    The callers check the rest (see the module docstring)."""
    threads, cells = get_num_threads(), spec.out_height * spec.out_width
    rows = spec.in_channels * spec.kernel[0] * spec.kernel[1]
    per_thread = rows * cells + (0 if need is None else spec.out_channels * rows)
    fits = threads * per_thread * np.dtype(spec.dtype).itemsize <= get_workspace_limit()
    wide = cells >= MIN_OUTPUTS
    wanted = need is None or need.w
    return spec.groups == 1 and spec.batch >= threads and wide and fits and wanted


def pointwise_applies(spec: ConvSpec) -> bool:
    """Whether :func:`pointwise_forward` may run a 1x1 stride-1 layer whose every output
    reads input (the caller checks that, and that a bias or thin maps make it pay): an
    ungrouped layer with an image per thread, each output image within
    :data:`MAX_POINTWISE_IMAGE_BYTES`. Thin images do not hold it back as they do
    :func:`applies`: what it saves is the batch's path's copies of the input and the
    output (with a bias, 7x7 maps of 1024 channels took as long either way; 32 images of
    64 channels on 8x8 maps, 0.48x the time; 1x1 maps, 0.75-1.02x)."""
    cells = spec.out_height * spec.out_width
    image = spec.out_channels * cells * np.dtype(spec.dtype).itemsize
    fits = image <= MAX_POINTWISE_IMAGE_BYTES
    return spec.groups == 1 and spec.batch >= get_num_threads() and fits


def _geometry(spec: ConvSpec, phases: tuple[int, int] | None) -> tuple[int, ...]:
    """The output's size, the kernel, stride, dilation, top and left padding, and the
    phases (see :func:`forward`; ``(0, 0)`` to subsample), as :func:`_lower_image`
    takes them."""
    top, left = spec.padding[0], spec.padding[2]
    sizes = (spec.out_height, spec.out_width, *spec.kernel, *spec.stride, *spec.dilation)
    return (*sizes, top, left, *(phases or (0, 0)))


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
    bias = b if b is not None else np.zeros(0, dtype=spec.dtype)
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    geometry = _geometry(spec, phases)
    args = (readonly(x), readonly(filters), readonly(bias), y, geometry, b is not None)
    launch(_by_images, *args, calls_blas=True)
    return y


def pointwise_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
) -> np.ndarray:
    """``y[n] = W @ x[n] + b`` for a 1x1 stride-1 layer without padding, one image per
    worker (see :func:`pointwise_applies`): no copy of the input, and no pass over the
    output for the bias but the one that starts it."""
    filters = w.reshape(spec.out_channels, spec.in_channels)
    bias = b if b is not None else np.zeros(0, dtype=spec.dtype)
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    args = (readonly(x), readonly(filters), readonly(bias), y, b is not None)
    launch(_pointwise_by_images, *args, calls_blas=True)
    return y


def backward(
    grad_y: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    spec: ConvSpec,
    need: GradNeed,
    phases: tuple[int, int] | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """``dW = sum_n dY[n] @ cols(x[n]).T`` and ``dX[n] = col2im(W.T @ dY[n])``, one image
    per worker (see :func:`applies`; ``phases`` as in :func:`forward`). ``dW`` is ``(1, O,
    C*kh*kw)``, as the lowering's backward gives it."""
    w_t = np.ascontiguousarray(w.reshape(spec.out_channels, -1).T)
    grad_ws = np.zeros((get_num_threads(), *w_t.shape[::-1]), dtype=spec.dtype)
    grad_x = np.zeros(spec.x_shape if need.x else (0, 0, 0, 0), dtype=spec.dtype)
    geometry = _geometry(spec, phases)
    args = (readonly(x), readonly(grad_y), readonly(w_t), grad_x, grad_ws, geometry, need.x)
    launch(_backward_by_images, *args, calls_blas=True)
    return (grad_x if need.x else None), grad_ws.sum(axis=0)[np.newaxis]
