"""The reference beyond the sweep (test_sweep.py): full Jacobians, NaN locality."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    POOL_FUNCS,
    case_id,
    conv_inputs,
)

import fastcnn
from fastcnn.gradcheck import jacobian_error, tie_free
from fastcnn.tolerances import FD_TOLERANCE

TINY_CONV = [
    dict(n=1, cin=2, h=4, w=4, cout=2, k=(2, 2)),
    dict(n=2, cin=2, h=5, w=4, cout=2, k=(3, 2), stride=2, padding=(1, 0, 2, 1), dilation=(1, 2)),
    dict(n=1, cin=4, h=4, w=4, cout=2, k=(2, 2), groups=2, padding=1),
]


@pytest.mark.parametrize("case", TINY_CONV, ids=case_id)
def test_conv_full_jacobian(case):
    x, w, b, params = conv_inputs(case)

    def forward(arrays):
        return fastcnn.conv2d(*arrays, backend="naive", **params)

    def backward(grad_y):
        return fastcnn.conv2d_backward(grad_y, x, w, backend="naive", **params)

    assert jacobian_error(forward, [x, w, b], backward) <= FD_TOLERANCE


@pytest.mark.parametrize("mode", ["max", "min", "mean"])
@pytest.mark.parametrize(
    "params",
    [
        dict(kernel_size=2, stride=1, padding=1),
        dict(kernel_size=3, stride=2, ceil_mode=True),
        dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
    ],
)
def test_pool_full_jacobian(mode, params):
    x = tie_free(np.random.default_rng(0), (1, 2, 5, 5))
    forward_fn, backward_fn = POOL_FUNCS[mode]

    def forward(arrays):
        return forward_fn(arrays[0], backend="naive", **params)

    def backward(grad_y):
        return [backward_fn(grad_y, x, backend="naive", **params)]

    assert jacobian_error(forward, [x], backward) <= FD_TOLERANCE


def test_nan_stays_inside_the_windows_that_hold_it():
    x = np.zeros((1, 1, 7, 7))
    x[0, 0, 3, 3] = np.nan
    y = fastcnn.conv2d(x, np.ones((1, 1, 3, 3)), backend="naive")
    assert np.isnan(y[0, 0, 1:4, 1:4]).all()
    nan_mask = np.isnan(y[0, 0])
    assert nan_mask.sum() == 9
    for pool in (fastcnn.max_pool2d, fastcnn.min_pool2d, fastcnn.mean_pool2d):
        p = pool(x, 2, backend="naive")
        assert np.isnan(p[0, 0, 1, 1]) and np.isnan(p).sum() == 1
