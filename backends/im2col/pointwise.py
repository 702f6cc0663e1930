"""1x1 convolution without lowering: ``W @ x[n]`` per group on the input as it lies.

A stride costs one subsampling copy of the input; padding only adds output rows and
columns that read nothing but zeros. On small maps the images are laid side by side as one
GEMM operand, since one thin GEMM per image leaves BLAS idle.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fastcnn.config import get_workspace_limit
from fastcnn.registry import GradNeed
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec

from .lowering import chunk_budget

#: A 1x1 convolution multiplies the filters by the input as it lies in memory, one GEMM
#: per image; below this many output positions per image those GEMMs are too thin for
#: BLAS, so the images are laid side by side as one operand (one transpose copy).
SIDE_BY_SIDE_POSITIONS = 400

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


def image_bytes(spec: ConvSpec) -> int:
    """Scratch per image, an upper bound for forward and backward: gathered input and
    gradient, and both again side by side."""
    (r0, r1), (c0, c1), _ = box(spec)
    item = np.dtype(spec.dtype).itemsize
    return 4 * (spec.in_channels + spec.out_channels) * (r1 - r0) * (c1 - c0) * item


def applies(spec: ConvSpec) -> bool:
    """1x1 kernel (any stride, padding, dilation) whose per-image scratch fits."""
    return spec.kernel == (1, 1) and image_bytes(spec) <= get_workspace_limit()


def chunks(spec: ConvSpec) -> Iterator[tuple[int, int, bool]]:
    """Image slices within the scratch budget, and whether to lay them side by side."""
    (r0, r1), (c0, c1), _ = box(spec)
    step = max(1, chunk_budget() // max(image_bytes(spec), 1))
    thin = (r1 - r0) * (c1 - c0) < SIDE_BY_SIDE_POSITIONS
    for n0 in range(0, spec.batch, step):
        n1 = min(n0 + step, spec.batch)
        yield n0, n1, thin and n1 - n0 > 1


def forward(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``y[n] = W @ x[n]`` per group, on the (subsampled) input; padding gives zeros. No
    bias."""
    rows, cols, whole = box(spec)
    y = (np.empty if whole else np.zeros)(spec.y_shape, dtype=spec.dtype)
    w_g = w.reshape(spec.groups, spec.out_channels // spec.groups, -1)
    if _reads_nothing(rows, cols):
        return y
    y_box = y[:, :, rows[0] : rows[1], cols[0] : cols[1]]
    for n0, n1, side in chunks(spec):
        xs = _flat(_input_cells(x[n0:n1], spec, rows, cols), "pw_x", spec.groups)
        if side:
            xt = _side_by_side(xs, "pw_xt")
            out = np.matmul(w_g, xt, out=scratch("gemm", (*w_g.shape[:2], xt.shape[2]), x.dtype))
            y_box[n0:n1] = _unstack(out, n1 - n0).reshape(y_box[n0:n1].shape)
        elif whole:
            np.matmul(w_g, xs, out=y[n0:n1].reshape(n1 - n0, *w_g.shape[:2], -1))
        else:
            y_box[n0:n1] = np.matmul(w_g, xs).reshape(y_box[n0:n1].shape)
    return y


def backward(
    grad_y: np.ndarray, x: np.ndarray, w: np.ndarray, spec: ConvSpec, need: GradNeed
) -> tuple[np.ndarray | None, np.ndarray]:
    """``dW = sum_n dY[n] @ X[n].T`` and ``dX = W.T @ dY`` scattered to the cells read;
    ``dW`` is ``(G, Og, Kg)`` (zero unless ``need.w``)."""
    rows, cols, whole = box(spec)
    groups = spec.groups
    w_t = w.reshape(groups, spec.out_channels // groups, -1).transpose(0, 2, 1)
    grad_w = np.zeros((groups, *w_t.shape[1:][::-1]), dtype=spec.dtype)
    grad_x = None
    if need.x:
        dense = whole and spec.stride == (1, 1)  # every input cell is read exactly once
        grad_x = (np.empty if dense else np.zeros)(spec.x_shape, dtype=spec.dtype)
    if _reads_nothing(rows, cols):
        return grad_x, grad_w
    for n0, n1, side in chunks(spec):
        nb = n1 - n0
        gy_box = grad_y[n0:n1, :, rows[0] : rows[1], cols[0] : cols[1]]
        gy = _flat(gy_box, "pw_gy", groups)
        if need.w:
            xs = _flat(_input_cells(x[n0:n1], spec, rows, cols), "pw_x", groups)
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
        target = _input_cells(grad_x[n0:n1], spec, rows, cols)
        target[...] = (_unstack(dx, nb) if side else dx).reshape(target.shape)
    return grad_x, grad_w
