"""Front-end behaviour: shapes, dtype policy, unbatched input, array layouts, purity."""

from __future__ import annotations

import numpy as np
import pytest

import fastcnn

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 4, 7, 6))
W = RNG.standard_normal((6, 2, 3, 3))
B = RNG.standard_normal(6)


def test_unbatched_input_gives_unbatched_output():
    y3 = fastcnn.conv2d(X[0], W, B, groups=2, backend="naive")
    y4 = fastcnn.conv2d(X[:1], W, B, groups=2, backend="naive")
    assert y3.shape == (6, 5, 4)
    np.testing.assert_array_equal(y3, y4[0])
    g3 = fastcnn.conv2d_backward(np.ones_like(y3), X[0], W, groups=2, backend="naive")
    assert g3.x.shape == X[0].shape and g3.w.shape == W.shape and g3.b.shape == (6,)
    p3 = fastcnn.max_pool2d(X[0], 2, backend="naive")
    assert p3.shape == (4, 3, 3)
    gp3 = fastcnn.max_pool2d_backward(np.ones_like(p3), X[0], 2, backend="naive")
    assert gp3.shape == X[0].shape


@pytest.mark.parametrize(
    ("x_dtype", "w_dtype", "expected"),
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float32, np.float64),
        (np.int64, np.int64, np.float64),
        (np.int8, np.float32, np.float32),
        (np.float16, np.float16, np.float32),
        (np.bool_, np.float32, np.float32),
    ],
)
def test_result_dtype_policy(x_dtype, w_dtype, expected):
    y = fastcnn.conv2d(X.astype(x_dtype), W.astype(w_dtype), groups=2, backend="naive")
    assert y.dtype == expected
    assert fastcnn.mean_pool2d(X.astype(x_dtype), 2, backend="naive").dtype == np.result_type(
        x_dtype, np.float32
    )


def _column_strided(a: np.ndarray) -> np.ndarray:
    """A view of ``a``'s values whose last axis steps over every other element."""
    wide = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
    wide[..., ::2] = a
    view = wide[..., ::2]
    assert not view.flags.c_contiguous and view.base is wide
    return view


def test_array_likes_and_layouts_give_the_same_result():
    ref = fastcnn.conv2d(X, W, B, groups=2, backend="naive")
    readonly = X.copy()
    readonly.flags.writeable = False
    variants = [
        X.tolist(),
        np.asfortranarray(X),
        readonly,
        X[:, :, ::-1][:, :, ::-1],  # negative strides
        _column_strided(X),
        np.repeat(X, 2, axis=2)[:, :, ::2],  # non-contiguous view
    ]
    for variant in variants:
        np.testing.assert_array_equal(fastcnn.conv2d(variant, W, B, groups=2, backend="naive"), ref)


def test_inputs_are_never_modified_and_results_do_not_alias_them():
    x, w, b = X.copy(), W.copy(), B.copy()
    gy = RNG.standard_normal((2, 6, 5, 4))
    saved = [a.copy() for a in (x, w, b, gy)]
    y = fastcnn.conv2d(x, w, b, groups=2, backend="naive")
    grads = fastcnn.conv2d_backward(gy, x, w, groups=2, backend="naive")
    pools = [
        fastcnn.max_pool2d(x, 2, backend="naive"),
        fastcnn.min_pool2d(x, 2, padding=1, backend="naive"),
        fastcnn.mean_pool2d(x, 3, stride=2, ceil_mode=True, backend="naive"),
        fastcnn.max_pool2d_backward(np.ones((2, 4, 3, 3)), x, 2, backend="naive"),
        fastcnn.mean_pool2d_backward(np.ones((2, 4, 3, 3)), x, 2, backend="naive"),
    ]
    for before, after in zip(saved, (x, w, b, gy), strict=True):
        np.testing.assert_array_equal(before, after)
    for out in (y, *grads, *pools):
        for given in (x, w, b, gy):
            assert not np.shares_memory(out, given)


def test_need_skips_unwanted_gradients():
    gy = RNG.standard_normal((2, 6, 5, 4))
    full = fastcnn.conv2d_backward(gy, X, W, groups=2, backend="naive")
    only_w = fastcnn.conv2d_backward(gy, X, W, groups=2, need=("w",), backend="naive")
    assert only_w.x is None and only_w.b is None
    np.testing.assert_array_equal(only_w.w, full.w)
    no_bias = fastcnn.conv2d_backward(gy, X, W, groups=2, bias=False, backend="naive")
    assert no_bias.b is None
    np.testing.assert_allclose(full.b, gy.sum(axis=(0, 2, 3)))


def test_empty_batch_gives_empty_results_of_the_right_shape():
    x = np.zeros((0, 4, 7, 6))
    assert fastcnn.conv2d(x, W, B, groups=2, backend="naive").shape == (0, 6, 5, 4)
    grads = fastcnn.conv2d_backward(np.zeros((0, 6, 5, 4)), x, W, groups=2, backend="naive")
    assert grads.x.shape == x.shape and not grads.w.any() and not grads.b.any()
    assert fastcnn.max_pool2d(x, 2).shape == (0, 4, 3, 3)
    assert fastcnn.mean_pool2d_backward(np.zeros((0, 4, 3, 3)), x, 2).shape == x.shape


def test_output_size_rule_and_same_padding():
    x = np.ones((1, 1, 10, 9))
    for k, s, p, d in [(3, 1, 0, 1), (3, 2, 1, 1), (4, 3, 2, 2), (1, 4, 0, 1), (5, 2, 3, 1)]:
        y = fastcnn.conv2d(x, np.ones((1, 1, k, k)), stride=s, padding=p, dilation=d)
        rows, cols = ((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in (10, 9))
        assert y.shape == (1, 1, rows, cols)
    for k, d in [(3, 1), (4, 1), (4, 3), (2, 2)]:
        y = fastcnn.conv2d(x, np.ones((1, 1, k, k)), padding="same", dilation=d)
        assert y.shape == x.shape


def test_same_padding_puts_the_odd_cell_at_the_end_like_pytorch():
    # kernel 2: total padding 1, all of it bottom/right, so y[i, j] = x[i, j] (top-left tap).
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    w = np.zeros((1, 1, 2, 2))
    w[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(fastcnn.conv2d(x, w, padding="same"), x)


X5 = np.arange(1.0, 26.0).reshape(1, 1, 5, 5)


def test_ceil_mode_and_count_include_pad_by_hand():
    y = fastcnn.mean_pool2d(X5, 2, ceil_mode=True)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 2, 2] == 25.0  # a 1x1 overhanging window, divisor 1
    assert y[0, 0, 0, 2] == (5 + 10) / 2  # a 2x1 window
    incl = fastcnn.mean_pool2d(X5, 3, stride=2, padding=1, ceil_mode=True)
    excl = fastcnn.mean_pool2d(X5, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    assert incl.shape == excl.shape == (1, 1, 3, 3)
    assert incl[0, 0, 0, 0] == pytest.approx((1 + 2 + 6 + 7) / 9)
    assert excl[0, 0, 0, 0] == pytest.approx((1 + 2 + 6 + 7) / 4)
    m = fastcnn.max_pool2d(X5, 2, ceil_mode=True)
    np.testing.assert_array_equal(m[0, 0], [[7, 9, 10], [17, 19, 20], [22, 24, 25]])
    # The last window must start inside the input or its left padding: 5 + 2*1 - 2 = 5,
    # ceil(5 / 2) + 1 = 4 windows, but the 4th would start at 6 - 1 = 5 >= 5 + 1: dropped.
    assert fastcnn.max_pool2d(X5, 2, stride=2, padding=1, ceil_mode=True).shape == (1, 1, 3, 3)


def test_max_and_min_pool_tie_and_nan_rules():
    x = np.array([[[[1.0, 3.0], [3.0, 1.0]]]])
    g = fastcnn.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2)
    np.testing.assert_array_equal(g[0, 0], [[0, 1], [0, 0]])  # first maximum, row-major
    g = fastcnn.min_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2)
    np.testing.assert_array_equal(g[0, 0], [[1, 0], [0, 0]])
    x_nan = np.array([[[[1.0, np.nan], [5.0, np.nan]]]])
    assert np.isnan(fastcnn.max_pool2d(x_nan, 2)).all()
    assert np.isnan(fastcnn.min_pool2d(x_nan, 2)).all()
    g = fastcnn.max_pool2d_backward(np.ones((1, 1, 1, 1)), x_nan, 2, backend="naive")
    np.testing.assert_array_equal(g[0, 0], [[0, 0], [0, 1]])  # the last NaN, as PyTorch


def test_pooling_padding_uses_infinities_not_zeros():
    x = -np.ones((1, 1, 2, 2))
    assert fastcnn.max_pool2d(x, 2, stride=1, padding=1, backend="naive").max() == -1.0
    assert fastcnn.min_pool2d(-x, 2, stride=1, padding=1, backend="naive").min() == 1.0


def test_matches_pytorch_when_installed():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG.standard_normal((2, 4, 9, 8))
    w = RNG.standard_normal((6, 2, 3, 2))
    b = RNG.standard_normal(6)
    ours = fastcnn.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    theirs = F.conv2d(
        torch.tensor(x),
        torch.tensor(w),
        torch.tensor(b),
        stride=(2, 1),
        padding=(1, 2),
        dilation=(1, 2),
        groups=2,
    )
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-12)
    for ceil in (False, True):
        ours = fastcnn.mean_pool2d(
            x, 3, stride=2, padding=1, ceil_mode=ceil, count_include_pad=False
        )
        theirs = F.avg_pool2d(
            torch.tensor(x), 3, stride=2, padding=1, ceil_mode=ceil, count_include_pad=False
        )
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-12)
        ours = fastcnn.max_pool2d(x, 3, stride=2, padding=1, dilation=2, ceil_mode=ceil)
        theirs = F.max_pool2d(torch.tensor(x), 3, stride=2, padding=1, dilation=2, ceil_mode=ceil)
        np.testing.assert_array_equal(ours, theirs.numpy())
