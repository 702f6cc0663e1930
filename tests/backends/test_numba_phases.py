"""The Numba backend's phase-layout gradients and its 3x3 stride-2 pooling kernel."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from helpers import case_id, check_conv, check_pool

import fastcnn
from fastcnn.registry import get_backend

#: General (not depthwise) convolutions whose dX runs by stride phase and whose dW runs on
#: the stacked phase grid: strides 1-3, asymmetric padding, uneven sizes, batch 1,
#: dilation, groups, fewer output channels than a block, a last block part full (dW's
#: blocks of 8, the forward's of 4 with a tap count not a multiple of its 4 per pass),
#: phases no tap reaches.
PHASE_CASES = [
    dict(n=2, cin=4, h=9, w=11, cout=6, k=(3, 3), stride=2, padding=1),
    dict(n=1, cin=3, h=20, w=17, cout=5, k=(7, 7), stride=2, padding=3),
    dict(n=2, cin=4, h=9, w=8, cout=6, k=(3, 2), stride=(2, 3), padding=(1, 0, 2, 1), groups=2),
    dict(n=1, cin=2, h=12, w=11, cout=4, k=(3, 3), stride=3, padding=(0, 2, 1, 0), dilation=3),
    dict(n=2, cin=4, h=10, w=9, cout=2, k=(3, 3), stride=2, padding=(2, 0, 0, 1), dilation=(2, 1)),
    dict(n=1, cin=3, h=8, w=7, cout=3, k=(1, 1), stride=2),
    dict(n=1, cin=2, h=9, w=10, cout=7, k=(2, 2), stride=3, padding=(0, 1, 1, 0)),
    dict(n=1, cin=2, h=6, w=7, cout=3, k=(2, 3), padding=(3, 1, 0, 4)),
    dict(n=3, cin=6, h=7, w=6, cout=9, k=(3, 3), groups=3, padding=(0, 1, 1, 0), bias=False),
    dict(n=1, cin=5, h=3, w=4, cout=4, k=(3, 3), stride=2, padding=1),
    dict(n=2, cin=5, h=10, w=9, cout=19, k=(3, 3), stride=2, padding=1),
    # dX's phases over several tiles of the forward kernel (groups too), 3x2 at stride 1.
    dict(n=1, cin=4, h=70, w=66, cout=6, k=(3, 3), stride=2, padding=1, groups=2),
    dict(n=1, cin=2, h=40, w=36, cout=3, k=(3, 2), padding=(1, 1, 0, 1)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", PHASE_CASES, ids=case_id)
def test_phase_gradients_match_the_reference(case, dtype):
    check_conv("numba", case, dtype)


def test_strided_dx_runs_one_stride_1_forward_per_phase(monkeypatch):
    module = importlib.import_module(f"{type(get_backend('numba')).__module__}.conv_grad")
    calls = []
    real = module._grid_forward
    monkeypatch.setattr(module, "_grid_forward", lambda *a: (calls.append(a[4]), real(*a)))
    check_conv("numba", PHASE_CASES[0], "float64")
    assert calls == [(1, 1)] * 4


@pytest.mark.parametrize(
    ("case", "in_place"),
    [
        # One tile per phase, dY in chunks of channels (and groups): read in place.
        (dict(n=2, cin=4, h=9, w=8, cout=12, k=(3, 3), stride=2, padding=1, groups=2), True),
        # Several tiles per phase: packed.
        (PHASE_CASES[-2], False),
    ],
    ids=["one-tile-chunked", "many-tiles"],
)
def test_dx_reads_one_tile_phases_weights_in_place(monkeypatch, case, in_place):
    module = importlib.import_module(f"{type(get_backend('numba')).__module__}.conv")
    monkeypatch.setattr(module, "LAYOUT_FLOOR", 0)  # chunks of dY's channels
    starts = []
    real = module._turned_in_place
    monkeypatch.setattr(module, "_turned_in_place", lambda *a: (starts.append(a[2]), real(*a))[1])
    check_conv("numba", case, "float64")
    assert (len(starts) > 0) == in_place
    if in_place:
        assert max(starts) > 0  # a later chunk of dY's channels


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_dw_has_nan_exactly_where_the_reference_has(stride, bad):
    # The wide grid's discarded cells multiply dY's zeros by real input cells: an Inf
    # there must not turn a finite or infinite tap into NaN.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 10))
    x[0, 1, 4, 9] = bad  # last column: read by the wide grid's extra columns
    x[1, 2, 8, 0] = bad
    w = rng.standard_normal((10, 3, 3, 3))  # dW's second block of 8 output channels too
    params = dict(stride=stride, padding=(1, 0, 0, 1))
    gy = rng.standard_normal(fastcnn.conv2d(x, w, backend="naive", **params).shape)
    ref = fastcnn.conv2d_backward(gy, x, w, backend="naive", **params)
    for dtype in ("float64", "float32"):
        got = fastcnn.conv2d_backward(
            gy.astype(dtype), x.astype(dtype), w.astype(dtype), backend="numba", **params
        )
        for name in ("x", "w"):
            want, have = getattr(ref, name), getattr(got, name)
            np.testing.assert_array_equal(np.isnan(have), np.isnan(want), err_msg=name)
            np.testing.assert_array_equal(np.isinf(have), np.isinf(want), err_msg=name)
            np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4)  # NaN == NaN
    assert np.isfinite(ref.w).any()
    assert np.isinf(ref.w).any() if np.isinf(bad) else np.isnan(ref.w).any()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dw_keeps_finite_sums_whose_total_overflows(dtype):
    # dW tests a pass's 24 sums (8 output channels x 3 taps) by their total: sums near the
    # top of the range overflow it and must still come out as the reference has them.
    big = np.finfo(dtype).max / 4
    x = np.zeros((1, 2, 5, 5), dtype)
    x[0, :, 1:4, 1:4] = big * np.array([1, 0.5])[:, None, None]
    w = np.ones((8, 2, 3, 3), dtype)
    gy = np.zeros((1, 8, 5, 5), dtype)
    gy[0, :, 2, 2] = 1  # dW[o, c, i, j] = x[0, c, 1 + i, 1 + j]
    ref = fastcnn.conv2d_backward(gy, x, w, padding=1, backend="naive")
    got = fastcnn.conv2d_backward(gy, x, w, padding=1, backend="numba")
    assert np.isfinite(ref.w).all() and ref.w.max() == big
    np.testing.assert_array_equal(got.w, ref.w)


def _all_ops(x, w, gy):
    params = dict(stride=2, padding=(1, 0, 2, 1))
    return (
        fastcnn.conv2d(x, w, backend="numba", **params),
        *fastcnn.conv2d_backward(gy, x, w, backend="numba", **params)[:2],
        fastcnn.max_pool2d(x, 3, stride=2, padding=1, backend="numba"),
        fastcnn.min_pool2d(x, 3, stride=2, padding=(0, 1), ceil_mode=True, backend="numba"),
    )


def test_bit_identical_across_thread_counts():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 23, 21)).astype(np.float32)
    w = rng.standard_normal((12, 8, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 12, 11, 11)).astype(np.float32)
    try:
        fastcnn.set_num_threads(1)
        one = _all_ops(x, w, gy)
        fastcnn.set_num_threads(2)
        two = _all_ops(x, w, gy)
    finally:
        fastcnn.set_num_threads(None)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


POOL3_CASES = [
    dict(n=2, c=3, h=12, w=12, k=3, stride=2, padding=1),
    dict(n=1, c=2, h=9, w=8, k=3, stride=2, padding=(1, 0)),
    dict(n=1, c=2, h=8, w=11, k=3, stride=2, padding=(0, 1), ceil_mode=True),
    dict(n=2, c=1, h=7, w=7, k=3, stride=2, ceil_mode=True),
    dict(n=1, c=2, h=3, w=2, k=3, stride=2, padding=1),
    dict(n=1, c=1, h=1, w=1, k=3, stride=2, padding=1),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("case", POOL3_CASES, ids=case_id)
def test_3x3_stride_2_pooling_matches_the_reference(case, mode, dtype):
    check_pool("numba", mode, case, dtype)


@pytest.mark.parametrize("padding", [0, 1, (1, 0)])
def test_3x3_stride_2_pooling_keeps_nan_and_inf_in_their_windows(padding):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 11, 14))
    x[0, 0, 0, 0] = np.nan
    x[0, 1, 5, 13] = np.inf
    x[1, 2, 10, 6] = -np.inf
    x[1, 0, 4, 7] = np.nan
    for pool in (fastcnn.max_pool2d, fastcnn.min_pool2d):
        ref = pool(x, 3, stride=2, padding=padding, backend="naive")
        for dtype in ("float64", "float32"):
            got = pool(x.astype(dtype), 3, stride=2, padding=padding, backend="numba")
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            np.testing.assert_array_equal(got[~np.isnan(ref)], ref[~np.isnan(ref)].astype(dtype))
