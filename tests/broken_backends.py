"""Deliberately broken backends, each a thin wrapper over naive with one realistic defect.

They are registered through ``fastcnn.register_backend``, the plugin mechanism a third
party uses, to show that the audit catches each kind of bug.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import fastcnn
from fastcnn.registry import BackendBase, ConvGrads, ErrorModel, get_backend


class _Wrapper(BackendBase):
    ops = frozenset({"conv2d", "conv2d_backward", "pool2d", "pool2d_backward"})
    summary = "a deliberately broken backend, for tests"

    @property
    def ref(self):
        return get_backend("naive")

    def conv2d(self, x, w, b, spec):
        return self.ref.conv2d(x, w, b, spec)

    def conv2d_backward(self, grad_y, x, w, spec, need):
        return self.ref.conv2d_backward(grad_y, x, w, spec, need)

    def pool2d(self, x, spec):
        return self.ref.pool2d(x, spec)

    def pool2d_backward(self, grad_y, x, spec):
        return self.ref.pool2d_backward(grad_y, x, spec)


class PaddedBorderOffByOne(_Wrapper):
    """Reads the top padded border one row too low: the first output row repeats the second."""

    name = "broken_border"

    def conv2d(self, x, w, b, spec):
        y = super().conv2d(x, w, b, spec)
        if spec.padding[0] > 0 and spec.out_height > 1:
            y[:, :, 0] = y[:, :, 1]
        return y


class MissingTapGradient(_Wrapper):
    """dX forgets the contribution of the kernel's top-left tap."""

    name = "broken_tap"

    def conv2d_backward(self, grad_y, x, w, spec, need):
        grads = super().conv2d_backward(grad_y, x, w, spec, need)
        if not need.x:
            return grads
        w_missing = w.copy()
        w_missing[:, :, 0, 0] = 0
        wrong = super().conv2d_backward(grad_y, x, w_missing, spec, need)
        return ConvGrads(wrong.x, grads.w, grads.b)


class TransposedKernel(_Wrapper):
    """Uses the kernel transposed (kw x kh) in the forward pass."""

    name = "broken_transpose"

    def conv2d(self, x, w, b, spec):
        if spec.kernel[0] != spec.kernel[1]:
            return super().conv2d(x, w, b, spec)
        return super().conv2d(x, np.ascontiguousarray(w.transpose(0, 1, 3, 2)), b, spec)


class WrongDtype(_Wrapper):
    """Returns float64 whatever the compute dtype."""

    name = "broken_dtype"

    def pool2d(self, x, spec):
        return super().pool2d(x, spec).astype(np.float64)


class NonDeterministic(_Wrapper):
    """Adds noise far below the tolerance: only the determinism check can see it."""

    name = "broken_random"

    def conv2d(self, x, w, b, spec):
        y = super().conv2d(x, w, b, spec)
        return y + np.random.default_rng().standard_normal(y.shape).astype(y.dtype) * 1e-9


class ModifiesInput(_Wrapper):
    """Normalises its input in place, defeating the read-only flag (as buggy code can)."""

    name = "broken_inplace"

    def pool2d(self, x, spec):
        y = super().pool2d(x, spec)
        x.flags.writeable = True  # allowed when the caller's array is writable
        x[...] = 0
        return y


class Raises(_Wrapper):
    """Crashes on the backward pass."""

    name = "broken_raises"

    def conv2d_backward(self, grad_y, x, w, spec, need):
        raise RuntimeError("segfault avoided, but the kernel failed")


def truncated(a):
    """float32 values cut (not rounded) to 16 significant bits; other dtypes unchanged."""
    if a is None or a.dtype != np.float32:
        return a
    # 1 sign + 8 exponent + 15 of the 23 fraction bits: 16 significant bits.
    return (a.view(np.uint32) & np.uint32(0xFFFFFF00)).view(np.float32)


class TruncatesInputs(_Wrapper):
    """Truncates float32 inputs to 16 significant bits (a cheap "fast" conversion), then
    computes like naive: errors of about 2**-16, below the former tolerance of 5e-5.

    ``model`` is the error model it declares: it must be caught whatever it claims.
    """

    name = "broken_truncate"

    def __init__(self, model: ErrorModel | None = None) -> None:
        self.error_model = model or ErrorModel()

    def conv2d(self, x, w, b, spec):
        return super().conv2d(truncated(x), truncated(w), truncated(b), spec)

    def conv2d_backward(self, grad_y, x, w, spec, need):
        return super().conv2d_backward(truncated(grad_y), truncated(x), truncated(w), spec, need)

    def pool2d(self, x, spec):
        return super().pool2d(truncated(x), spec)

    def pool2d_backward(self, grad_y, x, spec):
        return super().pool2d_backward(truncated(grad_y), truncated(x), spec)


class ThreadDependentSums(_Wrapper):
    """Splits the channel sum into one partial sum per thread, added at the end: results
    within rounding of the reference, but other bits with another thread count."""

    name = "broken_threads"

    def conv2d(self, x, w, b, spec):
        parts = np.array_split(np.arange(spec.in_channels), fastcnn.get_num_threads())
        y = np.zeros(spec.y_shape, dtype=spec.dtype)
        for channels in (c for c in parts if c.size and spec.groups == 1):
            sub = dataclasses.replace(spec, in_channels=channels.size)
            y += self.ref.conv2d(x[:, channels], w[:, channels], None, sub)
        if spec.groups != 1:
            return super().conv2d(x, w, b, spec)
        return y if b is None else y + b[:, None, None]


class LastTieMaxPool(_Wrapper):
    """Max/min pooling backward sends a tied window's gradient to its last extreme, not
    its first: invisible on tie-free random data, wrong on integer data."""

    name = "broken_ties"

    def pool2d_backward(self, grad_y, x, spec):
        # The first extreme of the mirrored input is the last extreme of the original,
        # when the windows are symmetric about the mirrored axes (undilated, unpadded,
        # windows tiling the input exactly) - otherwise fall back to the reference.
        if spec.mode == "mean" or spec.padding != (0, 0, 0, 0) or spec.kernel != spec.stride:
            return super().pool2d_backward(grad_y, x, spec)
        if spec.height % spec.kernel[0] or spec.width % spec.kernel[1]:
            return super().pool2d_backward(grad_y, x, spec)
        mirrored = super().pool2d_backward(
            np.ascontiguousarray(grad_y[:, :, ::-1, ::-1]),
            np.ascontiguousarray(x[:, :, ::-1, ::-1]),
            spec,
        )
        return np.ascontiguousarray(mirrored[:, :, ::-1, ::-1])


#: Each broken backend, the op and check its defect must be reported under.
BROKEN = [
    (PaddedBorderOffByOne, "conv2d", "reference"),
    (MissingTapGradient, "conv2d_backward", "reference"),
    (TransposedKernel, "conv2d", "reference"),
    (WrongDtype, "max_pool2d", "reference"),
    (NonDeterministic, "conv2d", "deterministic"),
    (ModifiesInput, "max_pool2d", "inputs"),
    (Raises, "conv2d_backward", "reference"),
    (TruncatesInputs, "conv2d", "reference"),
    (ThreadDependentSums, "conv2d", "threads"),
    (LastTieMaxPool, "max_pool2d_backward", "exact"),
]


class WinogradF23(_Wrapper):
    """A correct Winograd F(2x2, 3x3) forward in plain NumPy (3x3, stride 1, undilated,
    ungrouped; anything else by the reference), to test the Winograd bound with."""

    name = "test_winograd"
    keeps_nonfinite_local = False  # the transforms spread a NaN over its tile
    error_model = ErrorModel("winograd", tile=2)
    AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
    G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)

    def conv2d(self, x, w, b, spec):
        plain = spec.kernel == (3, 3) and spec.stride == spec.dilation == (1, 1)
        if not plain or spec.groups != 1:
            return super().conv2d(x, w, b, spec)
        dt = x.dtype
        at, g, bt = (m.astype(dt) for m in (self.AT, self.G, self.BT))
        top, _, left, _ = spec.padding
        th, tw = -(-spec.out_height // 2), -(-spec.out_width // 2)
        xp = np.zeros((*x.shape[:2], 2 * th + 2, 2 * tw + 2), dtype=dt)
        xp[:, :, top : top + spec.height, left : left + spec.width] = x
        view = np.lib.stride_tricks.sliding_window_view(xp, (4, 4), axis=(2, 3))
        d = view[:, :, ::2, ::2]  # (N, C, th, tw, 4, 4) input tiles
        v = np.einsum("ab,nctwbd,ed->nctwae", bt, d, bt)
        u = np.einsum("ab,ocbd,ed->ocae", g, w, g)
        m = np.einsum("nctwae,ocae->notwae", v, u)
        y = np.einsum("ab,notwbd,ed->notwae", at, m, at)
        y = y.transpose(0, 1, 2, 4, 3, 5).reshape(x.shape[0], -1, 2 * th, 2 * tw)
        y = np.ascontiguousarray(y[:, :, : spec.out_height, : spec.out_width])
        return y if b is None else y + b[:, None, None]
