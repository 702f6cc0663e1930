"""Every built-in backend over the whole parameter sweep: against the naive reference in
float64 (float32 and float64 inputs) and against finite differences of its own forward.
Backend-specific behaviour (memory, threads, refusals) lives in each backend's own file.
"""

from __future__ import annotations

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

from fastcnn.registry import get_backend

BACKENDS = ["naive", "im2col", "fft", "numba"]
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
