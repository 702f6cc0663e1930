"""The Numba backend beyond the sweep (test_sweep.py): threads, fork, determinism, NaN."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest
from helpers import check_conv

import fastcnn
from fastcnn import jit
from fastcnn.registry import get_backend

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 8, 20, 20)).astype(np.float32)
W = RNG.standard_normal((8, 4, 3, 3)).astype(np.float32)


def _work():
    return (
        fastcnn.conv2d(X, W, padding=1, groups=2, backend="numba"),
        fastcnn.max_pool2d(X, 3, stride=2, padding=1, backend="numba"),
    )


def test_eight_threads_at_once_match_a_single_call_bit_for_bit():
    expected = _work()
    results: list = [None] * 8
    barrier = threading.Barrier(8)

    def worker(k: int) -> None:
        barrier.wait()
        results[k] = [_work() for _ in range(5)]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for per_thread in results:
        for conv, pool in per_thread:
            np.testing.assert_array_equal(conv, expected[0])
            np.testing.assert_array_equal(pool, expected[1])


def _child(queue) -> None:
    conv, pool = _work()
    queue.put((conv, pool, sorted(kernel.__name__ for kernel in jit._serial_twins)))


def _conv_module():
    """The module holding the convolution kernels and the launches of the forward pass."""
    return importlib.import_module(f"{type(get_backend('numba')).__module__}.conv")


def test_forked_child_after_a_parent_call_computes_and_exits_cleanly():
    expected = _work()  # the parent has now run parallel kernels
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    conv, pool, twins = queue.get(timeout=300)
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(conv, expected[0])
    np.testing.assert_array_equal(pool, expected[1])
    if numba.threading_layer() == "omp":
        # OpenMP would kill the child at its first parallel launch: serial twins ran.
        assert {"_conv_forward_grid", "_pool3x3s2_forward"} <= set(twins)
    else:
        assert twins == []


def test_repeated_calls_are_bit_identical_including_gradients():
    gy = RNG.standard_normal((2, 8, 20, 20)).astype(np.float32)
    first = fastcnn.conv2d_backward(gy, X, W, padding=1, groups=2, backend="numba")
    again = fastcnn.conv2d_backward(gy, X, W, padding=1, groups=2, backend="numba")
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_stay_local_like_the_reference(bad):
    x = RNG.standard_normal((1, 2, 9, 9))
    x[0, 1, 4, 5] = bad
    w = RNG.standard_normal((3, 2, 3, 3))
    ours = fastcnn.conv2d(x, w, padding=1, backend="numba")
    ref = fastcnn.conv2d(x, w, padding=1, backend="naive")
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)  # NaN/Inf compare equal
    assert np.isfinite(ours).sum() == np.isfinite(ref).sum() > 0
    for pool in (fastcnn.max_pool2d, fastcnn.min_pool2d, fastcnn.mean_pool2d):
        np.testing.assert_allclose(
            pool(x, 3, stride=2, padding=1, backend="numba"),
            pool(x, 3, stride=2, padding=1, backend="naive"),
            rtol=1e-12,
        )  # NaN where the reference has NaN, Inf where it has the same Inf


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("size", "kernel", "params"),
    [
        (8, 8, {}),  # a global pool: one window per plane
        (14, 7, {}),
        (13, 5, {"stride": 3, "padding": 2, "count_include_pad": False}),
        (12, 3, {"stride": 1, "padding": 1}),
        (11, 3, {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
        (9, (2, 4), {"stride": (1, 3), "padding": (1, 2)}),
    ],
)
def test_mean_pooling_backward_spreads_each_share_like_the_reference(size, kernel, params, dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 5, size, size)).astype(dtype)
    y = fastcnn.mean_pool2d(x, kernel, backend="naive", **params)
    gy = rng.standard_normal(y.shape).astype(dtype)
    got = fastcnn.mean_pool2d_backward(gy, x, kernel, backend="numba", **params)
    want = fastcnn.mean_pool2d_backward(gy, x, kernel, backend="naive", **params)
    tol = 1e-5 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert got.dtype == np.dtype(dtype)


def test_set_num_threads_is_honoured():
    # Numba's thread count is per calling thread and is set by each launch: after a call
    # it shows what the kernels ran with.
    before = fastcnn.get_num_threads()
    try:
        for n in (1, 2):
            fastcnn.set_num_threads(n)
            one = _work()
            assert numba.get_num_threads() == min(n, numba.config.NUMBA_NUM_THREADS)
    finally:
        fastcnn.set_num_threads(None)
    assert fastcnn.get_num_threads() == before
    for a, b in zip(one, _work(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("stride", [1, 2])
def test_forward_in_image_and_channel_chunks_matches_the_reference(monkeypatch, dtype, stride):
    # Eight input channels per group and one output channel: the padded phase copy of the
    # input is far larger than the output, so the forward runs in chunks of images and of
    # in-group channels (later chunks adding to the output), bias added once.
    module = _conv_module()
    monkeypatch.setattr(module, "LAYOUT_FLOOR", 0)
    launches = []
    real_launch = module.launch
    monkeypatch.setattr(
        module,
        "launch",
        lambda kernel, *args: (launches.append(kernel), real_launch(kernel, *args)),
    )
    case = {"n": 3, "cin": 16, "h": 9, "w": 9, "cout": 2, "k": (3, 3), "stride": stride}
    check_conv("numba", {**case, "groups": 2, "padding": 1}, dtype)
    grid_launches = [k for k in launches if k is module._conv_forward_grid]
    assert len(grid_launches) >= 2 * 8  # two or more chunks of images, each in 8 of channels


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "10000"), ({"OMP_WAIT_POLICY": "ACTIVE"}, None), ({"GOMP_SPINCOUNT": "7"}, "7")],
)
def test_openmp_threads_spin_briefly_unless_the_user_says_otherwise(env, expected, tmp_path):
    code = (
        "import os, numpy as np, fastcnn;"
        "fastcnn.max_pool2d(np.ones((1, 1, 4, 4)), 2, backend='numba');"
        "print(os.environ.get('GOMP_SPINCOUNT'))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run(  # outside the source tree: the installed package
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("padding", [0, 1, (1, 0)])
@pytest.mark.parametrize("size", [(7, 7), (8, 11), (3, 3)])
def test_3x3_stride_2_pooling_backward_routes_like_the_general_kernel(dtype, mode, padding, size):
    """The dedicated 3x3 stride-2 backward sends each gradient to the same cell as the
    general kernel (first extreme in row-major order, last NaN, infinities and ties)."""
    from fastcnn.backends.numba import pool, pool_s2
    from fastcnn.spec import make_pool_spec

    rng = np.random.default_rng(11)
    x = rng.integers(-2, 3, (2, 3, *size)).astype(dtype)  # many ties
    x.reshape(-1)[rng.choice(x.size, 6, replace=False)] = np.nan
    x.reshape(-1)[rng.choice(x.size, 6, replace=False)] = -np.inf if mode == "max" else np.inf
    spec = make_pool_spec(x, mode, 3, stride=2, padding=padding, dtype=np.dtype(dtype))
    assert pool_s2.applies(spec)
    gy = rng.integers(1, 9, spec.y_shape).astype(dtype)
    got = pool_s2.backward(gy, x, spec)
    np.testing.assert_array_equal(got, pool.pool2d_backward(gy, x, spec))
    forward = fastcnn.max_pool2d_backward if mode == "max" else fastcnn.min_pool2d_backward
    want = forward(gy, x, 3, stride=2, padding=padding, backend="naive")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("padding", [0, 1, (1, 0), (0, 1)])
@pytest.mark.parametrize("size", [(7, 7), (8, 11), (3, 3), (5, 6), (6, 69)])
def test_3x3_stride_2_pooling_forward_keeps_each_nan_and_the_general_kernels_values(
    dtype, mode, padding, size
):
    """The dedicated 3x3 stride-2 forward runs blocks (in float32) with selects that
    ignore NaN and redoes a block that read one: a NaN at any cell still reaches every
    window holding it, and without NaN the values are the general kernel's, sign of zero
    included."""
    from fastcnn.backends.numba import pool, pool_s2
    from fastcnn.spec import make_pool_spec

    forward = fastcnn.max_pool2d if mode == "max" else fastcnn.min_pool2d
    rng = np.random.default_rng(13)
    values = np.array([-0.0, 0.0, -1.0, 1.0, np.inf, -np.inf], dtype=dtype)
    x = rng.choice(values, (3, 3, *size))  # ties, zeros of both signs, infinities
    x[1, 2] = np.inf if mode == "max" else -np.inf  # a plane of one infinity
    # Planes whose windows' extremes are mostly zeros of both signs: the first one wins.
    x[2] = rng.choice(values[:3] * (1 if mode == "max" else -1), (3, *size))
    spec = make_pool_spec(x, mode, 3, stride=2, padding=padding, dtype=np.dtype(dtype))
    assert pool_s2.applies(spec)
    got = pool_s2.forward(x, spec)
    general = pool.pool2d(x, spec)
    np.testing.assert_array_equal(got, general)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(general))
    np.testing.assert_array_equal(got, forward(x, 3, stride=2, padding=padding, backend="naive"))
    # One NaN per plane, at every cell in turn, among finite values.
    cells = size[0] * size[1]
    x = rng.standard_normal((1, cells, *size)).astype(dtype)
    x.reshape(cells, cells)[np.arange(cells), np.arange(cells)] = np.nan
    spec = make_pool_spec(x, mode, 3, stride=2, padding=padding, dtype=np.dtype(dtype))
    want = forward(x, 3, stride=2, padding=padding, backend="naive")
    np.testing.assert_array_equal(pool_s2.forward(x, spec), want)  # NaN where it has NaN


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("size", [(8, 8), (9, 14), (2, 62)])
def test_narrow_2x2_pooling_runs_flat_and_matches_the_reference(monkeypatch, dtype, mode, size):
    """Outputs narrower than FLAT_2X2_WIDTH take the flat max/min kernel: the same values
    as the reference with NaN, infinities and ties (an odd last row is in no window)."""
    pool = importlib.import_module(f"{type(get_backend('numba')).__module__}.pool")
    launched = []
    monkeypatch.setattr(pool, "launch", lambda k, *a: (launched.append(k), jit.launch(k, *a)))
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, (2, 3, *size)).astype(dtype)
    x.reshape(-1)[rng.choice(x.size, 8, replace=False)] = np.nan
    x.reshape(-1)[rng.choice(x.size, 8, replace=False)] = np.inf
    x.reshape(-1)[rng.choice(x.size, 8, replace=False)] = -np.inf
    forward = fastcnn.max_pool2d if mode == "max" else fastcnn.min_pool2d
    got = forward(x, 2, backend="numba")
    want = forward(x, 2, backend="naive")
    np.testing.assert_array_equal(got, want)  # NaN where the reference has NaN
    assert launched == [pool._pool2x2_forward_flat]
    monkeypatch.setattr(pool, "FLAT_2X2_WIDTH", 4)  # the wider maps now take the row kernel
    np.testing.assert_array_equal(forward(x, 2, backend="numba"), want)
    assert launched[-1] == (pool._pool2x2_forward_flat if size[1] < 8 else pool._pool2x2_forward)
