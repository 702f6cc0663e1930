"""The audit's error measure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastcnn.tolerances import product_scale, relative_error


def test_relative_error_is_normwise_and_handles_non_finite_values():
    ref = np.array([1.0, -4.0, 2.0])
    assert relative_error(ref + np.array([0, 0.004, 0]), ref) == pytest.approx(0.001)
    assert relative_error(ref, ref) == 0.0
    assert relative_error(np.array([np.nan, np.inf]), np.array([np.nan, np.inf])) == 0.0
    assert math.isinf(relative_error(np.array([np.nan, 1.0]), np.array([1.0, 1.0])))
    assert math.isinf(relative_error(np.array([np.inf, 1.0]), np.array([-np.inf, 1.0])))
    assert math.isinf(relative_error(np.zeros(3), np.zeros(4)))


def test_zero_reference_is_judged_against_the_floor():
    noise = np.full(3, 1e-9)
    assert relative_error(noise, np.zeros(3)) > 1e20
    assert relative_error(noise, np.zeros(3), floor=product_scale([2.0], [-0.5])) == 1e-9
    assert product_scale(np.array([3.0, np.inf]), np.array([-2.0])) == 6.0
