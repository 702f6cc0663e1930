"""The FFT backend beyond the sweep (test_sweep.py): large kernels, refusals, NaN policy."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import case_id, check_conv

import fastcnn
from fastcnn import crosscheck

DTYPES = ["float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "case",
    [
        dict(n=2, cin=3, h=20, w=18, cout=2, k=(15, 15), padding=7),
        dict(n=1, cin=2, h=33, w=31, cout=2, k=(31, 31), padding=15, stride=2),
    ],
    ids=case_id,
)
def test_large_kernels_match_naive(case, dtype):
    check_conv("fft", case, dtype)


def test_pooling_is_refused_with_the_reason():
    x = np.ones((1, 1, 4, 4))
    for pool in (fastcnn.max_pool2d, fastcnn.min_pool2d, fastcnn.mean_pool2d):
        with pytest.raises(fastcnn.BackendUnsupported, match=r"no pool2d.*im2col"):
            pool(x, 2, backend="fft")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_refused_by_name_and_avoided_by_auto(bad):
    x = np.random.default_rng(0).standard_normal((1, 2, 12, 12))
    x[0, 0, 5, 5] = bad
    w = np.random.default_rng(1).standard_normal((2, 2, 3, 3))
    with pytest.raises(fastcnn.BackendUnsupported, match="NaN or Inf"):
        fastcnn.conv2d(x, w, backend="fft")
    with pytest.raises(fastcnn.BackendUnsupported, match="NaN or Inf"):
        fastcnn.conv2d_backward(np.ones((1, 2, 10, 10)), x, w, backend="fft")
    y = fastcnn.conv2d(x, w, backend="auto")
    ref = fastcnn.conv2d(x, w, backend="naive")
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(ref))
    assert (~np.isfinite(y)).sum() == 9 * 2  # the 3x3 windows holding it, per filter


def test_chunked_batches_match(monkeypatch):
    x = np.random.default_rng(0).standard_normal((5, 3, 10, 10))
    w = np.random.default_rng(1).standard_normal((4, 3, 5, 5))
    gy = np.random.default_rng(2).standard_normal((5, 4, 10, 10))
    whole = fastcnn.conv2d(x, w, padding=2, backend="fft")
    whole_g = fastcnn.conv2d_backward(gy, x, w, padding=2, backend="fft")
    before = fastcnn.get_workspace_limit()
    fastcnn.set_workspace_limit(1)  # one image per chunk
    try:
        np.testing.assert_allclose(fastcnn.conv2d(x, w, padding=2, backend="fft"), whole)
        for got, want in zip(
            fastcnn.conv2d_backward(gy, x, w, padding=2, backend="fft"), whole_g, strict=True
        ):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    finally:
        fastcnn.set_workspace_limit(before)


def test_repeated_calls_are_bit_identical():
    x = np.random.default_rng(0).standard_normal((2, 4, 16, 16)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 2, 7, 7)).astype(np.float32)
    a = fastcnn.conv2d(x, w, padding=3, groups=2, backend="fft")
    b = fastcnn.conv2d(x, w, padding=3, groups=2, backend="fft")
    np.testing.assert_array_equal(a, b)


def test_outputs_that_are_exactly_zero_in_the_reference_are_judged_against_input_scale():
    # Found by the property-based test: every window lies in the padding, so the reference
    # is exactly 0 and the FFT returns rounding noise of about 1e-9.
    report = crosscheck.run(
        ["conv2d x=1x1x2x3 w=1x1x1x1 stride=3,1 padding=1,0,0,0 bias=false"], backends=["fft"]
    )
    assert report.passed, report.summary()
