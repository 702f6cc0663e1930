"""The Numba backend's depthwise 3x3 kernels against the naive reference."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from helpers import check_conv, check_conv_fd

import fastcnn
from fastcnn.registry import get_backend
from fastcnn.spec import make_conv_spec

SHAPES = [(1, 3, 7, 7), (2, 4, 14, 13), (1, 2, 6, 8), (2, 3, 1, 1), (1, 2, 2, 3), (1, 1, 30, 9)]
PADDINGS = [0, 1, 2, (0, 2, 1, 0), (1, 0, 0, 2), (3, 1, 2, 3)]


def _module(name: str):
    return importlib.import_module(f"{type(get_backend('numba')).__module__}.{name}")


def _case(shape, stride, padding, bias=True):
    n, c, h, w = shape
    return dict(
        n=n, cin=c, h=h, w=w, cout=c, k=(3, 3), groups=c, stride=stride, padding=padding, bias=bias
    )


def _fits(shape, stride, padding) -> bool:
    pads = (padding,) * 4 if isinstance(padding, int) else padding
    return shape[2] + pads[0] + pads[1] >= 3 and shape[3] + pads[2] + pads[3] >= 3


def _launches(monkeypatch, *names: str) -> list:
    """The kernels the numba modules ``names`` launch from now on, in order (they still
    run)."""
    launched = []
    for name in names:
        module = _module(name)
        monkeypatch.setattr(
            module,
            "launch",
            lambda kernel, *a, real=module.launch: (launched.append(kernel), real(kernel, *a)),
        )
    return launched


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_gradients_match_the_reference(monkeypatch, shape, padding, stride, dtype):
    if not _fits(shape, stride, padding):
        pytest.skip("the window does not fit")
    modules = ("depthwise", "depthwise_flat", "depthwise_grad", "depthwise_grad_s2")
    launched = _launches(monkeypatch, *modules)
    check_conv("numba", _case(shape, stride, padding), dtype)
    assert len(launched) == 3  # forward, dX and dW all ran the depthwise kernels


@pytest.mark.parametrize("stride", [1, 2])
def test_gradients_match_finite_differences(stride):
    check_conv_fd("numba", _case((2, 3, 8, 10), stride, (1, 0, 1, 2)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_cell_of_padding_at_stride_1_takes_the_flat_kernels(monkeypatch, dtype):
    # Maps down to 3x3 (where the flat loop holds only its two special cells), and one
    # too small for them, which takes the general kernels.
    depthwise, flat = _module("depthwise"), _module("depthwise_flat")
    launched = _launches(monkeypatch, "depthwise", "depthwise_flat", "depthwise_grad")
    shapes = [(2, 3, 3, 3), (1, 2, 3, 9), (1, 2, 8, 3), (2, 3, 12, 16), (1, 1, 2, 5)]
    for shape in shapes:
        check_conv("numba", _case(shape, 1, 1), dtype)
    assert launched.count(flat._dw_same) == 2 * 4  # the forward and dX, per shape
    assert launched.count(flat._dw_grad_w_same) == 4
    assert launched.count(depthwise._dw_forward) == 2  # the 2x5 map's forward and dX


@pytest.mark.parametrize("block_cells", [None, 40], ids=["whole planes", "blocks of 5 rows"])
def test_even_rows_at_stride_2_take_the_column_halves_kernel(monkeypatch, block_cells):
    depthwise = _module("depthwise")
    if block_cells is not None:  # several blocks per plane, the last one shorter
        monkeypatch.setattr(depthwise, "BLOCK_CELLS", block_cells)
    launched = _launches(monkeypatch, "depthwise")
    for padding in ((2, 1, 1, 1), (1, 1, 0, 2), (0, 0, 1, 0)):
        check_conv("numba", _case((2, 3, 12, 16), 2, padding, bias=False), "float32")
    assert launched.count(depthwise._dw_forward_halves) == 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_maps_twice_the_output_at_stride_2_take_the_parity_planes_kernel(monkeypatch, dtype):
    # Padding 1 with the bottom and right padding read or not; maps down to 4x4 (2x2
    # outputs: the flat loop holds one cell); odd sides take the general kernels.
    flat = _module("depthwise_flat")
    monkeypatch.setattr(flat, "FORWARD_MIN_WIDTH", 2)  # on these small maps
    monkeypatch.setattr(flat, "GRAD_W_MIN_WIDTH", 2)
    launched = _launches(monkeypatch, "depthwise_flat")
    cases = [((2, 3, 12, 16), 1), ((1, 2, 4, 4), 1), ((1, 2, 6, 4), (1, 0, 1, 0))]
    cases += [((1, 2, 4, 10), (1, 1, 1, 0)), ((1, 2, 7, 8), 1)]
    for shape, padding in cases:
        check_conv("numba", _case(shape, 2, padding), dtype)
    assert launched.count(flat._dw_parity) == 4
    assert launched.count(flat._dw_grad_w_parity) == 4


def test_stride_2_gradients_on_even_rows_take_the_flat_kernels(monkeypatch):
    grad = _module("depthwise_grad_s2")
    launched = _launches(monkeypatch, "depthwise_grad_s2")
    for padding in (1, (1, 1, 0, 2), (0, 0, 1, 0), (3, 0, 1, 1)):
        check_conv("numba", _case((2, 3, 12, 16), 2, padding, bias=False), "float32")
    assert launched.count(grad._dw_grad_x_halves) == 4
    assert launched.count(grad._dw_grad_w_halves) == 4  # outputs too narrow for the parity planes


@pytest.mark.parametrize("per_pass", [1, 10**6])
def test_stride_2_dw_sums_blocks_of_several_images_in_one_pass(monkeypatch, per_pass):
    # Blocks of 3 rows (the last one shorter) and all or one of them per pass.
    monkeypatch.setattr(_module("depthwise"), "BLOCK_CELLS", 40)
    monkeypatch.setattr(_module("depthwise_grad_s2"), "SEGMENT_CELLS", per_pass)
    for dtype in ("float32", "float64"):  # no left padding: not the parity planes' case
        check_conv("numba", _case((3, 2, 20, 22), 2, (1, 1, 0, 2)), dtype)


def test_stride_2_dx_with_a_weight_not_finite_runs_the_general_kernel(monkeypatch):
    # The flat kernel's zero products would turn into NaN where the general one has none.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 12, 14))
    w = rng.standard_normal((3, 1, 3, 3))
    w[1, 0, 0, 2] = np.inf
    params = dict(stride=2, padding=1, groups=3, backend="numba")
    gy = rng.standard_normal(fastcnn.conv2d(x, w, **params).shape)
    got = fastcnn.conv2d_backward(gy, x, w, **params).x
    monkeypatch.setattr(_module("depthwise_grad"), "halves", lambda spec: False)
    np.testing.assert_array_equal(got, fastcnn.conv2d_backward(gy, x, w, **params).x)


@pytest.mark.parametrize("parity_dw", [False, True], ids=["halves", "parity"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_and_inf_stay_in_the_windows_that_hold_them(monkeypatch, stride, dtype, parity_dw):
    if parity_dw:  # at stride 2, the parity planes' kernels on this small map
        monkeypatch.setattr(_module("depthwise_flat"), "FORWARD_MIN_WIDTH", 2)
        monkeypatch.setattr(_module("depthwise_flat"), "GRAD_W_MIN_WIDTH", 2)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 12, 14))
    x[0, 1, 4, 5] = np.nan
    x[1, 2, 0, 13] = np.inf  # a corner cell: the flat layouts' wrap-around must not reach it
    x[1, 0, 11, 0] = -np.inf
    w = rng.standard_normal((3, 1, 3, 3))
    params = dict(stride=stride, padding=1, groups=3)
    ours = fastcnn.conv2d(x.astype(dtype), w.astype(dtype), backend="numba", **params)
    ref = fastcnn.conv2d(x, w, backend="naive", **params)
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(ours), test(ref))
    gy = rng.standard_normal(ref.shape)
    gy[1, 1, 3, 2] = np.nan
    want = fastcnn.conv2d_backward(gy, x, w, backend="naive", **params)
    got = fastcnn.conv2d_backward(
        gy.astype(dtype), x.astype(dtype), w.astype(dtype), backend="numba", **params
    )
    for name in ("x", "w"):
        np.testing.assert_array_equal(np.isnan(getattr(got, name)), np.isnan(getattr(want, name)))
        assert np.isfinite(getattr(got, name)).any()


@pytest.mark.parametrize("stride", [1, 2])
def test_bit_identical_across_calls_and_thread_counts(stride):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 16, 28, 28)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    params = dict(stride=stride, padding=1, groups=16, backend="numba")
    gy = rng.standard_normal(fastcnn.conv2d(x, w, b, **params).shape).astype(np.float32)

    def run():
        return [fastcnn.conv2d(x, w, b, **params), *fastcnn.conv2d_backward(gy, x, w, **params)]

    first = run()
    before = fastcnn.get_num_threads()
    try:
        fastcnn.set_num_threads(1)
        one = run()
        fastcnn.set_num_threads(2)
        two = run()
    finally:
        fastcnn.set_num_threads(before)
    for a, b1, b2 in zip(first, one, two, strict=True):
        np.testing.assert_array_equal(a, b1)
        np.testing.assert_array_equal(a, b2)


def test_only_one_channel_per_group_3x3_undilated_stride_1_or_2_is_depthwise():
    def applies(x, w, **params):
        spec = make_conv_spec(x, w, bias=False, dtype=np.dtype(np.float64), **params)
        return _module("depthwise").applies(spec)

    x, w = np.zeros((1, 4, 9, 9)), np.zeros((4, 1, 3, 3))
    assert applies(x, w, groups=4, padding=1)
    assert applies(x, w, groups=4, stride=2)
    assert not applies(x, np.zeros((8, 1, 3, 3)), groups=4)  # multiplier 2
    assert not applies(x, w, groups=4, dilation=2)
    assert not applies(x, w, groups=4, stride=3)
    assert not applies(x, w, groups=4, stride=(1, 2))
    assert not applies(x, np.zeros((4, 1, 5, 5)), groups=4)
    check_conv(
        "numba", dict(n=1, cin=3, h=9, w=9, cout=6, k=(3, 3), groups=3, padding=1), "float64"
    )
