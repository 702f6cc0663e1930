"""The ``numba`` backend: direct loops JIT-compiled by Numba, run in parallel.

The kernels and their host-side set-up live in :mod:`.conv` (convolution),
:mod:`.conv_grad` (its gradients), :mod:`.depthwise`, :mod:`.depthwise_grad` and
:mod:`.depthwise_grad_s2` (depthwise 3x3), :mod:`.pool` and :mod:`.pool_s2` (pooling), the
cost model behind ``backend="auto"`` in :mod:`.cost`. Every output cell is written by
exactly one task in a fixed order, so results are deterministic.

Threading: Numba picks its layer as usual (TBB if installed, else OpenMP, else workqueue;
``NUMBA_THREADING_LAYER`` overrides). Launches go through :mod:`fastcnn.jit`, which owns
the layers' hazards (one launch at a time, serial twins in a forked child, OpenMP's spin).
Kernels are compiled on first use and cached on disk.
"""

from __future__ import annotations

import numpy as np

from fastcnn.ops import BACKEND_OPS
from fastcnn.registry import BackendBase, ConvGrads, GradNeed, bias_gradient
from fastcnn.spec import ConvSpec, PoolSpec

from . import conv, conv_grad, cost, pool, pool_s2


class NumbaBackend(BackendBase):
    """Direct loops compiled by Numba, parallel over images and channels."""

    name = "numba"
    summary = "direct loops JIT-compiled by Numba, parallel over images and channels"
    ops = frozenset(BACKEND_OPS)
    exact = True  # sums of products only: integer data give exact results

    def estimate_seconds(self, op: str, spec: ConvSpec | PoolSpec) -> float:
        """Predicted seconds for ``op`` on ``spec`` (the fitted model in :mod:`.cost`)."""
        return cost.estimate_seconds(op, spec)

    def cost_features(self, op: str, spec: ConvSpec | PoolSpec) -> tuple[float, ...]:
        """The cost model's features for ``op`` on ``spec`` (see :mod:`.cost`)."""
        return cost.cost_features(op, spec)

    def conv2d(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
    ) -> np.ndarray:
        return conv.conv2d(x, w, b, spec)

    def conv2d_backward(
        self,
        grad_y: np.ndarray,
        x: np.ndarray,
        w: np.ndarray,
        spec: ConvSpec,
        need: GradNeed,
    ) -> ConvGrads:
        grad_x = conv_grad.grad_input(grad_y, w, spec) if need.x else None
        grad_w = conv_grad.grad_weight(grad_y, x, spec) if need.w else None
        grad_b = bias_gradient(grad_y, spec) if need.b else None
        return ConvGrads(grad_x, grad_w, grad_b)

    def pool2d(self, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        if pool_s2.applies(spec):
            return pool_s2.forward(x, spec)
        return pool.pool2d(x, spec)

    def pool2d_backward(self, grad_y: np.ndarray, x: np.ndarray, spec: PoolSpec) -> np.ndarray:
        if pool_s2.applies(spec):
            return pool_s2.backward(grad_y, x, spec)
        return pool.pool2d_backward(grad_y, x, spec)


backend = NumbaBackend()
