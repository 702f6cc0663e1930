"""fastcnn.dask: the same ops on chunked arrays equal the whole-array call.

Batch chunks run the whole call per block of images, so an exact backend gives the same
bits; spatial chunks read halos and their GEMMs have other shapes, so they agree within
rounding. dW and db are sums of per-block partials in another order: within rounding.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

import fastcnn
import fastcnn.dask as fd
from fastcnn import registry
from fastcnn.dask import _tasks
from fastcnn.registry import BackendBase, BackendUnsupported

#: Normwise tolerance of a different summation order (relative to the result's largest
#: magnitude): float32 rounding over a few hundred terms, float64 likewise.
RTOL = {"float32": 1e-5, "float64": 1e-12}
EXACT = ("naive", "im2col", "numba")
POOL_MODES = ("max", "mean", "min")

#: Convolutions: input shape, its chunks, filter shape, parameters. Every case has
#: spatial chunks; the comments say what each one exercises.
CONV_CASES: list[tuple[tuple[int, ...], tuple[Any, ...], tuple[int, ...], dict[str, Any]]] = [
    # uneven last chunks on every axis, padding 1
    ((3, 4, 13, 11), (2, 3, 5, 4), (6, 4, 3, 3), dict(padding=1)),
    # chunks of 2 rows against a halo of 8 (5 taps, dilation 2), asymmetric padding
    ((1, 2, 12, 10), (1, 2, 2, 3), (3, 2, 5, 3), dict(dilation=(2, 1), padding=(3, 1, 2, 0))),
    # stride 2 with chunks that are not multiples of it
    ((2, 3, 15, 14), (2, 3, (4, 5, 6), 5), (4, 3, 4, 3), dict(stride=2, padding=2)),
    # padding "same" with an even kernel (the odd cell goes to the bottom/right)
    ((1, 2, 9, 9), (1, 1, 4, 4), (2, 2, 4, 2), dict(padding="same", dilation=(1, 2))),
    # groups with channel chunks on group borders (kept) ...
    ((2, 4, 8, 9), (1, 2, 3, 4), (6, 2, 3, 3), dict(groups=2, stride=(1, 2), padding=1)),
    # ... and across them (gathered into one block)
    ((1, 6, 7, 8), (1, (1, 5), 3, 3), (6, 2, 3, 3), dict(groups=3, padding=(0, 1))),
    # depthwise, one channel per chunk
    ((1, 3, 10, 10), (1, 1, 4, 3), (3, 1, 3, 3), dict(groups=3, stride=2, padding=1)),
    # windows wholly inside a wide padding (the 1x1 kernel sees only zeros there)
    ((1, 2, 5, 6), (1, 2, 2, 2), (3, 2, 1, 1), dict(stride=2, padding=(3, 4, 0, 5))),
]

#: Poolings: input shape, chunks, parameters (``dilation`` for max/min only,
#: ``count_include_pad`` for mean only).
POOL_CASES: list[tuple[tuple[int, ...], tuple[Any, ...], dict[str, Any]]] = [
    ((2, 3, 13, 11), (1, 2, 4, 3), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 2, 9, 7), (2, 1, (3, 1, 5), 2), dict(kernel_size=2)),  # odd sizes, default stride
    ((1, 2, 11, 10), (1, 2, 1, 2), dict(kernel_size=3, stride=1, padding=1, dilation=2)),
    ((1, 2, 14, 9), (1, 1, 5, 4), dict(kernel_size=(3, 2), stride=(3, 1), padding=(1, 1))),
    (  # ceil_mode windows past the border, divided by their real cells only
        (1, 2, 8, 10),
        (1, 2, 3, 3),
        dict(kernel_size=3, stride=3, padding=1, ceil_mode=True, count_include_pad=False),
    ),
]


def _data(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _pool_params(mode: str, params: dict[str, Any]) -> dict[str, Any]:
    drop = "dilation" if mode == "mean" else "count_include_pad"
    return {k: v for k, v in params.items() if k != drop}


def _close(actual: np.ndarray, reference: np.ndarray, dtype: str) -> None:
    assert actual.shape == reference.shape and actual.dtype == reference.dtype
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    np.testing.assert_allclose(actual, reference, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def _conv_both(x, w, b, gy, params, backend, chunks, gy_chunks, compute):
    """The whole-array results and the chunked ones: (y, gx, gw, gb) each."""
    whole = fastcnn.conv2d(x, w, b, **params, backend=backend)
    whole_grads = fastcnn.conv2d_backward(gy, x, w, **params, backend=backend)
    xd, gyd = da.from_array(x, chunks=chunks), da.from_array(gy, chunks=gy_chunks)
    y = fd.conv2d(xd, w, b, **params, backend=backend)
    grads = fd.conv2d_backward(gyd, xd, w, **params, backend=backend)
    return (whole, *whole_grads), compute(y, *grads)


def _threads(*arrays: da.Array) -> tuple[np.ndarray, ...]:
    return dask.compute(*arrays, scheduler="threads")


# --- spatial chunks -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: str(c[3]))
def test_conv_spatial_chunks_equal_the_whole_call(case, dtype):
    x_shape, chunks, w_shape, params = case
    x, w = _data(x_shape, dtype, 1), _data(w_shape, dtype, 2)
    b = _data(w_shape[:1], dtype, 3)
    gy = _data(fastcnn.conv2d(x, w, **params, backend="naive").shape, dtype, 4)
    for backend in ("im2col", "numba"):
        whole, chunked = _conv_both(x, w, b, gy, params, backend, chunks, (1, 2, 3, 4), _threads)
        for name, actual, reference in zip("y x w b".split(), chunked, whole, strict=True):
            assert name and actual.shape == reference.shape
            _close(actual, reference, dtype)


@pytest.mark.parametrize("mode", POOL_MODES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: str(c[2]))
def test_pool_spatial_chunks_equal_the_whole_call(case, mode):
    x_shape, chunks, params = case
    params = _pool_params(mode, params)
    x = _data(x_shape, "float32", 5)
    fwd, bwd = f"{mode}_pool2d", f"{mode}_pool2d_backward"
    for backend in ("naive", "numba"):
        y_ref = getattr(fastcnn, fwd)(x, **params, backend=backend)
        gy = _data(y_ref.shape, "float32", 6)
        gx_ref = getattr(fastcnn, bwd)(gy, x, **params, backend=backend)
        xd, gyd = da.from_array(x, chunks=chunks), da.from_array(gy, chunks=(1, 1, 2, 3))
        y = getattr(fd, fwd)(xd, **params, backend=backend)
        gx = getattr(fd, bwd)(gyd, xd, **params, backend=backend)
        assert y.chunks[:2] == xd.chunks[:2] and gx.chunks == xd.chunks
        y, gx = _threads(y, gx)
        _close(y, y_ref, "float32")
        _close(gx, gx_ref, "float32")


def _random_chunks(rng: np.random.Generator, n: int) -> tuple[int, ...]:
    """Random chunk sizes summing to ``n``, single rows included."""
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(1, n // 2 + 2)))
    sizes[-1] -= sum(sizes) - n
    return tuple(c for c in sizes if c)


def _random_case(rng: np.random.Generator) -> tuple[str, np.ndarray, Any, dict[str, Any]]:
    """An op, its input, its weights (conv) or kernel size (pool) and parameters."""
    c = int(rng.integers(1, 4))
    x = rng.standard_normal((int(rng.integers(1, 3)), c, *rng.integers(3, 14, size=2)))
    k = tuple(int(v) for v in rng.integers(1, 5, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=2))
    op = str(rng.choice(["conv2d", *POOL_MODES]))
    if op == "conv2d":
        groups = int(rng.choice([1, c]))
        w = rng.standard_normal((groups * int(rng.integers(1, 3)), c // groups, *k))
        padding = tuple(int(v) for v in rng.integers(0, 4, size=4))
        return op, x, w, dict(stride=stride, dilation=dilation, padding=padding, groups=groups)
    params = dict(
        stride=stride,
        padding=(int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1))),
        ceil_mode=bool(rng.integers(0, 2)),
        dilation=dilation,
        count_include_pad=bool(rng.integers(0, 2)),
    )
    return op, x, k, _pool_params(op, params)


def test_random_parameters_and_chunkings():
    # The naive backend in float64 sums each window in the same order whatever the
    # block, so forward results and dL/dx agree to the last bits; dW to rounding.
    rng = np.random.default_rng(2024)
    done = 0
    while done < 60:
        op, x, arg, params = _random_case(rng)
        fwd = getattr(fastcnn, op if op == "conv2d" else f"{op}_pool2d")
        try:
            y_ref = fwd(x, arg, **params, backend="naive")
        except ValueError:  # a window larger than the padded input
            continue
        gy = rng.standard_normal(y_ref.shape)
        xd = da.from_array(x, chunks=tuple(_random_chunks(rng, n) for n in x.shape))
        gyd = da.from_array(gy, chunks=tuple(_random_chunks(rng, n) for n in gy.shape))
        name = op if op == "conv2d" else f"{op}_pool2d"
        y = getattr(fd, name)(xd, arg, **params, backend="naive")
        grads = getattr(fd, f"{name}_backward")(gyd, xd, arg, **params, backend="naive")
        ref = getattr(fastcnn, f"{name}_backward")(gy, x, arg, **params, backend="naive")
        got = dask.compute(y, grads, scheduler="sync")
        for actual, reference in zip(got, (y_ref, ref), strict=True):
            if isinstance(reference, tuple):
                for a, r in zip(actual, reference, strict=True):
                    _close(a, r, "float64")
            else:
                _close(actual, reference, "float64")
        done += 1


# --- batch chunks: the same bits -------------------------------------------------------------


@pytest.mark.parametrize("backend", EXACT)
def test_batch_chunks_give_the_same_bits(backend):
    x, w, b = _data((5, 3, 9, 8), "float32", 7), _data((4, 3, 3, 3), "float32", 8), None
    params = dict(stride=(1, 2), padding=1)
    gy = _data(fastcnn.conv2d(x, w, **params).shape, "float32", 9)
    whole, chunked = _conv_both(x, w, b, gy, params, backend, (2, 3, 9, 8), (3, 4, 9, 4), _threads)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
    _close(chunked[2], whole[2], "float32")  # dW, db: partial sums over batch blocks
    _close(chunked[3], whole[3], "float32")
    xd = da.from_array(x, chunks=(2, 3, 9, 8))
    for mode in POOL_MODES:
        params = _pool_params(mode, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True))
        y_ref = getattr(fastcnn, f"{mode}_pool2d")(x, **params, backend=backend)
        gy = _data(y_ref.shape, "float32", 10)
        gx_ref = getattr(fastcnn, f"{mode}_pool2d_backward")(gy, x, **params, backend=backend)
        y = getattr(fd, f"{mode}_pool2d")(xd, **params, backend=backend)
        gyd = da.from_array(gy, chunks=(2, 3, 5, 4))
        gx = getattr(fd, f"{mode}_pool2d_backward")(gyd, xd, **params, backend=backend)
        y, gx = _threads(y, gx)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(gx, gx_ref)


def test_unbatched_input_gives_unbatched_results():
    x, w = _data((2, 10, 9), "float64", 11), _data((3, 2, 3, 3), "float64", 12)
    xd = da.from_array(x, chunks=(2, 4, 4))
    y = fd.conv2d(xd, w, padding=1, backend="naive")
    gy = _data(y.shape, "float64", 13)
    grads = fd.conv2d_backward(da.from_array(gy, chunks=(3, 5, 5)), xd, w, padding=1)
    p = fd.max_pool2d(xd, 2, ceil_mode=True)
    gp = fd.max_pool2d_backward(da.ones(p.shape, chunks=3), xd, 2, ceil_mode=True)
    assert (y.ndim, grads.x.ndim, p.ndim, gp.ndim) == (3, 3, 3, 3)
    y, gx, gw, gb, p, gp = _threads(y, *grads, p, gp)
    ref = fastcnn.conv2d_backward(gy, x, w, padding=1, backend="naive")
    _close(y, fastcnn.conv2d(x, w, padding=1, backend="naive"), "float64")
    for actual, reference in zip((gx, gw, gb), ref, strict=True):
        _close(actual, reference, "float64")
    _close(p, fastcnn.max_pool2d(x, 2, ceil_mode=True), "float64")
    _close(gp, fastcnn.max_pool2d_backward(np.ones(p.shape), x, 2, ceil_mode=True), "float64")


def test_weights_may_be_dask_arrays():
    x, w = _data((2, 3, 9, 9), "float64", 21), _data((4, 3, 3, 3), "float64", 22)
    b = _data((4,), "float64", 23)
    xd = da.from_array(x, chunks=(1, 3, 4, 5))
    wd, bd = da.from_array(w, chunks=(2, 2, 3, 3)), da.from_array(b, chunks=3)
    y = fd.conv2d(xd, wd, bd, padding=1, backend="naive")
    gy = _data(y.shape, "float64", 24)
    grads = fd.conv2d_backward(da.from_array(gy, chunks=4), xd, wd, padding=1, backend="naive")
    ref = fastcnn.conv2d_backward(gy, x, w, padding=1, backend="naive")
    got = _threads(y, *grads)
    _close(got[0], fastcnn.conv2d(x, w, b, padding=1, backend="naive"), "float64")
    for actual, reference in zip(got[1:], ref, strict=True):
        _close(actual, reference, "float64")


def test_need_skips_gradients():
    x, w = _data((2, 2, 6, 6), "float64", 14), _data((2, 2, 3, 3), "float64", 15)
    gy = da.ones((2, 2, 4, 4), chunks=2)
    xd = da.from_array(x, chunks=3)
    assert fd.conv2d_backward(gy, xd, w, need=("w",)).x is None
    only_b = fd.conv2d_backward(gy, xd, w, need=("b",), backend="naive")
    assert only_b.x is None and only_b.w is None
    np.testing.assert_allclose(only_b.b.compute(scheduler="threads"), [32.0, 32.0])
    assert fd.conv2d_backward(gy, xd, w, bias=False, need=("b",)).b is None
    with pytest.raises(ValueError, match="need"):
        fd.conv2d_backward(gy, xd, w, need=("y",))


# --- the backend travels with the tasks -----------------------------------------------------


class Recording(BackendBase):
    """The naive backend under another name, counting the blocks it runs."""

    name = "recording"
    summary = "naive, counting calls, for tests"
    ops = frozenset({"conv2d", "pool2d"})

    def __init__(self) -> None:
        self.calls = 0

    def conv2d(self, x, w, b, spec):
        self.calls += 1
        return registry.get_backend("naive").conv2d(x, w, b, spec)

    def pool2d(self, x, spec):
        self.calls += 1
        return registry.get_backend("naive").pool2d(x, spec)


@pytest.fixture
def recording():
    plugin = Recording()
    fastcnn.register_backend(plugin)
    yield plugin
    fastcnn.unregister_backend(plugin.name)


def test_backend_is_resolved_when_the_graph_is_built(recording):
    # Worker threads do not see the caller's use_backend block: the tasks must carry it.
    x, w = _data((2, 2, 8, 8), "float32", 16), _data((2, 2, 3, 3), "float32", 17)
    xd = da.from_array(x, chunks=(1, 2, 4, 8))
    with fastcnn.use_backend(recording.name):
        y = fd.conv2d(xd, w)
        p = fd.mean_pool2d(xd, 2)
    y, p = _threads(y, p)
    assert recording.calls == 4 + 4  # one per block of each
    np.testing.assert_array_equal(y, fastcnn.conv2d(x, w, backend="naive"))
    np.testing.assert_array_equal(p, fastcnn.mean_pool2d(x, 2, backend="naive"))
    fastcnn.set_default_backend(recording.name)
    try:
        y = fd.max_pool2d(xd, 2)
    finally:
        fastcnn.set_default_backend("auto")
    y.compute(scheduler="threads")
    assert recording.calls == 8 + 4
    # "auto" is passed on as such, and chooses per block.
    calls = [t[-1] for t in fd.conv2d(xd, w).dask.values() if t[0] is _tasks.conv_forward]
    assert calls and all(dict(c.kwargs)["backend"] == "auto" for c in calls)


def test_errors_are_raised_when_the_graph_is_built(recording):
    xd = da.ones((1, 4, 8, 8), chunks=4)
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=4"):
        fd.conv2d(xd, np.ones((3, 4, 3, 3)), groups=3)
    with pytest.raises(ValueError, match="grad_y has shape"):
        fd.conv2d_backward(da.ones((1, 2, 5, 5)), xd, w, groups=2)
    with pytest.raises(ValueError, match="padding"):
        fd.max_pool2d(xd, 2, padding=2)
    with pytest.raises(ValueError, match="naive"):  # an unknown name lists the known ones
        fd.mean_pool2d(xd, 2, backend="no-such-backend")
    with pytest.raises(BackendUnsupported, match="recording"):
        fd.conv2d_backward(da.ones((1, 2, 6, 6)), xd, w, groups=2, backend=recording.name)
    with pytest.raises(TypeError, match="complex"):
        fd.min_pool2d(xd.astype(complex), 2)


def test_nothing_is_computed_until_asked():
    def fail() -> np.ndarray:
        raise RuntimeError("computed")

    x = da.from_delayed(dask.delayed(fail)(), (2, 2, 6, 6), dtype=np.float32)
    y = fd.max_pool2d(fd.conv2d(x.rechunk(3), np.ones((2, 2, 3, 3))), 2)
    assert y.shape == (2, 2, 2, 2) and y.dtype == np.float64
    with pytest.raises(RuntimeError, match="computed"):
        y.compute(scheduler="threads")


# --- the front end and the import -----------------------------------------------------------


def test_front_end_refuses_dask_arrays_and_points_to_fastcnn_dask():
    xd, x = da.ones((1, 1, 4, 4)), np.ones((1, 1, 4, 4))
    with pytest.raises(TypeError, match=r"x is a dask array.*fastcnn\.dask"):
        fastcnn.conv2d(xd, np.ones((1, 1, 3, 3)))
    with pytest.raises(TypeError, match=r"grad_y is a dask array.*fastcnn\.dask"):
        fastcnn.max_pool2d_backward(da.ones((1, 1, 2, 2)), x, 2)
    with pytest.raises(TypeError, match=r"w is a dask array"):
        fastcnn.conv2d(x, da.ones((1, 1, 3, 3)))


def test_import_fastcnn_loads_no_dask():
    code = (
        "import sys, fastcnn; print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- on a cluster of worker processes -------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c


def test_on_a_local_cluster(client):
    x_shape, chunks, w_shape, params = CONV_CASES[2]  # stride 2, uneven chunks
    x, w, b = _data(x_shape, "float32", 18), _data(w_shape, "float32", 19), None
    gy = _data(fastcnn.conv2d(x, w, **params).shape, "float32", 20)

    def on_cluster(*arrays):
        return client.gather(client.compute(list(arrays)))

    whole, chunked = _conv_both(x, w, b, gy, params, "im2col", chunks, (1, 2, 3, 4), on_cluster)
    for actual, reference in zip(chunked, whole, strict=True):
        _close(actual, reference, "float32")
    # Batch chunks with the backend of a use_backend block: the naive backend's bits.
    xd = da.from_array(x, chunks=(1, 3, 15, 14))
    with fastcnn.use_backend("naive"):
        y = fd.conv2d(xd, w, **params)
        p = fd.max_pool2d(xd, 3, stride=2, ceil_mode=True)
        gp = fd.max_pool2d_backward(
            da.ones(p.shape, chunks=1, dtype=np.float32), xd, 3, stride=2, ceil_mode=True
        )
    y, p, gp = on_cluster(y, p, gp)
    np.testing.assert_array_equal(y, fastcnn.conv2d(x, w, **params, backend="naive"))
    np.testing.assert_array_equal(p, fastcnn.max_pool2d(x, 3, stride=2, ceil_mode=True))
    ones = np.ones(p.shape, np.float32)
    np.testing.assert_array_equal(
        gp, fastcnn.max_pool2d_backward(ones, x, 3, stride=2, ceil_mode=True)
    )
