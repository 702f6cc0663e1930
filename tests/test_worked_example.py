"""The lecture's worked examples, reproduced exactly through the public API."""

from __future__ import annotations

import numpy as np
import pytest

import fastcnn

X = np.array(
    [
        [0, 2, -3, 2, -3],
        [-2, -2, -2, -1, -2],
        [-3, -3, 2, -2, 1],
        [-3, -2, 1, -3, 1],
        [0, -1, 0, 2, -3],
    ]
)
K = np.array([[-1, 0, -2], [1, 1, -1], [-1, -1, 0]])


@pytest.mark.parametrize(
    ("stride", "expected"),
    [
        (1, [[9, -9, 7], [2, 5, 6], [-7, 9, -10]]),
        (2, [[9, 7], [-7, -10]]),
    ],
)
def test_lecture_convolution(stride, expected):
    y = fastcnn.conv2d(X[np.newaxis], K[np.newaxis, np.newaxis], [-1], stride=stride)
    assert y.shape == (1, len(expected), len(expected))
    assert y.dtype == np.float64  # integer inputs promote to float64
    np.testing.assert_array_equal(y[0], expected)


# A 4x4 input and a 2x2 filter give a 3x3 output. With dL/dO the identity, every value
# below is small enough to check by hand.
X4 = np.arange(1.0, 17.0).reshape(4, 4)
F2 = np.array([[1.0, 2.0], [3.0, 4.0]])
GRAD_OUT = np.eye(3)


def test_filter_gradient_is_convolution_of_input_with_output_gradient():
    grads = fastcnn.conv2d_backward(GRAD_OUT[None, None], X4[None, None], F2[None, None])
    # dL/dF[a, b] = sum_ij X[i + a, j + b] * dO[i, j] = X[a, b] + X[a+1, b+1] + X[a+2, b+2]
    by_hand = [[1 + 6 + 11, 2 + 7 + 12], [5 + 10 + 15, 6 + 11 + 16]]
    np.testing.assert_array_equal(grads.w[0, 0], by_hand)
    # ... which is the convolution of X with dL/dO used as the kernel.
    as_conv = fastcnn.conv2d(X4[None, None], GRAD_OUT[None, None])
    np.testing.assert_array_equal(grads.w[0, 0], as_conv[0, 0])
    assert grads.b[0] == 3.0  # dL/db sums dL/dO


def test_input_gradient_is_full_convolution_of_rotated_filter():
    grads = fastcnn.conv2d_backward(GRAD_OUT[None, None], X4[None, None], F2[None, None])
    # The filter stamped at (0,0), (1,1) and (2,2), where dL/dO is 1.
    by_hand = [[1, 2, 0, 0], [3, 5, 2, 0], [0, 3, 5, 2], [0, 0, 3, 4]]
    np.testing.assert_array_equal(grads.x[0, 0], by_hand)
    # ... which is dL/dO padded by k-1 ("full"), correlated with the filter rotated 180 deg.
    full = fastcnn.conv2d(GRAD_OUT[None, None], np.rot90(F2, 2)[None, None], padding=1)
    np.testing.assert_array_equal(grads.x[0, 0], full[0, 0])
