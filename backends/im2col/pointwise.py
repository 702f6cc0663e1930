"""1x1 convolution without lowering: ``W @ x[n]`` per group on the input as it lies.

A stride costs one subsampling copy of the input (where every output reads input, a
copy per image by the worker that then multiplies it, :mod:`.by_image`); padding only
adds output rows and columns that read nothing but zeros. On small maps the images are
laid side by side as one GEMM operand, since one thin GEMM per image leaves BLAS idle
(a strided layer's by a compiled loop, NumPy's copy of a subsampled view being slow).
A bias is added as the output is moved into place (by the lowering's compiled pass,
:mod:`.place`, where each image's plane is one run: NumPy's add with a broadcast bias ran
at half a copy's speed), or, where the GEMM writes the output in place, by the GEMM
itself: one more column of the filters against a row of ones in a copied operand.

At stride 1, where every output reads input and an output image fits a core's cache,
each worker takes images of its own instead (:func:`.by_image.pointwise_forward`): its
GEMM reads the input as it lies and adds to an output image that starts as the bias,
so neither copy is made. Without a bias that pays only where the images would go side
by side.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numba import njit

from fastcnn.config import get_workspace_limit
from fastcnn.ops import CONV2D, CONV2D_BACKWARD
from fastcnn.registry import GradNeed
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec

from . import by_image
from .lowering import chunk_budget
from .place import place

#: A 1x1 convolution multiplies the filters by the input as it lies in memory, one GEMM
#: per image; below this many output positions per image those GEMMs are too thin for
#: BLAS, so the images are laid side by side as one operand (one transpose copy), by op.
#: The forward's per-image GEMMs write the output in place (a side-by-side product is
#: copied back), so they pay down to fewer positions: on 14x14 maps (196 positions) they
#: ran 8-17 % faster forward and 2-5 % slower backward; on 7x7 maps 1.35x slower forward.
SIDE_BY_SIDE_POSITIONS = {CONV2D: 100, CONV2D_BACKWARD: 400}

Span = tuple[int, int]


def _axis_box(out: int, stride: int, pad: int, size: int) -> Span:
    """Outputs ``[first, last)`` of a 1x1 window along one axis that read real input."""
    first = -(-pad // stride)
    last = min(out, (size - 1 + pad) // stride + 1)
    return first, max(first, last)


def box(spec: ConvSpec) -> tuple[Span, Span, bool]:
    """The output rows and columns that read input (the others read only padding and are
    zero), and whether that is the whole output."""
    top, _, left, _ = spec.padding
    rows = _axis_box(spec.out_height, spec.stride[0], top, spec.height)
    cols = _axis_box(spec.out_width, spec.stride[1], left, spec.width)
    whole = rows == (0, spec.out_height) and cols == (0, spec.out_width)
    return rows, cols, whole


def _reads_nothing(rows: Span, cols: Span) -> bool:
    """No window of the box reads an input cell: every output sees only padding."""
    return rows[0] == rows[1] or cols[0] == cols[1]


def _input_cells(a: np.ndarray, spec: ConvSpec, rows: Span, cols: Span) -> np.ndarray:
    """The cells of ``a`` (shaped like the input) that the 1x1 windows in the box read."""
    (sh, sw), (top, _, left, _) = spec.stride, spec.padding
    y0, x0 = rows[0] * sh - top, cols[0] * sw - left
    return a[
        :,
        :,
        y0 : y0 + sh * (rows[1] - rows[0] - 1) + 1 : sh,
        x0 : x0 + sw * (cols[1] - cols[0] - 1) + 1 : sw,
    ]


@njit(cache=True)
def _subsampled_side_by_side(src, dst):  # pragma: no cover
    # dst[g, k, n*h*w + r*w + q] = src[n, g*K + k, r, q] for a strided view src (nb, C, h,
    # w) of the input, dst (G, K, nb*h*w). For ResNet-18's 1x1 stride-2 layer on 7x7
    # outputs NumPy's copy of the transposed view ran at 2-3 GB/s; this loop at 1.5x
    # that. On unit-stride sources NumPy's copy is 5-7x faster than this loop.
    nb, channels, h, w = src.shape
    k_in = channels // dst.shape[0]
    for c in range(channels):
        g, k = c // k_in, c % k_in
        for n in range(nb):
            row = dst[g, k, n * h * w : (n + 1) * h * w]
            for r in range(h):
                cells = src[n, c, r]
                for q in range(w):
                    row[r * w + q] = cells[q]


def _operand(cells: np.ndarray, groups: int, slot: str, *, side: bool, ones: bool) -> np.ndarray:
    """``cells`` (nb, C, h, w) as a GEMM operand ``(nb, G, C/G, h*w)``, or with ``side``
    the images side by side, ``(G, C/G, nb*h*w)``; with ``ones`` each group gains a row
    of ones (the bias's, see :func:`_filters`). A view when no copy is needed, else one
    copy into scratch ``slot``."""
    nb, c, h, w = cells.shape
    k = c // groups
    if not (side or ones) and cells.flags.c_contiguous:
        return cells.reshape(nb, groups, k, h * w)
    if side and not ones and cells.strides[3] != cells.itemsize:  # a subsampled view
        buf = scratch(slot, (groups, k, nb * h * w), cells.dtype)
        _subsampled_side_by_side(cells, buf)
        return buf
    source = cells.reshape(nb, groups, k, h, w)
    if side:
        buf = scratch(slot, (groups, k + ones, nb, h * w), cells.dtype)
        np.copyto(buf[:, :k].reshape(groups, k, nb, h, w), source.transpose(1, 2, 0, 3, 4))
        if ones:
            buf[:, k] = 1
        return buf.reshape(groups, k + ones, nb * h * w)
    buf = scratch(slot, (nb, groups, k + ones, h * w), cells.dtype)
    np.copyto(buf[:, :, :k].reshape(nb, groups, k, h, w), source)
    if ones:
        buf[:, :, k] = 1
    return buf


def _filters(w: np.ndarray, b: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """The filters as ``(G, Og, Kg)``, with the bias as one more column when given: the
    GEMM then adds it (times the operand's row of ones) as it writes the output, instead
    of a second pass over an output that no longer fits in cache."""
    w_g = w.reshape(spec.groups, spec.out_channels // spec.groups, -1)
    if b is None:
        return w_g
    return np.concatenate([w_g, b.reshape(*w_g.shape[:2], 1)], axis=2)


def _unstack(a: np.ndarray, nb: int) -> np.ndarray:
    """``(G, K, nb*P)`` back to an ``(nb, G, K, P)`` view."""
    groups, k, _ = a.shape
    return a.reshape(groups, k, nb, -1).transpose(2, 0, 1, 3)


def image_bytes(spec: ConvSpec) -> int:
    """Scratch per image, an upper bound for forward and backward: the gathered input
    (with the bias's rows of ones) and gradient, and the side-by-side GEMM's output."""
    (r0, r1), (c0, c1), _ = box(spec)
    item = np.dtype(spec.dtype).itemsize
    rows = spec.in_channels + spec.groups + 2 * spec.out_channels
    return rows * (r1 - r0) * (c1 - c0) * item


def applies(spec: ConvSpec) -> bool:
    """1x1 kernel (any stride, padding, dilation) whose per-image scratch fits."""
    return spec.kernel == (1, 1) and image_bytes(spec) <= get_workspace_limit()


def chunks(spec: ConvSpec, op: str) -> Iterator[tuple[int, int, bool]]:
    """Image slices within the scratch budget, and whether ``op`` lays them side by side."""
    (r0, r1), (c0, c1), _ = box(spec)
    step = max(1, chunk_budget() // max(image_bytes(spec), 1))
    thin = (r1 - r0) * (c1 - c0) < SIDE_BY_SIDE_POSITIONS[op]
    for n0 in range(0, spec.batch, step):
        n1 = min(n0 + step, spec.batch)
        yield n0, n1, thin and n1 - n0 > 1


def forward_by_images(spec: ConvSpec) -> bool:
    """Whether the forward goes one image per worker (:func:`.by_image.pointwise_forward`):
    stride 1, every output reading input, :func:`.by_image.pointwise_applies`, and a bias
    or maps thin enough to go side by side. Without a bias, the batch's GEMMs on all
    threads write in place on larger maps: by image took 1.05x their time on 512@14."""
    _, _, whole = box(spec)
    if not (whole and spec.stride == (1, 1) and by_image.pointwise_applies(spec)):
        return False
    return spec.bias or spec.out_height * spec.out_width < SIDE_BY_SIDE_POSITIONS[CONV2D]


def _place(out: np.ndarray, b: np.ndarray | None, target: np.ndarray) -> None:
    """``target = out + b`` (one pass over the output: the bias rides on a copy that
    has to be made anyway)."""
    if b is None:
        target[...] = out
    else:
        np.add(out, b[:, np.newaxis, np.newaxis], out=target)


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """``y[n] = W @ x[n] + b`` per group, on the (subsampled) input; outputs that read
    only padding are the bias (or zero)."""
    rows, cols, whole = box(spec)
    if whole and spec.stride != (1, 1) and by_image.applies(spec):
        return by_image.forward(x, w, b, spec)
    if forward_by_images(spec):
        return by_image.pointwise_forward(x, w, b, spec)
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    if not whole:
        y[...] = 0 if b is None else b[:, np.newaxis, np.newaxis]
    if _reads_nothing(rows, cols):
        return y
    w_g = _filters(w, None, spec)
    w_bias = None  # with the bias's column, made when a chunk first needs it
    y_box = y[:, :, rows[0] : rows[1], cols[0] : cols[1]]
    for n0, n1, side in chunks(spec, CONV2D):
        cells = _input_cells(x[n0:n1], spec, rows, cols)
        if side:  # the bias is added as the output is moved into place
            xs = _operand(cells, spec.groups, "pw_x", side=True, ones=False)
            out = np.matmul(w_g, xs, out=scratch("gemm", (*w_g.shape[:2], xs.shape[2]), x.dtype))
            if whole:  # one compiled pass, each image's plane one run
                planes = (spec.batch, spec.out_channels, 1, -1)
                place(out.reshape(spec.out_channels, n1 - n0, 1, -1), y.reshape(planes), (n0, 0), b)
            else:
                _place(_unstack(out, n1 - n0).reshape(y_box[n0:n1].shape), b, y_box[n0:n1])
        elif whole:  # the GEMM writes the output in place, and adds the bias itself
            ones = b is not None
            xs = _operand(cells, spec.groups, "pw_x", side=False, ones=ones)
            if ones and w_bias is None:
                w_bias = _filters(w, b, spec)
            target = y[n0:n1].reshape(n1 - n0, *w_g.shape[:2], -1)
            np.matmul(w_bias if ones else w_g, xs, out=target)
        else:
            xs = _operand(cells, spec.groups, "pw_x", side=False, ones=False)
            _place(np.matmul(w_g, xs).reshape(y_box[n0:n1].shape), b, y_box[n0:n1])
    return y


def backward(
    grad_y: np.ndarray, x: np.ndarray, w: np.ndarray, spec: ConvSpec, need: GradNeed
) -> tuple[np.ndarray | None, np.ndarray]:
    """``dW = sum_n dY[n] @ X[n].T`` and ``dX = W.T @ dY`` scattered to the cells read
    (strided, where dW is wanted, an image per worker: :mod:`.by_image`); ``dW`` is
    ``(G, Og, Kg)`` (zero unless ``need.w``)."""
    rows, cols, whole = box(spec)
    if whole and spec.stride != (1, 1) and by_image.applies(spec, need):
        return by_image.backward(grad_y, x, w, spec, need)
    groups = spec.groups
    w_t = w.reshape(groups, spec.out_channels // groups, -1).transpose(0, 2, 1)
    grad_w = np.zeros((groups, *w_t.shape[1:][::-1]), dtype=spec.dtype)
    grad_x = None
    if need.x:
        dense = whole and spec.stride == (1, 1)  # every input cell is read exactly once
        grad_x = (np.empty if dense else np.zeros)(spec.x_shape, dtype=spec.dtype)
    if _reads_nothing(rows, cols):
        return grad_x, grad_w
    first = True
    for n0, n1, side in chunks(spec, CONV2D_BACKWARD):
        nb = n1 - n0
        gy_box = grad_y[n0:n1, :, rows[0] : rows[1], cols[0] : cols[1]]
        gy = _operand(gy_box, groups, "pw_gy", side=side, ones=False)
        if need.w:
            cells = _input_cells(x[n0:n1], spec, rows, cols)
            xs = _operand(cells, groups, "pw_x", side=side, ones=False)
            # The first chunk's sum is written into dW itself, not into an array as large
            # beside it (all fresh pages: see fastcnn.scratch).
            into = grad_w if first else None
            if side:
                product = np.matmul(gy, xs.transpose(0, 2, 1), out=into)
            else:
                product = np.matmul(gy, xs.transpose(0, 1, 3, 2)).sum(axis=0, out=into)
            if not first:
                grad_w += product
            first = False
        if not need.x:
            continue
        dx = np.matmul(
            w_t,
            gy,
            out=scratch("pw_dx", (*gy.shape[:-2], *w_t.shape[1:2], gy.shape[-1]), gy.dtype),
        )
        target = _input_cells(grad_x[n0:n1], spec, rows, cols)
        target[...] = (_unstack(dx, nb) if side else dx).reshape(target.shape)
    return grad_x, grad_w
