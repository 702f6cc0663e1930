"""The im2col backend's cost model for ``backend="auto"`` and its scratch estimate."""

from __future__ import annotations

import numpy as np

from fastcnn.ops import CONV2D
from fastcnn.spec import ConvSpec, PoolSpec

from . import lowering, pointwise, pool

# seconds = _COST[op] . cost_features(op, spec). Convolution: an intercept, dense GEMM
# FLOPs, depthwise FLOPs, lowered bytes at stride 1 and at other strides, output bytes,
# and filter bytes times the number of chunks (each chunk's GEMM repacks them; for a 1x1
# convolution, which is not lowered, the "lowered" bytes are those it copies). Pooling: an
# intercept and window-tap bytes of max/min and of mean. 5.6e-12 s/FLOP is 179 GFLOP/s of
# GEMM. float64 doubles the FLOP terms (half the SIMD lanes); byte terms already scale
# with the itemsize.
#
# Fitted by benchmarks/fit_cost_models.py (non-negative least squares on relative error)
# to `fastcnn bench --json` float32 timings. Convolution, on 2026-12-07, on a 2-core Zen 4
# (AVX-512, numpy's OpenBLAS 0.3.31): the six runs of the suites resnet18, vgg16 and
# mobilenet in benchmarks/runs/ named 2026-12-07-suites-side-{1,2,3} and
# 2026-12-07-suites-pw-{1,2,3} (worst error 22 % forward, 41 % backward), refitted with
# the numba backend's convolution terms; tested on 2026-12-07-refit-other-suites (the
# quick, lenet, large-kernel and resnet20 layers) and 2026-12-07-suites-bwd-{1,2,3}.
# Pooling, on 2026-11-30, on a 2-core Zen 5: the same runs as the numba backend's
# pooling model (see its cost.py); the mean pooling coefficients (no rows) are an
# earlier fit's. Refit when the code, the features or the machine change, and update
# this note.
_COST = {
    "conv2d": (1.86e-06, 5.6e-12, 6.2e-11, 3.32e-11, 9.35e-11, 5.47e-11, 1.15e-11),
    "conv2d_backward": (0.0, 9.57e-12, 7.38e-10, 1.09e-10, 1.92e-10, 2.26e-10, 3.84e-10),
    "pool2d": (6.74e-05, 1.35e-10, 2.04e-10),
    "pool2d_backward": (2.43e-04, 2.09e-09, 3.8e-10),
}


def estimate_seconds(op: str, spec: ConvSpec | PoolSpec) -> float:
    """Predicted seconds for ``op`` on ``spec``: ``_COST[op]`` dotted with the features."""
    return float(np.dot(_COST[op], cost_features(op, spec)))


def _pointwise_copies(op: str, spec: ConvSpec) -> tuple[float, int]:
    """What the 1x1 path copies, in the cost model's terms: the bytes of its operands
    (the input subsampled, with a bias's row of ones, or side by side with the output)
    and its number of chunks. A stride-1 forward without bias or padding on large maps
    copies nothing, nor one by image (whose every image's GEMM is a chunk)."""
    if op == CONV2D and pointwise.forward_by_images(spec):
        return 0.0, spec.batch
    (r0, r1), (c0, c1), whole = pointwise.box(spec)
    item = np.dtype(spec.dtype).itemsize
    positions = spec.batch * (r1 - r0) * (c1 - c0) * item
    copied = not whole or spec.stride != (1, 1) or (op == CONV2D and spec.bias)  # see
    # pointwise.forward: a bias on large maps takes a copy with a row of ones
    copies, chunks = 0.0, 0
    for _, _, side in pointwise.chunks(spec, op):
        chunks += 1
        if side:
            copies = float(positions * (spec.in_channels + spec.out_channels))
    if not copies and copied:
        copies = float(positions * spec.in_channels)
    return copies, chunks


def cost_features(op: str, spec: ConvSpec | PoolSpec) -> tuple[float, ...]:
    """The cost model's features for ``op`` on ``spec`` (see ``_COST``).

    Parameters
    ----------
    op : str
        A backend op of :data:`fastcnn.ops.BACKEND_OPS`.
    spec : ConvSpec or PoolSpec
        The call's validated spec.

    Returns
    -------
    tuple of float
        As many features as ``_COST[op]`` has coefficients.
    """
    item = np.dtype(spec.dtype).itemsize
    if isinstance(spec, PoolSpec):
        taps = float(spec.flops * item)
        return (1.0, 0.0, taps) if spec.mode == "mean" else (1.0, taps, 0.0)
    if pointwise.applies(spec):
        lowered_bytes, chunks = _pointwise_copies(op, spec)
    else:
        row_bytes = lowering.row_bytes(spec, CONV2D)
        lowered_bytes = float(spec.batch * row_bytes * spec.out_height)
        chunks = sum(1 for _ in lowering.chunks(spec.batch, spec.out_height, row_bytes))
    out_bytes = spec.batch * spec.out_channels * spec.out_height * spec.out_width * item
    flops = spec.flops * item / 4
    is_dense = spec.out_channels // spec.groups > 1
    dense, depthwise = (flops, 0.0) if is_dense else (0.0, flops)
    # A strided gather of windows is slower per byte; BLAS repacks the filters for
    # every chunk's GEMM, which shows on deep layers with small images.
    strided = spec.stride != (1, 1)
    w_bytes = spec.out_channels * (spec.in_channels // spec.groups) * item
    w_bytes *= spec.kernel[0] * spec.kernel[1]
    return (
        1.0,
        dense,
        depthwise,
        0.0 if strided else lowered_bytes,
        lowered_bytes if strided else 0.0,
        float(out_bytes),
        float(w_bytes * chunks),
    )


def workspace_bytes(op: str, spec: ConvSpec | PoolSpec) -> int:
    """Scratch of one chunk: the lowered matrices (the 1x1 path's copies), at most the
    chunk budget unless a single row (image) needs more."""
    budget = lowering.chunk_budget()
    if isinstance(spec, ConvSpec) and pointwise.applies(spec):
        per_image = pointwise.image_bytes(spec)
        return min(per_image * spec.batch, max(budget, per_image))
    row = lowering.row_bytes(spec, op) if isinstance(spec, ConvSpec) else pool.row_bytes(spec)
    return min(row * spec.out_height * spec.batch, max(budget, row))
