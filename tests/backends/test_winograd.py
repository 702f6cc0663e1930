"""The Winograd backend beyond the sweep (test_sweep.py): its transform matrices, every tile
size on 3x3 stride-1 cases (padding beyond the kernel, groups, tiles cut by the edge),
gradients, refusals, non-finite input, chunking, determinism and the per-call tile."""

from __future__ import annotations

import multiprocessing
import threading
from fractions import Fraction

import numpy as np
import pytest
from helpers import case_id, check_conv, check_conv_fd
from threadpoolctl import threadpool_info

import fastcnn
from fastcnn.backends import winograd
from fastcnn.backends.winograd import correlate, filter_grad
from fastcnn.crosscheck.bounds import winograd_growth
from fastcnn.registry import get_backend
from fastcnn.spec import make_conv_spec

VARIANTS = ["winograd2", "winograd4", "winograd"]
DTYPES = ["float32", "float64"]
CASES = [
    dict(n=2, cin=3, h=7, w=6, cout=4, k=(3, 3), padding=1),
    dict(n=1, cin=4, h=9, w=11, cout=6, k=(3, 3), padding=(1, 2, 0, 3), groups=2),
    dict(n=2, cin=4, h=6, w=5, cout=4, k=(3, 3), padding=1, groups=4),  # depthwise
    dict(n=1, cin=2, h=3, w=4, cout=3, k=(3, 3), padding=4, bias=False),  # pad > 2: dX crops
    dict(n=3, cin=5, h=13, w=10, cout=7, k=(3, 3)),  # no padding, tiles cut by the edge
    dict(n=1, cin=3, h=1, w=1, cout=2, k=(3, 3), padding=1),
    dict(n=2, cin=6, h=8, w=8, cout=6, k=(3, 3), padding="same", groups=3),
]


def _frac(rows):
    return np.array([[Fraction(v) for v in row] for row in rows], dtype=object)


def test_f23_matrices_are_wincnns():
    at, g, bt = winograd.transform_matrices(2)
    half = Fraction(1, 2)
    assert (at == _frac([[1, 1, 1, 0], [0, 1, -1, 1]])).all()
    assert (g == _frac([[1, 0, 0], [half, half, half], [half, -half, half], [0, 0, 1]])).all()
    assert (bt == _frac([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]])).all()


@pytest.mark.parametrize("m", winograd.TILES)
def test_matrices_compute_correlation_exactly(m):
    # In exact arithmetic A^T [(G g) * (B^T d)] is the correlation of d with g.
    at, g, bt = winograd.transform_matrices(m)
    rng = np.random.default_rng(m)
    for _ in range(5):
        d = np.array([Fraction(int(v)) for v in rng.integers(-9, 10, m + 2)], dtype=object)
        f = np.array([Fraction(int(v)) for v in rng.integers(-9, 10, 3)], dtype=object)
        got = at.dot(g.dot(f) * bt.dot(d))
        want = [sum(f[k] * d[i + k] for k in range(3)) for i in range(m)]
        assert list(got) == want


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("backend", VARIANTS)
def test_matches_naive(backend, case, dtype):
    check_conv(backend, case, dtype)


@pytest.mark.parametrize("case", CASES[:4], ids=case_id)
@pytest.mark.parametrize("backend", VARIANTS[:2])
def test_gradients_match_finite_differences(backend, case):
    check_conv_fd(backend, case)


@pytest.mark.parametrize(
    ("params", "w_shape", "reason"),
    [
        (dict(stride=2), (2, 2, 3, 3), "stride 1 only"),
        (dict(dilation=2, padding=2), (2, 2, 3, 3), "dilation 1 only"),
        (dict(padding=2), (2, 2, 5, 5), "3x3 kernels only"),
        (dict(), (2, 2, 1, 1), "3x3 kernels only"),
    ],
)
@pytest.mark.parametrize("backend", VARIANTS)
def test_other_convolutions_are_refused_with_the_reason(backend, params, w_shape, reason):
    x = np.ones((1, 2, 9, 9))
    w = np.ones(w_shape)
    with pytest.raises(fastcnn.BackendUnsupported, match=reason):
        fastcnn.conv2d(x, w, backend=backend, **params)
    y = fastcnn.conv2d(x, w, backend="naive", **params)
    with pytest.raises(fastcnn.BackendUnsupported, match=reason):
        fastcnn.conv2d_backward(np.ones_like(y), x, w, backend=backend, **params)


def test_pooling_is_refused():
    with pytest.raises(fastcnn.BackendUnsupported, match="no pool2d"):
        fastcnn.max_pool2d(np.ones((1, 1, 4, 4)), 2, backend="winograd")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("backend", VARIANTS)
def test_non_finite_input_is_refused_by_name_and_avoided_by_auto(backend, bad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8, 12, 12))
    x[0, 0, 5, 5] = bad
    w = rng.standard_normal((8, 8, 3, 3))
    with pytest.raises(fastcnn.BackendUnsupported, match="NaN or Inf"):
        fastcnn.conv2d(x, w, padding=1, backend=backend)
    y = fastcnn.conv2d(x, w, padding=1, backend="auto")
    ref = fastcnn.conv2d(x, w, padding=1, backend="naive")
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(ref))


@pytest.mark.parametrize("backend", VARIANTS[:2])
def test_chunks_and_repeated_calls_agree(backend):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 11, 9))
    w = rng.standard_normal((6, 5, 3, 3))
    gy = rng.standard_normal((3, 6, 11, 9))
    whole = fastcnn.conv2d(x, w, padding=1, backend=backend)
    whole_g = fastcnn.conv2d_backward(gy, x, w, padding=1, backend=backend)
    # Deterministic: the same call twice is bit-identical.
    np.testing.assert_array_equal(fastcnn.conv2d(x, w, padding=1, backend=backend), whole)
    again = fastcnn.conv2d_backward(gy, x, w, padding=1, backend=backend)
    for got, want in zip(again, whole_g, strict=True):
        np.testing.assert_array_equal(got, want)
    before = fastcnn.get_workspace_limit()
    fastcnn.set_workspace_limit(1)  # one tile per chunk
    try:
        chunked = fastcnn.conv2d(x, w, padding=1, backend=backend)
        chunked_g = fastcnn.conv2d_backward(gy, x, w, padding=1, backend=backend)
    finally:
        fastcnn.set_workspace_limit(before)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)
    for got, want in zip(chunked_g, whole_g, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("span", [1, 3])
@pytest.mark.parametrize("by_channels", [False, True], ids=["by-tiles", "by-channels"])
@pytest.mark.parametrize("backend", VARIANTS[:2])
def test_both_loop_orders_and_wide_tasks_match_naive(
    backend, by_channels, span, dtype, monkeypatch
):
    # The call picks a loop order by its shape; force each, with tasks of one and of
    # several blocks of tiles, whole and in chunks (dW's later chunks add to the first);
    # by tiles, with the 20 output channels of a group in GEMMs of 7, 7 and 6; by
    # channels, with filters transformed 2 input channels at a time (3 per group
    # forward, 20 for dX), each block's GEMMs adding to the last's.
    monkeypatch.setattr(correlate, "_by_channels", lambda tiles, out_g: by_channels)
    monkeypatch.setattr(correlate, "_SPAN", span)
    monkeypatch.setattr(correlate, "_tile_task_o_block", lambda *shape: 7)
    monkeypatch.setattr(correlate, "_channel_task_c_block", lambda *shape: 2)
    case = dict(n=3, cin=6, h=19, w=23, cout=40, k=(3, 3), padding=(1, 0, 2, 1), groups=2)
    check_conv(backend, case, dtype)
    before = fastcnn.get_workspace_limit()
    fastcnn.set_workspace_limit(20_000)  # a few tiles per chunk
    try:
        check_conv(backend, case, dtype, seed=5)
    finally:
        fastcnn.set_workspace_limit(before)


def _recording(name, function, calls):
    """``function``, which first appends ``name`` to ``calls``."""

    def recorded(*args):
        calls.append(name)
        return function(*args)

    return recorded


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize(
    "path, groups", [("chunks", 1), ("chunks", 2), ("tiles", 1), ("channels", 1), ("channels", 2)]
)
@pytest.mark.parametrize("backend", VARIANTS[:2])
def test_every_filter_gradient_path_matches_naive(backend, path, groups, size, dtype, monkeypatch):
    # dW's products run through whole chunks, in the workers' own buffers by tiles
    # (ungrouped layers only), or by blocks of output channels out-transformed in cache; force
    # each. 3 * 5 * 6 = 90 F(4,3) tiles (324 at F(2,3)): tasks of 1 block of tiles leave
    # the last one short; of 3 blocks at F(4,3), one task, fewer than the workers. Blocks
    # of 3 output channels do not divide 8 (or a group's 4).
    ran = []
    for name in ("_products_by_tiles", "_products_by_chunks"):
        monkeypatch.setattr(filter_grad, name, _recording(name, getattr(filter_grad, name), ran))
    monkeypatch.setattr(filter_grad, "_dw_by_tiles", lambda *a: path == "tiles")
    monkeypatch.setattr(filter_grad, "_dw_by_channels", lambda *a: path == "channels")
    monkeypatch.setattr(filter_grad, "_DW_SPAN", size)
    monkeypatch.setattr(filter_grad, "_DW_O_BLOCK", 3 * size)
    case = dict(n=3, cin=6, h=19, w=23, cout=8, k=(3, 3), padding=(1, 0, 2, 1), groups=groups)
    check_conv(backend, case, dtype)
    expected = {"tiles": "_products_by_tiles", "chunks": "_products_by_chunks"}.get(path)
    assert set(ran) == ({expected} if expected else set())


def test_filter_gradient_runs_by_tiles_on_large_maps_and_by_channels_on_deep_small_ones():
    # At two workers and F(4,3): ResNet-18's 64@56 layer (784 tiles) by tiles; 256@14 (64
    # tiles, 9.4 MB of products) by output channels; 128@28 (2.4 MB) by chunks.
    before = fastcnn.set_num_threads(2)
    try:
        assert filter_grad._dw_by_tiles(784, 64, 64, groups=1)
        assert not filter_grad._dw_by_tiles(64, 256, 256, groups=1)
        assert not filter_grad._dw_by_tiles(784, 64, 64, groups=2)
        assert filter_grad._dw_by_channels(_spec(256, 14, 256), 4)
        assert not filter_grad._dw_by_channels(_spec(128, 28, 128), 4)
    finally:
        fastcnn.set_num_threads(before)


def test_forward_by_tiles_takes_output_channels_in_blocks_that_stay_in_cache():
    # F(4,3) in float32, tasks of 32 tiles: 4.5 KiB of transformed data per channel.
    block = correlate._tile_task_o_block
    assert block(4, 32, 128, 128, 4) == 128  # 1.2 MB with every channel: one GEMM
    assert block(4, 32, 256, 256, 4) == 64  # VGG-16's 256@56: 2.4 MB, then 1.8, then 1.5
    assert block(4, 32, 128, 128, 8) == 32  # float64: twice the bytes, the input alone 1.2 MB
    assert block(4, 32, 512, 512, 4) == 32  # never narrower than 32
    assert block(2, 32, 256, 256, 4) == 256  # F(2,3): 16 points, 1 MB


def test_forward_by_channels_transforms_filters_in_blocks_of_input_channels_on_deep_layers():
    # F(4,3) in float32, tasks of 32 output channels: 4.5 KiB of filters per input channel.
    block = correlate._channel_task_c_block
    assert block(4, 128, 4) == 128  # 576 KiB: at once
    assert block(4, 256, 4) == 128  # ResNet-18's 256@14; 1.1 MiB at once would not fit
    assert block(4, 512, 4) == 128  # VGG-16's 512@28 and 512@14
    assert block(4, 256, 8) == 64  # float64
    assert block(2, 512, 4) == 256  # F(2,3): 16 points, 2 KiB per input channel
    assert block(2, 256, 4) == 256
    assert block(4, 4096, 8) == 64  # halved until under 640 KiB
    assert block(4, 100, 4) == 100  # fewer channels than a block: all at once


def _blas_threads() -> list[int]:
    return sorted(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


def test_eight_threads_at_once_match_a_single_call_and_leave_blas_threads_alone():
    # Its kernels hold BLAS at one thread while their workers call it; calls from many
    # Python threads must neither interleave those limits nor leave BLAS at one thread.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 24, 12, 12)).astype(np.float32)

    def work():
        y = fastcnn.conv2d(x, w, padding=1, backend="winograd4")
        return (y, *fastcnn.conv2d_backward(gy, x, w, padding=1, backend="winograd4"))

    expected = work()  # (also loads the BLAS the kernels call)
    blas_before = _blas_threads()
    results: list = [None] * 8
    barrier = threading.Barrier(8)

    def worker(k: int) -> None:
        barrier.wait()
        results[k] = [work() for _ in range(3)]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for runs in results:
        for run in runs:
            for got, want in zip(run, expected, strict=True):
                np.testing.assert_array_equal(got, want)
    assert _blas_threads() == blas_before


def _forked_child(queue, x, w) -> None:
    queue.put(fastcnn.conv2d(x, w, padding=1, backend="winograd4"))


def test_forked_child_after_a_parent_call_computes_and_exits_cleanly():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 8, 9, 9))
    w = rng.standard_normal((8, 8, 3, 3))
    expected = fastcnn.conv2d(x, w, padding=1, backend="winograd4")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_forked_child, args=(queue, x, w))
    child.start()
    got = queue.get(timeout=300)
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(got, expected)


def _spec(cin, size, cout, batch=4, dtype="float32"):
    x = np.empty((batch, cin, size, size), dtype=dtype)
    w = np.empty((cout, cin, 3, 3), dtype=dtype)
    return make_conv_spec(x, w, bias=True, padding=1, dtype=np.dtype(dtype))


def test_the_auto_tile_is_the_cheaper_variant_and_explain_shows_it():
    auto = get_backend("winograd")
    for spec in (_spec(64, 56, 64), _spec(512, 7, 512), _spec(3, 224, 64)):
        for op in ("conv2d", "conv2d_backward"):
            by_tile = {m: get_backend(f"winograd{m}").estimate_seconds(op, spec) for m in (2, 4)}
            m = auto.tile_for(op, spec)
            assert by_tile[m] == min(by_tile.values())
            assert auto.estimate_seconds(op, spec) == by_tile[m]
    text = str(fastcnn.explain("conv2d", (4, 64, 56, 56), (64, 64, 3, 3), padding=1))
    assert "winograd2:" in text and "winograd4:" in text


@pytest.mark.parametrize("op", ["conv2d", "conv2d_backward"])
@pytest.mark.parametrize(
    ("cin", "size", "cout"),
    [(3, 32, 16), (16, 32, 16), (64, 8, 64)],  # ResNet-20's first, 16@32 and 64@8 layers
)
def test_auto_leaves_winograd_out_of_small_calls_where_its_fixed_costs_decide(op, cin, size, cout):
    # At batch 2 winograd4 took 1.4-2.5x the fastest backend's time on these (its
    # per-call transforms and launches, 50-110 us); before the cost model had small
    # layers to fit its intercept on, auto picked it on every one.
    spec = _spec(cin, size, cout, batch=2)
    winner = min(
        ("im2col", "numba", "winograd"),
        key=lambda name: get_backend(name).estimate_seconds(op, spec),
    )
    assert winner != "winograd"


def test_the_declared_error_model_uses_the_backend_own_matrices_and_grows_with_the_tile():
    models = [get_backend(f"winograd{m}").error_model for m in winograd.TILES]
    assert [m.kind for m in models] == ["winograd"] * len(models)
    assert [m.tile for m in models] == list(winograd.TILES)
    for model in models:
        matrices = winograd.transform_matrices(model.tile)
        for declared, matrix in zip(model.transforms, matrices, strict=True):
            assert np.array_equal(np.array(declared, dtype=float), matrix.astype(float))
    growth = [winograd_growth(m) for m in models]
    assert growth == sorted(growth) and growth[0] > 1
    assert get_backend("winograd").error_model == models[-1]  # the loosest tile it may run


def test_the_generated_kernels_are_current():
    # _kernels.py is generated from the matrices; regenerate it after changing the points.
    from fastcnn.backends.winograd import transforms

    assert transforms.KERNEL_FILE.read_text() == transforms.generate()
