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


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_a_launch_calling_blas_holds_every_blas_at_one_thread_and_restores_it():
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that compiled np.dot calls)

    before = _blas_threads()
    seen: list[list[int]] = []

    def kernel(fail: bool) -> None:
        seen.append(_blas_threads())
        if fail:
            raise RuntimeError("the kernel failed")

    jit.launch(kernel, False, calls_blas=True)
    with pytest.raises(RuntimeError, match="kernel failed"):
        jit.launch(kernel, True, calls_blas=True)
    jit.launch(kernel, False)
    assert before  # numpy's and SciPy's (one library where they share it)
    assert seen[:2] == [[1] * len(before)] * 2
    assert seen[2] == before
    assert _blas_threads() == before


@njit
def _add_products(a, b, c):  # type: ignore[no-untyped-def]
    jit.add_product_nt(a, b, c)
    jit.add_product(a, np.ascontiguousarray(b.T), c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 1, 1), (64, 33, 40), (4, 0, 3)])
def test_add_product_and_add_product_nt_add_a_times_b_to_c_in_compiled_code(dtype, shape):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    expected = c.astype(np.float64) + 2 * (a.astype(np.float64) @ b.T.astype(np.float64))
    _add_products(a, b, c)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * max(k, 1))


def test_add_products_refuse_non_contiguous_arrays():
    a = np.ones((4, 6))
    with pytest.raises(numba.core.errors.TypingError):
        _add_products(a[:, ::2], np.ones((2, 3)), np.ones((4, 2)))
