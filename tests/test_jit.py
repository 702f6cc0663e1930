"""The Numba launch machinery: thread count, serial twins."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import njit, prange

import fastcnn
from fastcnn import jit


@njit(parallel=True)
def _thread_ids(out):  # pragma: no cover - compiled
    for i in prange(out.shape[0]):
        out[i] = numba.get_thread_id()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two or more threads")
def test_launch_runs_on_the_configured_number_of_threads():
    ids = np.full(4096, -1, dtype=np.int64)
    try:
        fastcnn.set_num_threads(1)
        jit.launch(_thread_ids, ids)
        assert set(ids.tolist()) == {0}
        fastcnn.set_num_threads(2)
        ids[:] = -1
        jit.launch(_thread_ids, ids)
        assert set(ids.tolist()) == {0, 1}
    finally:
        fastcnn.set_num_threads(None)


def test_serial_twin_computes_the_same_on_one_thread():
    ids = np.full(64, -1, dtype=np.int64)
    jit.serial_twin(_thread_ids)(ids)
    assert set(ids.tolist()) == {0}
    assert jit.serial_twin(_thread_ids) is jit.serial_twin(_thread_ids)


def test_readonly_is_a_view_that_cannot_be_written():
    a = np.arange(6.0)
    view = jit.readonly(a)
    assert view.base is a and not view.flags.writeable and a.flags.writeable


def test_set_num_threads_returns_the_previous_setting_to_restore():
    before = fastcnn.set_num_threads(3)
    try:
        assert fastcnn.get_num_threads() == 3
        assert fastcnn.set_num_threads(1) == 3
    finally:
        assert fastcnn.set_num_threads(before) == 1
    with pytest.raises(ValueError, match="n=0"):
        fastcnn.set_num_threads(0)
