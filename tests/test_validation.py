"""Every validation rule: the right error type, a message naming the parameter and rule."""

from __future__ import annotations

import numpy as np
import pytest

import fastcnn

x4 = np.zeros((2, 4, 8, 8))
w4 = np.zeros((6, 4, 3, 3))


def conv(**kw):
    args = {"x": x4, "w": w4, "b": None}
    args.update(kw)
    args.setdefault("backend", "naive")
    return fastcnn.conv2d(args.pop("x"), args.pop("w"), args.pop("b"), **args)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: conv(x=np.zeros((4, 8))), ValueError, ["x", "4-D", "2-D"]),
        (lambda: conv(x=np.zeros((1, 2, 4, 8, 8))), ValueError, ["x", "5-D"]),
        (lambda: conv(w=np.zeros((6, 4, 3))), ValueError, ["w", "4-D"]),
        (lambda: conv(w=np.zeros((6, 3, 3, 3))), ValueError, ["in_channels=4", "w.shape[1]=3"]),
        (lambda: conv(groups=3), ValueError, ["groups=3", "divide in_channels=4"]),
        (
            lambda: conv(w=np.zeros((5, 2, 3, 3)), groups=2),
            ValueError,
            ["groups=2", "divide out_channels=5"],
        ),
        (lambda: conv(groups=0), ValueError, ["groups=0", ">= 1"]),
        (lambda: conv(stride=0), ValueError, ["stride=0", ">= 1"]),
        (lambda: conv(stride=(1, -2)), ValueError, ["stride=(1, -2)", ">= 1"]),
        (lambda: conv(dilation=0), ValueError, ["dilation=0", ">= 1"]),
        (lambda: conv(padding=-1), ValueError, ["padding=-1", ">= 0"]),
        (lambda: conv(x=np.zeros((2, 4, 0, 8)), padding=2), ValueError, ["x", "height and width"]),
        (lambda: conv(padding=(0, 0, -1, 0)), ValueError, ["padding", ">= 0"]),
        (lambda: conv(padding="full"), ValueError, ["padding='full'", "'same'"]),
        (lambda: conv(padding="same", stride=2), ValueError, ["padding='same'", "stride=1"]),
        (lambda: conv(w=np.zeros((6, 4, 9, 9))), ValueError, ["kernel", "padded input", "empty"]),
        (lambda: conv(dilation=4), ValueError, ["dilation", "padded input"]),
        (lambda: conv(stride=1.5), TypeError, ["stride=1.5", "int"]),
        (lambda: conv(groups=True), TypeError, ["groups=True", "int"]),
        (lambda: conv(stride=(1, 2, 3)), ValueError, ["stride", "pair"]),
        (lambda: conv(b=np.zeros(5)), ValueError, ["b", "out_channels=6"]),
        (lambda: conv(b=np.zeros((6, 1))), ValueError, ["b", "vector"]),
        (lambda: conv(x=x4.astype(complex)), TypeError, ["complex"]),
        (lambda: conv(w=np.array([["a"]] * 4, dtype=object)), TypeError, ["dtype"]),
        (
            lambda: conv(x=np.zeros((2, 0, 8, 8)), w=np.zeros((6, 0, 3, 3))),
            ValueError,
            ["in_channels=0"],
        ),
        (
            lambda: fastcnn.conv2d_backward(np.zeros((2, 6, 5, 5)), x4, w4, backend="naive"),
            ValueError,
            ["grad_y", "(2, 6, 6, 6)"],
        ),
        (
            lambda: fastcnn.conv2d_backward(np.zeros((2, 6, 6, 6)), x4, w4, need=("x", "bias")),
            ValueError,
            ["need", "'x', 'w' and 'b'"],
        ),
        (lambda: conv(backend="nosuch"), ValueError, ["backend='nosuch'", "'naive'", "'auto'"]),
    ],
)
def test_conv_rules(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)


def pool(mode="max", **kw):
    fn = {"max": fastcnn.max_pool2d, "min": fastcnn.min_pool2d, "mean": fastcnn.mean_pool2d}[mode]
    x = kw.pop("x", x4)
    kw.setdefault("backend", "naive")
    return fn(x, kw.pop("kernel_size", 2), **kw)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: pool(x=np.zeros(5)), ValueError, ["x", "1-D"]),
        (lambda: pool(kernel_size=0), ValueError, ["kernel_size=0", ">= 1"]),
        (lambda: pool(x=np.zeros((1, 2, 3, 0)), padding=1), ValueError, ["x", "height and width"]),
        (lambda: pool(kernel_size=3, padding=2), ValueError, ["padding=2", "half the kernel"]),
        (lambda: pool("mean", kernel_size=(4, 2), padding=(1, 2)), ValueError, ["padding", "half"]),
        (lambda: pool(stride=0), ValueError, ["stride=0"]),
        (lambda: pool(dilation=0), ValueError, ["dilation=0"]),
        (lambda: pool(kernel_size=9), ValueError, ["kernel_size", "padded input"]),
        (lambda: pool(ceil_mode="yes"), TypeError, ["ceil_mode", "bool"]),
        (lambda: pool("mean", count_include_pad=1), TypeError, ["count_include_pad", "bool"]),
        (lambda: pool(x=x4 + 1j), TypeError, ["complex"]),
        (
            lambda: fastcnn.max_pool2d_backward(np.zeros((2, 4, 3, 3)), x4, 2),
            ValueError,
            ["grad_y", "(2, 4, 4, 4)"],
        ),
        (lambda: pool(backend="nosuch"), ValueError, ["nosuch", "valid names"]),
    ],
)
def test_pool_rules(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_validation_runs_before_any_backend(monkeypatch):
    """A bad call never reaches a backend: the front end refuses it first."""
    naive = fastcnn.registry.get_backend("naive")
    calls = []
    monkeypatch.setattr(naive, "conv2d", lambda *a: calls.append(a))
    with pytest.raises(ValueError):
        fastcnn.conv2d(x4, w4, stride=0, backend="naive")
    assert calls == []
