"""PyTorch's NaN rule for max/min pooling's backward: a window's gradient goes to its last NaN."""

from __future__ import annotations

import numpy as np
import pytest

import fastcnn

BACKENDS = ["naive", "im2col", "numba"]
# (kernel, stride, padding, dilation): the general kernels and numba's fused 2x2 one.
GEOMETRIES = [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2), ((2, 3), (1, 2), (1, 1), 1)]


def _nan_input(rng: np.random.Generator, dtype: str) -> np.ndarray:
    x = rng.integers(-3, 4, (2, 2, 9, 8)).astype(dtype)  # ties too
    x.reshape(-1)[rng.choice(x.size, 40, replace=False)] = np.nan
    return x


def _last_nan_routing(x, gy, kernel, stride, padding, dilation, mode):
    """dX by the rule, written out per window: the last NaN in row-major order, else the
    first extreme; windows read the padded input (padding never wins a finite window)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    fill = -np.inf if mode == "max" else np.inf
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    dx = np.zeros_like(xp)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(gy.shape[2]):
                for j in range(gy.shape[3]):
                    cells = [
                        (i * sh + a * dilation, j * sw + b * dilation)
                        for a in range(kh)
                        for b in range(kw)
                    ]
                    values = [xp[n, c, r, q] for r, q in cells]
                    nans = [k for k, v in enumerate(values) if np.isnan(v)]
                    pick = np.argmax if mode == "max" else np.argmin
                    k = nans[-1] if nans else int(pick(values))
                    dx[n, c, cells[k][0], cells[k][1]] += gy[n, c, i, j]
    return dx[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_gradient_goes_to_the_last_nan(backend, dtype, mode, geometry):
    kernel, stride, padding, dilation = geometry
    rng = np.random.default_rng(7)
    x = _nan_input(rng, dtype)
    forward = fastcnn.max_pool2d if mode == "max" else fastcnn.min_pool2d
    backward = fastcnn.max_pool2d_backward if mode == "max" else fastcnn.min_pool2d_backward
    params = {"stride": stride, "padding": padding, "dilation": dilation}
    y = forward(x, kernel, backend="naive", **params)
    gy = rng.integers(1, 5, y.shape).astype(dtype)
    got = backward(gy, x, kernel, backend=backend, **params)
    want = _last_nan_routing(x, gy, kernel, stride, padding, dilation, mode)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(y).any()  # the case does hold windows with NaN


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_nan_routing_matches_pytorch(backend, geometry):
    torch = pytest.importorskip("torch")
    kernel, stride, padding, dilation = geometry
    x = _nan_input(np.random.default_rng(11), "float64")
    params = {"stride": stride, "padding": padding, "dilation": dilation}
    t = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(t, kernel, **params)
    gy = np.random.default_rng(12).integers(1, 5, tuple(ty.shape)).astype(np.float64)
    ty.backward(torch.tensor(gy))
    got = fastcnn.max_pool2d_backward(gy, x, kernel, backend=backend, **params)
    np.testing.assert_array_equal(got, t.grad.numpy())
    y = fastcnn.max_pool2d(x, kernel, backend=backend, **params)
    np.testing.assert_array_equal(y, ty.detach().numpy())
