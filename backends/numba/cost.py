"""The Numba backend's cost model for ``backend="auto"``: features and fitted coefficients."""

from __future__ import annotations

import numpy as np

from fastcnn.ops import CONV2D
from fastcnn.spec import ConvSpec, PoolSpec

# The features count the work of the kernels as they split it: tiles of TILE_CELLS cells,
# blocks of OUT_BLOCK output channels, and which path (wide grid or scatter) dX takes.
# Change those in conv.py and these features change with them; refit the coefficients.
from .conv import OUT_BLOCK, TILE_CELLS, dx_on_grid, grid_shape
from .pool import MEAN, POOL_MODE, plain_2x2

# seconds = _COST[op] . cost_features(op, spec). Convolution: an intercept, the wide-grid
# features of _grid_features, and bytes of the input, its phase copy and the output; the
# backward has dX's grid features (stride 1) or scatter FLOPs (other strides) and dW's
# FLOPs at stride 1 or not. Pooling: an intercept, window-tap bytes and output rows of the
# general kernel, input bytes of the 2x2 one for max/min and for mean. FLOP and byte
# features scale with the itemsize (float64 has half the SIMD lanes).
#
# Fitted on 2026-11-25 by benchmarks/fit_cost_models.py (non-negative least squares on
# relative error) to `fastcnn bench --json` timings from a 2-core AVX2 machine: two runs
# of the suites resnet18, vgg16, mobilenet and large-kernel and one of lenet and quick,
# timed by interleaved medians, each row's least time over the runs. Refit when the
# kernels, the features or the machine change, and update this note.
_COST = {
    "conv2d": (5.03e-05, 5.37e-12, 1.24e-11, 0.0, 3.14e-09, 9.75e-09, 3.77e-11),
    "conv2d_backward": (
        1.01e-4,
        1.19e-11,
        1.56e-11,
        2.71e-11,
        2.28e-08,
        1.72e-08,
        3.26e-10,
        3.42e-12,
        0.0,
        4.2e-11,
    ),
    "pool2d": (3.78e-05, 3.39e-11, 1.12e-08, 1.83e-11, 9.34e-12),
    "pool2d_backward": (2.66e-05, 8.03e-11, 6.61e-08, 3.19e-10, 4.53e-11),
}


def _grid_features(
    n_img: int,
    out_h: int,
    out_w: int,
    out_per_group: int,
    in_per_group: int,
    spec: ConvSpec,
    stride: tuple[int, int],
    item: int,
) -> tuple[float, float, float, float, float]:
    """Cost features of one ``conv._conv_forward_grid`` run (forward, or dX as a forward).

    FLOPs computed on the wide grid (discarded cells included) by the fused 3-wide path,
    the blocked path and the one-channel (depthwise) path, then the number of inner-loop
    passes and of rows ``conv._phase_grid`` copies, whose fixed costs dominate on small
    planes.
    """
    kh, kw = spec.kernel
    wp, prows = grid_shape(out_h, out_w, spec.kernel, stride, spec.dilation)
    grid_h = n_img * prows
    rows = max(1, min(grid_h, TILE_CELLS // wp))
    tiles = -(-grid_h // rows)
    blocks = -(-out_per_group // OUT_BLOCK)
    work = 2.0 * kh * kw * grid_h * wp * spec.groups * out_per_group * in_per_group * item / 4
    fused = kw == 3 and out_per_group >= OUT_BLOCK
    per_pass = 1 if fused else min(out_per_group, OUT_BLOCK) * kw
    passes = float(spec.groups * tiles * blocks * in_per_group * kh * per_pass)
    copied_rows = float(grid_h * spec.groups * in_per_group * stride[0] * stride[1])
    if out_per_group == 1:
        return 0.0, 0.0, work, passes, copied_rows
    if fused:
        return work, 0.0, 0.0, passes, copied_rows
    return 0.0, work, 0.0, passes, copied_rows


def _pool_features(spec: PoolSpec, item: int) -> tuple[float, ...]:
    """Pooling's features: the fused 2x2 kernel's bytes by mode, or the general kernel's."""
    x_bytes = spec.batch * spec.channels * spec.height * spec.width * item
    extreme = POOL_MODE[spec.mode] != MEAN
    if plain_2x2(spec):
        return (1.0, 0.0, 0.0, float(x_bytes * extreme), float(x_bytes * (not extreme)))
    rows = spec.batch * spec.channels * spec.out_height
    return (1.0, float(spec.flops * item), float(rows), 0.0, 0.0)


def cost_features(op: str, spec: ConvSpec | PoolSpec) -> tuple[float, ...]:
    """The cost model's features for ``op`` on ``spec`` (see ``_COST``)."""
    item = np.dtype(spec.dtype).itemsize
    if isinstance(spec, PoolSpec):
        return _pool_features(spec, item)
    cin_g = spec.in_channels // spec.groups
    out_g = spec.out_channels // spec.groups
    x_bytes = spec.batch * spec.in_channels * spec.height * spec.width * item
    y_bytes = spec.batch * spec.out_channels * spec.out_height * spec.out_width * item
    if op == CONV2D:
        grid = _grid_features(
            spec.batch, spec.out_height, spec.out_width, out_g, cin_g, spec, spec.stride, item
        )
        return (1.0, *grid, float(2 * x_bytes + y_bytes))
    flops = spec.flops * item / 4
    if dx_on_grid(spec):
        dx_grid = _grid_features(
            spec.batch, spec.height, spec.width, cin_g, out_g, spec, (1, 1), item
        )
        dx_scatter = 0.0
    else:
        dx_grid, dx_scatter = (0.0, 0.0, 0.0, 0.0, 0.0), flops
    unit = spec.stride == (1, 1)
    dw_unit, dw_strided = (flops, 0.0) if unit else (0.0, flops)
    return (
        1.0,
        *dx_grid,
        dx_scatter,
        dw_unit,
        dw_strided,
        float(3 * x_bytes + 2 * y_bytes),
    )


def estimate_seconds(op: str, spec: ConvSpec | PoolSpec) -> float:
    """Predicted seconds for ``op`` on ``spec``: the fitted coefficients . the features."""
    return float(np.dot(_COST[op], cost_features(op, spec)))
