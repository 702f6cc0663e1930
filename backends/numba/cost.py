"""The Numba backend's cost model for ``backend="auto"``: features and fitted coefficients."""

from __future__ import annotations

import numpy as np

from fastcnn.ops import CONV2D, POOL2D
from fastcnn.spec import ConvSpec, PoolSpec

# The features count the work of the kernels as they split it: tiles of TILE_CELLS cells,
# blocks of OUT_BLOCK output channels, TAPS_PER_PASS taps per pass, dX's stride phases,
# dW's passes. Change those in conv.py or conv_grad.py and these features change with
# them; refit.
from .conv import OUT_BLOCK, TAPS_PER_PASS, TILE_CELLS, grid_shape
from .conv_grad import DW_BLOCK, DW_TAPS, _phase_rows, _phase_taps
from .depthwise import applies as depthwise_applies
from .pool import MEAN, POOL_MODE, plain_2x2
from .pool_s2 import applies as three_by_two

# seconds = _COST[op] . cost_features(op, spec). Convolution: an intercept, the wide-grid
# features of _grid_features (fused and one-tap FLOPs, passes, copied rows), and bytes of
# the input, its phase copy and the output; the backward has dX's grid features summed
# over its stride phases, then dW's FLOPs on the phase grid and its passes. Depthwise 3x3
# layers (their own kernels) have only the last three: bytes moved at stride 1 and 2, and
# planes. Pooling: an intercept, window-tap bytes and output rows of the general kernel,
# input bytes of the 2x2 kernel for max/min and for mean, of the 3x3 stride-2 forward.
# FLOP and byte features scale with the itemsize (float64 has half the SIMD lanes).
#
# Fitted by benchmarks/fit_cost_models.py (non-negative least squares on relative error)
# to `fastcnn bench --json` float32 timings. Convolution, on 2026-12-07, on a 2-core Zen 4
# (AVX-512, numpy's OpenBLAS 0.3.31), with the im2col backend's convolution terms: the
# runs named in its cost.py (worst error 16 % forward, 24 % backward). Pooling, on
# 2026-11-30, on a 2-core Zen 5 (numpy's OpenBLAS on its own kernels): the runs in
# benchmarks/runs/ named 2026-11-30-suites-evening (the suites resnet18, vgg16 and
# mobilenet) and 2026-11-30-quick-lenet-large (quick, lenet, large-kernel), every
# backend, max pooling; the 2x2 mean pooling coefficients (no rows) are an earlier
# fit's. The convolution kernels then took four taps a pass (three before) and dW eight
# output channels (two), and the pass features followed; the coefficients were kept:
# on the three suites runs of those kernels (2026-12-07-suites-kernels-{1,2,3}) they
# predict numba's time within 0.64-1.34x and pick no backend over 1.15x the fastest,
# where a refit on any two of the runs picked one or two such on the third. Refit when
# the kernels, the features or the machine change, and update this note.
_COST = {
    "conv2d": (1.09e-04, 5.29e-12, 0.0, 9.11e-09, 7.57e-09, 3.85e-11, 1.19e-11, 1.85e-11, 0.0),
    "conv2d_backward": (
        0.0,
        1.08e-11,
        1.36e-11,
        0.0,
        5.44e-08,
        0.0,
        2.22e-08,
        1.14e-10,
        3.19e-11,
        4.59e-11,
        5.57e-08,
    ),
    "pool2d": (3.02e-05, 0.0, 0.0, 8.77e-12, 9.34e-12, 2.42e-11),
    "pool2d_backward": (0.0, 1.79e-10, 0.0, 2.59e-10, 4.53e-11, 0.0),
}


def _grid_features(
    n_img: int,
    out_hw: tuple[int, int],
    out_per_group: int,
    in_per_group: int,
    groups: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    item: int,
) -> tuple[float, float, float, float]:
    """Cost features of one ``conv._conv_forward_grid`` run (forward, or a phase of dX).

    FLOPs computed on the wide grid (discarded cells included) by the fused path (four
    taps, four output channels per pass) and by the one-tap path, then the number of
    inner-loop passes and of rows ``conv._phase_grid`` copies, whose fixed costs dominate
    on small planes.
    """
    kh, kw = kernel
    wp, prows = grid_shape(*out_hw, kernel, stride, dilation)
    grid_h = n_img * prows
    rows = max(1, min(grid_h, TILE_CELLS // wp))
    tiles = -(-grid_h // rows)
    blocks = -(-out_per_group // OUT_BLOCK)
    work = 2.0 * kh * kw * grid_h * wp * groups * out_per_group * in_per_group * item / 4
    taps = in_per_group * kh * kw
    fused = out_per_group >= OUT_BLOCK
    per_block = (
        taps // TAPS_PER_PASS + taps % TAPS_PER_PASS * OUT_BLOCK if fused else taps * out_per_group
    )
    passes = float(groups * tiles * blocks * per_block)
    copied_rows = float(grid_h * groups * in_per_group * stride[0] * stride[1])
    if fused:
        return work, 0.0, passes, copied_rows
    return 0.0, work, passes, copied_rows


def _dx_features(spec: ConvSpec, item: int) -> tuple[float, ...]:
    """The sum of :func:`_grid_features` over dX's stride phases (``conv_grad``)."""
    total = np.zeros(4)
    (sh, sw), (dh, dw), (kh, kw) = spec.stride, spec.dilation, spec.kernel
    cin_g, out_g = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    for a in range(sh):
        ki = _phase_taps(kh, sh, dh, a)[2]
        rows = _phase_rows(spec.height, spec.padding[0], sh, a)[2]
        for b in range(sw):
            kj = _phase_taps(kw, sw, dw, b)[2]
            cols = _phase_rows(spec.width, spec.padding[2], sw, b)[2]
            if ki and kj and rows and cols:
                dil = (dh // np.gcd(sh, dh), dw // np.gcd(sw, dw))
                total += _grid_features(
                    spec.batch, (rows, cols), cin_g, out_g, spec.groups, (ki, kj), (1, 1), dil, item
                )
    return tuple(float(v) for v in total)


def _dw_features(spec: ConvSpec, item: int) -> tuple[float, float]:
    """dW's FLOPs on the stacked phase grid and its number of passes."""
    wp, prows = grid_shape(spec.out_height, spec.out_width, spec.kernel, spec.stride, spec.dilation)
    cin_g, out_g = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    taps = spec.kernel[0] * spec.kernel[1]
    cells = spec.batch * prows * wp
    work = 2.0 * taps * cells * spec.out_channels * cin_g * item / 4
    passes = float(spec.groups * -(-out_g // DW_BLOCK) * cin_g * -(-taps // DW_TAPS))
    return work, passes


def _pool_features(op: str, spec: PoolSpec, item: int) -> tuple[float, ...]:
    """Pooling's features: the fused 2x2 kernel's bytes by mode, the 3x3 stride-2 forward's
    bytes, or the general kernel's."""
    x_bytes = float(spec.batch * spec.channels * spec.height * spec.width * item)
    extreme = POOL_MODE[spec.mode] != MEAN
    if plain_2x2(spec):
        return (1.0, 0.0, 0.0, x_bytes * extreme, x_bytes * (not extreme), 0.0)
    if op == POOL2D and three_by_two(spec):
        return (1.0, 0.0, 0.0, 0.0, 0.0, x_bytes)
    rows = spec.batch * spec.channels * spec.out_height
    return (1.0, float(spec.flops * item), float(rows), 0.0, 0.0, 0.0)


def cost_features(op: str, spec: ConvSpec | PoolSpec) -> tuple[float, ...]:
    """The cost model's features for ``op`` on ``spec`` (see ``_COST``)."""
    item = np.dtype(spec.dtype).itemsize
    if isinstance(spec, PoolSpec):
        return _pool_features(op, spec, item)
    cin_g = spec.in_channels // spec.groups
    out_g = spec.out_channels // spec.groups
    x_bytes = spec.batch * spec.in_channels * spec.height * spec.width * item
    y_bytes = spec.batch * spec.out_channels * spec.out_height * spec.out_width * item
    if depthwise_applies(spec):
        # Memory-bound kernels: bytes moved and work items, by stride.
        moved = float(x_bytes + y_bytes) * (1 if op == CONV2D else 2)
        items = float(spec.batch * spec.in_channels)
        s1 = spec.stride == (1, 1)
        dw = (moved * s1, moved * (not s1), items)
        if op == CONV2D:
            return (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, *dw)
        return (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, *dw)
    if op == CONV2D:
        grid = _grid_features(
            spec.batch,
            (spec.out_height, spec.out_width),
            out_g,
            cin_g,
            spec.groups,
            spec.kernel,
            spec.stride,
            spec.dilation,
            item,
        )
        return (1.0, *grid, float(2 * x_bytes + y_bytes), 0.0, 0.0, 0.0)
    return (
        1.0,
        *_dx_features(spec, item),
        *_dw_features(spec, item),
        float(3 * x_bytes + 2 * y_bytes),
        0.0,
        0.0,
        0.0,
    )


def estimate_seconds(op: str, spec: ConvSpec | PoolSpec) -> float:
    """Predicted seconds for ``op`` on ``spec``: the fitted coefficients . the features."""
    return float(np.dot(_COST[op], cost_features(op, spec)))
