"""The reference backend against finite differences over the whole parameter sweep."""

from __future__ import annotations

import pytest

from tests.helpers import CONV_SWEEP, POOL_SWEEP, case_id, check_conv_fd, check_pool_fd


@pytest.mark.parametrize("case", CONV_SWEEP, ids=case_id)
def test_conv_gradients_match_finite_differences(case):
    check_conv_fd("naive", case)


@pytest.mark.parametrize("mode", ["max", "min", "mean"])
@pytest.mark.parametrize("case", POOL_SWEEP, ids=case_id)
def test_pool_gradients_match_finite_differences(case, mode):
    check_pool_fd("naive", mode, case)
