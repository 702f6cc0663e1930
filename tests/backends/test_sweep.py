"""Every built-in backend over the whole parameter sweep: against the naive reference in
float64 (float32 and float64 inputs) and against finite differences of its own forward.
Backend-specific behaviour (memory, threads, refusals) lives in each backend's own file.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    CONV_SWEEP,
    POOL_SWEEP,
    case_id,
    check_conv,
    check_conv_fd,
    check_pool,
    check_pool_fd,
)

import fastcnn
from fastcnn.registry import get_backend

BACKENDS = ["naive", "im2col", "fft", "numba"]
#: Winograd computes 3x3 stride-1 undilated convolutions only: the sweep's cases of that kind.
WINOGRAD = ["winograd2", "winograd4", "winograd"]
WINOGRAD_SWEEP = [
    c
    for c in CONV_SWEEP
    if c["k"] == (3, 3) and c.get("stride", 1) == 1 and c.get("dilation", 1) == 1
]
POOLING_BACKENDS = [b for b in BACKENDS if "pool2d" in get_backend(b).ops]
DTYPES = ["float32", "float64"]
MODES = ["max", "min", "mean"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_SWEEP, ids=case_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_matches_naive(backend, case, dtype):
    check_conv(backend, case, dtype)


@pytest.mark.parametrize("case", CONV_SWEEP, ids=case_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_gradients_match_finite_differences(backend, case):
    check_conv_fd(backend, case)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WINOGRAD_SWEEP, ids=case_id)
@pytest.mark.parametrize("backend", WINOGRAD)
def test_winograd_conv_matches_naive(backend, case, dtype):
    check_conv(backend, case, dtype)


@pytest.mark.parametrize("case", WINOGRAD_SWEEP, ids=case_id)
@pytest.mark.parametrize("backend", WINOGRAD)
def test_winograd_conv_gradients_match_finite_differences(backend, case):
    check_conv_fd(backend, case)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", POOL_SWEEP, ids=case_id)
@pytest.mark.parametrize("backend", POOLING_BACKENDS)
def test_pool_matches_naive(backend, case, mode, dtype):
    check_pool(backend, mode, case, dtype)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", POOL_SWEEP, ids=case_id)
@pytest.mark.parametrize("backend", POOLING_BACKENDS)
def test_pool_gradients_match_finite_differences(backend, case, mode):
    check_pool_fd(backend, mode, case)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)])
@pytest.mark.parametrize("backend", POOLING_BACKENDS)
def test_pool_ties_and_nan_follow_the_reference_exactly(backend, params, dtype):
    # Small integers make ties everywhere; the NaNs sit in some windows only.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(2, 3, 8, 9)).astype(dtype)
    x[0, 1, 2, 3] = x[1, 2, 5, 0] = x[1, 2, 5, 1] = np.nan
    for mode in ("max", "min"):
        forward = getattr(fastcnn, f"{mode}_pool2d")
        backward = getattr(fastcnn, f"{mode}_pool2d_backward")
        y = forward(x, backend=backend, **params)
        np.testing.assert_array_equal(y, forward(x, backend="naive", **params))
        assert np.isnan(y).any() and not np.isnan(y).all()
        gy = rng.integers(-9, 10, size=y.shape).astype(dtype)  # exact sums in any order
        np.testing.assert_array_equal(
            backward(gy, x, backend=backend, **params),
            backward(gy, x, backend="naive", **params),
        )
