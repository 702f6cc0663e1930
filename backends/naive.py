"""The reference backend: the definitions, written out as loops over output positions.

Every output of a convolution is the Hadamard product of one input window with the
kernel, summed; every pooling output is the max, min or mean of one window. Gradients
follow the chain rule directly: each output's gradient is scattered back through the
window it came from (dL/dX += dL/dO * F, dL/dF += dL/dO * X), deliberately *not* the
"full convolution with the rotated kernel" shortcut, so that the other backends are
checked against an independent derivation. Readability beats speed here; only the batch
and channel axes are vectorised.
"""

from __future__ import annotations

import numpy as np

from fastcnn.registry import BackendBase, ConvGrads, GradNeed
from fastcnn.spec import ConvSpec, PoolSpec

#: Rough cost of one Python-level window visit, so that "auto" only picks this backend
#: when nothing else can run the call.
_SECONDS_PER_WINDOW = 2e-5
_FLOPS_PER_SECOND = 2e8


def _window(spec: ConvSpec | PoolSpec, i: int, j: int) -> tuple[slice, slice]:
    """Rows and columns of the padded input that output position (i, j) reads."""
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel, spec.stride, spec.dilation
    top, left = i * sh, j * sw
    return slice(top, top + dh * (kh - 1) + 1, dh), slice(left, left + dw * (kw - 1) + 1, dw)


def _padded(x: np.ndarray, spec: ConvSpec | PoolSpec, fill: float) -> np.ndarray:
    """``x`` inside a border of ``fill``, extended bottom/right so every window fits.

    The extension only matters for ceil_mode, whose last window may hang over the
    padded input; those cells hold ``fill`` too and are never counted as input.
    """
    top, bottom, left, right = spec.padding
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel, spec.stride, spec.dilation
    need_h = (spec.out_height - 1) * sh + dh * (kh - 1) + 1
    need_w = (spec.out_width - 1) * sw + dw * (kw - 1) + 1
    bottom = max(bottom, need_h - spec.height - top)
    right = max(right, need_w - spec.width - left)
    return np.pad(
        x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode="constant", constant_values=fill
    )


def _unpad(xp: np.ndarray, spec: ConvSpec | PoolSpec) -> np.ndarray:
    top, _, left, _ = spec.padding
    return np.ascontiguousarray(xp[:, :, top : top + spec.height, left : left + spec.width])


def _mean_divisor(spec: PoolSpec, i: int, j: int) -> int:
    """PyTorch's avg_pool2d divisor for window (i, j).

    With count_include_pad: the window clipped to the padded input (a ceil_mode overhang
    does not count); without: the number of real input cells in the window.
    """
    pad_h, _, pad_w, _ = spec.padding
    counts = []
    for start, k, size, pad in (
        (i * spec.stride[0] - pad_h, spec.kernel[0], spec.height, pad_h),
        (j * spec.stride[1] - pad_w, spec.kernel[1], spec.width, pad_w),
    ):
        end = min(start + k, size + pad)
        if spec.count_include_pad:
            counts.append(end - start)
        else:
            counts.append(min(end, size) - max(start, 0))
    return counts[0] * counts[1]


def _winner(window: np.ndarray, mode: str) -> np.ndarray:
    """The tap each ``(N, C, k)`` window routes its gradient to, as PyTorch does.

    The first extreme in row-major order; in a window holding NaN, the last NaN (PyTorch's
    kernel replaces its pick with every NaN it meets).
    """
    pick = np.argmax if mode == "max" else np.argmin
    nan = np.isnan(window)
    last_nan = window.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
    return np.where(nan.any(axis=-1), last_nan, pick(window, axis=-1))


class NaiveBackend(BackendBase):
    """Explicit loops straight from the definitions: the reference oracle."""

    name = "naive"
    summary = "explicit loops over output windows, straight from the definitions (reference)"
    ops = frozenset({"conv2d", "conv2d_backward", "pool2d", "pool2d_backward"})
    exact = True  # sums of products only: integer data give exact results

    def estimate_seconds(self, op: str, spec: ConvSpec | PoolSpec) -> float:
        groups = spec.groups if isinstance(spec, ConvSpec) else 1
        windows = spec.out_height * spec.out_width * groups
        return windows * _SECONDS_PER_WINDOW + spec.flops / _FLOPS_PER_SECOND

    # --- convolution ---------------------------------------------------------------------

    def conv2d(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
    ) -> np.ndarray:
        xp = _padded(x, spec, 0.0)
        y = np.zeros(spec.y_shape, dtype=spec.dtype)
        cin = spec.in_channels // spec.groups
        cout = spec.out_channels // spec.groups
        for g in range(spec.groups):
            x_g = xp[:, g * cin : (g + 1) * cin]  # (N, cin, Hp, Wp)
            w_g = w[g * cout : (g + 1) * cout]  # (cout, cin, kh, kw)
            for i in range(spec.out_height):
                for j in range(spec.out_width):
                    rows, cols = _window(spec, i, j)
                    window = x_g[:, :, rows, cols]  # (N, cin, kh, kw)
                    # The Hadamard product of the window with each filter, summed.
                    products = window[:, np.newaxis] * w_g[np.newaxis]
                    y[:, g * cout : (g + 1) * cout, i, j] = products.sum(axis=(2, 3, 4))
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
        xp = _padded(x, spec, 0.0)
        grad_xp = np.zeros_like(xp) if need.x else None
        grad_w = np.zeros(spec.w_shape, dtype=spec.dtype) if need.w else None
        cin = spec.in_channels // spec.groups
        cout = spec.out_channels // spec.groups
        if need.x or need.w:
            for g in range(spec.groups):
                ci, co = slice(g * cin, (g + 1) * cin), slice(g * cout, (g + 1) * cout)
                for i in range(spec.out_height):
                    for j in range(spec.out_width):
                        rows, cols = _window(spec, i, j)
                        # dL/dO at (i, j) for each image and filter: (N, cout, 1, 1, 1)
                        g_out = grad_y[:, co, i, j][:, :, np.newaxis, np.newaxis, np.newaxis]
                        if grad_w is not None:
                            # Output (i, j) saw this window, so each tap's weight collects
                            # dL/dO times the input value under it.
                            window = xp[:, ci, rows, cols][:, np.newaxis]
                            grad_w[co] += (g_out * window).sum(axis=0)
                        if grad_xp is not None:
                            # Each input cell under the window collects dL/dO times the
                            # weight it was multiplied by.
                            grad_xp[:, ci, rows, cols] += (g_out * w[co][np.newaxis]).sum(axis=1)
        grad_x = _unpad(grad_xp, spec) if grad_xp is not None else None
        grad_b = None
        if need.b:
            # Every output of channel c added b[c] once, so b[c] collects each of their dL/dO.
            grad_b = np.zeros(spec.out_channels, dtype=spec.dtype)
            for i in range(spec.out_height):
                for j in range(spec.out_width):
                    grad_b += grad_y[:, :, i, j].sum(axis=0)
        return ConvGrads(grad_x, grad_w, grad_b)

    # --- pooling -------------------------------------------------------------------------

    def pool2d(self, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        xp = _padded(x, spec, spec.pad_value)
        y = np.empty(spec.y_shape, dtype=spec.dtype)
        for i in range(spec.out_height):
            for j in range(spec.out_width):
                rows, cols = _window(spec, i, j)
                window = xp[:, :, rows, cols].reshape(spec.batch, spec.channels, -1)
                if spec.mode == "mean":
                    y[:, :, i, j] = window.sum(axis=2) / _mean_divisor(spec, i, j)
                else:
                    # np.argmax/argmin pick the first extreme, and a NaN if any: the
                    # value PyTorch propagates.
                    pick = np.argmax if spec.mode == "max" else np.argmin
                    first = pick(window, axis=2)[:, :, np.newaxis]
                    y[:, :, i, j] = np.take_along_axis(window, first, axis=2)[:, :, 0]
        return y

    def pool2d_backward(self, grad_y: np.ndarray, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        xp = _padded(x, spec, spec.pad_value)
        grad_xp = np.zeros(xp.shape, dtype=spec.dtype)
        kw = spec.kernel[1]
        n_idx, c_idx = np.indices((spec.batch, spec.channels))
        for i in range(spec.out_height):
            for j in range(spec.out_width):
                rows, cols = _window(spec, i, j)
                if spec.mode == "mean":
                    share = grad_y[:, :, i, j] / _mean_divisor(spec, i, j)
                    grad_xp[:, :, rows, cols] += share[:, :, np.newaxis, np.newaxis]
                    continue
                window = xp[:, :, rows, cols].reshape(spec.batch, spec.channels, -1)
                tap = _winner(window, spec.mode)
                r = rows.start + (tap // kw) * spec.dilation[0]
                c = cols.start + (tap % kw) * spec.dilation[1]
                # Each (n, c) pair appears once per window, so this never collides.
                grad_xp[n_idx, c_idx, r, c] += grad_y[:, :, i, j]
        return _unpad(grad_xp, spec)


backend = NaiveBackend()
