"""The ``im2col`` backend: windows lowered to a matrix, one BLAS GEMM per group.

Convolutions are lowered through the stride phases of the padded input and multiplied
chunk by chunk, their gradients scattered back by col2im (:mod:`.lowering`); a 1x1
convolution needs no lowering and is a GEMM on the input as it lies (:mod:`.pointwise`).
Pooling reduces over a window view of the padded input (:mod:`.pool`). The cost model
behind ``backend="auto"`` and the scratch estimate are in :mod:`.cost`. Scratch stays
under ``fastcnn.config.get_workspace_limit()``.
"""

from __future__ import annotations

import numpy as np

from fastcnn.ops import BACKEND_OPS
from fastcnn.registry import BackendBase, ConvGrads, GradNeed, bias_gradient
from fastcnn.spec import ConvSpec, PoolSpec

from . import cost, lowering, pointwise, pool


class Im2colBackend(BackendBase):
    """Window lowering plus one BLAS GEMM per group and chunk."""

    name = "im2col"
    summary = "lower windows to a matrix (im2col), one GEMM per group via numpy.matmul / BLAS"
    ops = frozenset(BACKEND_OPS)
    exact = True  # sums of products only: integer data give exact results
    # OpenBLAS blocks a GEMM per thread count, so its rounding changes with it (float32
    # (1024 x 144) @ (144 x 32) differs between 1, 2 and 3 threads); pinning BLAS to one
    # thread would cost the GEMM's parallel speed.
    thread_invariant = False

    def workspace_bytes(self, op: str, spec: ConvSpec | PoolSpec) -> int:
        """The lowered matrices of one chunk (capped by the workspace limit when chunking)."""
        return cost.workspace_bytes(op, spec)

    def estimate_seconds(self, op: str, spec: ConvSpec | PoolSpec) -> float:
        """Predicted seconds for ``op`` on ``spec`` (the fitted model in :mod:`.cost`)."""
        return cost.estimate_seconds(op, spec)

    def cost_features(self, op: str, spec: ConvSpec | PoolSpec) -> tuple[float, ...]:
        """The cost model's features for ``op`` on ``spec`` (see :mod:`.cost`)."""
        return cost.cost_features(op, spec)

    def conv2d(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
    ) -> np.ndarray:
        path = pointwise if pointwise.applies(spec) else lowering
        return path.forward(x, w, b, spec)

    def conv2d_backward(
        self,
        grad_y: np.ndarray,
        x: np.ndarray,
        w: np.ndarray,
        spec: ConvSpec,
        need: GradNeed,
    ) -> ConvGrads:
        grad_x, grad_w = None, None
        if need.x or need.w:
            path = pointwise if pointwise.applies(spec) else lowering
            grad_x, grad_w = path.backward(grad_y, x, w, spec, need)
        grad_b = bias_gradient(grad_y, spec) if need.b else None
        return ConvGrads(grad_x, grad_w.reshape(spec.w_shape) if need.w else None, grad_b)

    def pool2d(self, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        return pool.pool2d(x, spec)

    def pool2d_backward(self, grad_y: np.ndarray, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        return pool.pool2d_backward(grad_y, x, spec)


backend = Im2colBackend()
