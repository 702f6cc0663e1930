"""Deliberately broken backends, each a thin wrapper over naive with one realistic defect.

They are registered through ``fastcnn.register_backend``, the plugin mechanism a third
party uses, to show that the audit catches each kind of bug.
"""

from __future__ import annotations

import numpy as np

from fastcnn.registry import BackendBase, ConvGrads, get_backend


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


#: Each broken backend, the op and check its defect must be reported under.
BROKEN = [
    (PaddedBorderOffByOne, "conv2d", "reference"),
    (MissingTapGradient, "conv2d_backward", "reference"),
    (TransposedKernel, "conv2d", "reference"),
    (WrongDtype, "max_pool2d", "reference"),
    (NonDeterministic, "conv2d", "deterministic"),
    (ModifiesInput, "max_pool2d", "inputs"),
    (Raises, "conv2d_backward", "reference"),
]
