"""im2col beyond the sweep (test_sweep.py): chunking, bounded memory, determinism."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from helpers import (
    CONV_SWEEP,
    case_id,
    check_conv,
    check_conv_fd,
    check_pool,
    conv_inputs,
)

import fastcnn
from fastcnn.backends.im2col import by_image, lowering, pointwise
from fastcnn.backends.im2col.lowering import _flat_taps
from fastcnn.ops import CONV2D
from fastcnn.registry import GradNeed, get_backend
from fastcnn.spec import make_conv_spec


@pytest.fixture
def workspace_limit():
    """Set a workspace limit for one test, restoring the previous one afterwards."""
    before = fastcnn.get_workspace_limit()
    yield fastcnn.set_workspace_limit
    fastcnn.set_workspace_limit(before)


@pytest.mark.parametrize("limit", [1, 4000, 40_000])
def test_chunking_by_batch_and_by_rows_gives_the_same_result(workspace_limit, limit):
    case = dict(n=3, cin=4, h=9, w=8, cout=6, k=(3, 3), groups=2, stride=(2, 1), padding=1)
    x, w, b, params = conv_inputs(case)
    gy = np.random.default_rng(5).standard_normal((3, 6, 5, 8))
    whole = fastcnn.conv2d(x, w, b, backend="im2col", **params)
    whole_grads = fastcnn.conv2d_backward(gy, x, w, backend="im2col", **params)
    pools = [fastcnn.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, backend="im2col")]
    workspace_limit(limit)  # 1 byte: one output row of one image at a time
    np.testing.assert_allclose(fastcnn.conv2d(x, w, b, backend="im2col", **params), whole)
    chunked = fastcnn.conv2d_backward(gy, x, w, backend="im2col", **params)
    for got, want in zip(chunked, whole_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(
        fastcnn.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, backend="im2col"), pools[0]
    )
    check_conv("im2col", case, "float64")
    check_pool("im2col", "max", dict(n=2, c=2, h=7, w=7, k=3, stride=2, ceil_mode=True), "float32")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("chunk", ["image", "band", "images"])
def test_the_forward_writing_in_place_matches_naive(workspace_limit, chunk, bias, dtype):
    # Ungrouped layers whose chunks hold one image (or a band of its rows) lower at the
    # output's width and GEMM straight into the output, the bias through a row of ones.
    case = dict(
        n=3, cin=3, h=11, w=13, cout=5, k=(3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)
    )
    case["bias"] = bias
    x, w, _, params = conv_inputs(case)
    spec = make_conv_spec(x, w, bias=bias, dtype=np.dtype(dtype), **params)
    per_image = lowering.row_bytes(spec, CONV2D, spec.out_width) * spec.out_height
    limit = {"image": per_image + 1, "band": per_image // 2, "images": 4 * per_image}[chunk]
    workspace_limit(limit)
    assert lowering.writes_in_place(spec) == (chunk != "images")
    check_conv("im2col", case, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("chunk", ["image", "band", "images"])
@pytest.mark.parametrize(
    "k, padding", [((3, 3), 1), ((3, 3), (2, 0, 1, 1)), ((5, 3), (0, 4, 0, 2)), ((1, 3), (0, 1))]
)
def test_rows_as_wide_as_the_input_lower_by_flat_runs(
    monkeypatch, workspace_limit, k, padding, chunk, dtype
):
    # Stride 1 with rows as wide as the input: each tap's block is one run per image and
    # channel, the wrapped cells and the rows outside the input set to zero afterwards.
    case = dict(n=3, cin=3, h=7, w=6, cout=4, k=k, padding=padding)
    x, w, _, params = conv_inputs(case)
    spec = make_conv_spec(x, w, bias=True, dtype=np.dtype(dtype), **params)
    per_image = lowering.row_bytes(spec, CONV2D, spec.out_width) * spec.out_height
    limit = {"image": per_image + 1, "band": per_image // 3, "images": 4 * per_image}[chunk]
    workspace_limit(limit)
    flat = []
    monkeypatch.setattr(lowering, "_flat_taps", lambda *a: flat.append(_flat_taps(*a)))
    check_conv("im2col", case, dtype)
    assert lowering.row_width(spec) == spec.width == spec.out_width and flat


def _windows_by_slicing(x: np.ndarray, spec, chunk, width: int) -> np.ndarray:
    """The lowered columns ``(C, kh, kw, nb, rows, width)`` of a chunk, by plain NumPy:
    tap (i, j) of output cell (r, q) reads padded cell (r*sh + i*dh, q*sw + j*dw), and
    the columns past the padded input's last one are zero."""
    n0, n1, r0, r1 = chunk
    (kh, kw), (sh, sw), (dh, dw) = spec.kernel, spec.stride, spec.dilation
    top, _, left, _ = spec.padding
    reach_h = (r1 - 1) * sh + dh * (kh - 1) + 1 + sh
    reach_w = (width - 1) * sw + dw * (kw - 1) + 1
    padded = np.zeros(
        (
            n1 - n0,
            spec.in_channels,
            max(reach_h, top + spec.height),
            max(reach_w, left + spec.width),
        )
    )
    padded[:, :, top : top + spec.height, left : left + spec.width] = x[n0:n1]
    cols = np.zeros((spec.in_channels, kh, kw, n1 - n0, r1 - r0, width))
    for i in range(kh):
        for j in range(kw):
            rows = slice(r0 * sh + i * dh, (r1 - 1) * sh + i * dh + 1, sh)
            columns = slice(j * dw, (width - 1) * sw + j * dw + 1, sw)
            cols[:, i, j] = padded[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "geometry",
    [
        dict(k=(3, 3), stride=2, padding=1),
        dict(k=(7, 7), stride=2, padding=3),
        dict(k=(3, 2), stride=(2, 3), padding=(0, 1, 2, 1), dilation=(2, 1)),
        dict(k=(3, 3), stride=3, padding=2, dilation=2),
        dict(k=(5, 3), stride=(1, 2), padding=(2, 0, 1, 3)),
        dict(k=(3, 3), stride=2, padding=4),
        # Output rows of 9 and 10: copied row by row from the phases, not through the
        # map that narrower rows take (see gather.MAP_BELOW_WIDTH).
        dict(k=(3, 3), stride=2, padding=1, w=17),
        dict(k=(3, 3), stride=1, padding=0, w=12),
    ],
    ids=case_id,
)
@pytest.mark.parametrize("chunk", ["images", "band"])
def test_strided_columns_are_the_windows_of_the_padded_input(geometry, chunk, dtype):
    # The compiled gather (stride phases, then each tap's run; or narrow rows through a
    # map of offsets) against slicing.
    case = dict(n=3, cin=4, h=11, w=9, cout=2) | geometry
    x, w, _, params = conv_inputs(case)
    x = x.astype(dtype)
    spec = make_conv_spec(x, w.astype(dtype), bias=False, dtype=np.dtype(dtype), **params)
    part = (1, 3, 0, spec.out_height) if chunk == "images" else (2, 3, 1, spec.out_height - 1)
    for width in {lowering.row_width(spec), spec.out_width}:
        got = lowering._lower(x, spec, part, width).reshape(
            spec.in_channels, *spec.kernel, part[1] - part[0], part[3] - part[2], width
        )
        want = _windows_by_slicing(x, spec, part, width)
        want[..., spec.out_width :] = got[..., spec.out_width :]  # dropped columns
        np.testing.assert_array_equal(got, want.astype(dtype))


def test_peak_memory_stays_near_the_workspace_limit(workspace_limit):
    # 64 images of 64 channels at 64x64, 3x3: the whole lowered matrix would be
    # 64 * 576 * 4096 * 8 bytes = 1.2 GiB in float64.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 64, 64, 64))
    w = rng.standard_normal((8, 64, 3, 3))
    spec = make_conv_spec(x, w, bias=False, padding=1, dtype=np.dtype("float64"))
    whole = spec.batch * spec.in_channels * 9 * spec.out_height * spec.out_width * 8
    assert whole > 2**30
    limit = 64 * 2**20
    workspace_limit(limit)
    assert get_backend("im2col").workspace_bytes("conv2d", spec) <= limit
    tracemalloc.start()
    try:
        y = fastcnn.conv2d(x, w, padding=1, backend="im2col")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Allowed: the limit (lowered columns), the output, and a quarter of the limit for the
    # padded input slab and GEMM results of a chunk; far below the 1.2 GiB of no chunking.
    assert peak <= 1.25 * limit + y.nbytes, f"peak {peak / 2**20:.0f} MiB"
    # The result is right: compare two images with the reference.
    ref = fastcnn.conv2d(x[[0, 63]], w, padding=1, backend="naive")
    np.testing.assert_allclose(y[[0, 63]], ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "x_shape, w_shape, padding",
    [((2, 256, 7, 7), (512, 256, 3, 3), 1), ((2, 1024, 7, 7), (1024, 1024, 1, 1), 0)],
    ids=["lowered", "pointwise"],
)
def test_the_backward_allocates_no_product_beside_dw(x_shape, w_shape, padding):
    # dW is 9.4 MB and 8.4 MB in float64. The GEMM writes dW itself; a product array
    # beside it (fresh pages, each faulted in) would double the peak. The first call
    # compiles its kernels and sizes the scratch buffers that later calls reuse, so the
    # second is the one measured.
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    grad_y = rng.standard_normal((x_shape[0], w_shape[0], *x_shape[2:]))
    fastcnn.conv2d_backward(grad_y, x, w, padding=padding, backend="im2col")
    tracemalloc.start()
    try:
        grads = fastcnn.conv2d_backward(grad_y, x, w, padding=padding, backend="im2col")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * grads.w.nbytes, f"peak {peak / 2**20:.1f} MiB"
    want = fastcnn.conv2d_backward(grad_y, x, w, padding=padding, backend="naive")
    np.testing.assert_allclose(grads.w, want.w, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(grads.x, want.x, rtol=1e-10, atol=1e-9)


def test_repeated_calls_are_bit_identical():
    x, w, b, params = conv_inputs(CONV_SWEEP[2])
    first = fastcnn.conv2d(
        x.astype(np.float32), w.astype(np.float32), b, backend="im2col", **params
    )
    again = fastcnn.conv2d(
        x.astype(np.float32), w.astype(np.float32), b, backend="im2col", **params
    )
    np.testing.assert_array_equal(first, again)


#: 1x1 convolutions take a path without lowering: per-image GEMMs on large maps, the
#: images side by side on small ones (under 100 positions forward, 400 backward), a
#: subsampling copy for a stride, zeros (or the bias) where a window reads only padding;
#: a bias makes the per-image GEMM add it through a copied operand's row of ones, and is
#: added as a side-by-side product is moved into place.
POINTWISE = [
    dict(n=3, cin=4, h=5, w=6, cout=6, k=(1, 1)),  # side by side
    dict(n=2, cin=3, h=12, w=12, cout=4, k=(1, 1)),  # per image forward, side by side back
    dict(n=2, cin=3, h=12, w=12, cout=4, k=(1, 1), stride=(1, 1), bias=False),
    dict(n=2, cin=3, h=21, w=20, cout=5, k=(1, 1)),  # one GEMM per image (420 positions)
    # without a bias: the input as it lies (no copy), side by side, padding left zero
    dict(n=2, cin=3, h=21, w=20, cout=5, k=(1, 1), bias=False),
    dict(n=3, cin=4, h=5, w=6, cout=6, k=(1, 1), bias=False),
    dict(n=2, cin=3, h=22, w=21, cout=2, k=(1, 1), padding=1, bias=False),
    dict(n=1, cin=3, h=5, w=5, cout=4, k=(1, 1)),  # a single image
    dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1), stride=2),
    dict(n=2, cin=4, h=43, w=41, cout=2, k=(1, 1), stride=2),  # strided, per image
    # stride 2 on wider rows: per image, and side by side from input column 1 (padding)
    dict(n=2, cin=4, h=40, w=44, cout=3, k=(1, 1), stride=2),
    dict(n=3, cin=4, h=9, w=41, cout=2, k=(1, 1), stride=2, padding=1, groups=2),
    dict(n=2, cin=4, h=7, w=9, cout=4, k=(1, 1), stride=(3, 2), bias=False),
    dict(n=2, cin=3, h=5, w=4, cout=4, k=(1, 1), padding=1),
    dict(n=2, cin=3, h=22, w=21, cout=2, k=(1, 1), padding=(2, 0, 1, 3)),
    dict(n=3, cin=4, h=6, w=7, cout=6, k=(1, 1), stride=2, padding=(1, 2, 0, 1)),
    dict(n=2, cin=3, h=3, w=3, cout=2, k=(1, 1), stride=3, padding=2),  # rows of padding only
    dict(n=2, cin=6, h=5, w=5, cout=4, k=(1, 1), groups=2, dilation=3),
    dict(n=3, cin=6, h=7, w=6, cout=9, k=(1, 1), groups=3, stride=2, padding=1),
    dict(n=2, cin=6, h=21, w=21, cout=6, k=(1, 1), groups=6),  # per image, depthwise
    # no window reads an input cell: every output sees only padding (bias alone)
    dict(n=1, cin=2, h=1, w=3, cout=2, k=(1, 1), stride=2, padding=(3, 4, 0, 5)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", POINTWISE, ids=case_id)
def test_pointwise_paths_match_naive(case, dtype):
    check_conv("im2col", case, dtype)


@pytest.mark.parametrize("case", POINTWISE[::3], ids=case_id)
def test_pointwise_gradients_match_finite_differences(case):
    check_conv_fd("im2col", case)


@pytest.mark.parametrize("need", [(True, False), (False, True)])
def test_pointwise_backward_gives_only_the_gradients_asked_for(need):
    case = dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1), stride=2, padding=1)
    x, w, _, params = conv_inputs(case)
    gy = np.random.default_rng(3).standard_normal((3, 6, 6, 5))
    want = fastcnn.conv2d_backward(gy, x, w, bias=False, backend="naive", **params)
    spec = make_conv_spec(x, w, bias=False, dtype=np.dtype("float64"), **params)
    got = get_backend("im2col").conv2d_backward(gy, x, w, spec, GradNeed(*need, False))
    for name, wanted in zip(("x", "w"), need, strict=True):
        if wanted:
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-12)
        else:
            assert getattr(got, name) is None


@pytest.fixture
def threads():
    """Set fastcnn's thread count for one test, restoring it afterwards."""
    before = fastcnn.set_num_threads(None)
    fastcnn.set_num_threads(before)
    yield fastcnn.set_num_threads
    fastcnn.set_num_threads(before)


#: Cases of the by-image paths, and whether two threads take them: an ungrouped layer with
#: an image per thread and 100 outputs per image (a 1x1 layer only if strided, where every
#: output reads input).
BY_IMAGES = [
    (dict(n=3, cin=4, h=21, w=20, cout=6, k=(1, 1), stride=2), True),
    # padding below and right that no output reads
    (dict(n=2, cin=5, h=21, w=31, cout=3, k=(1, 1), stride=(2, 3), padding=(0, 1, 0, 2)), True),
    (dict(n=4, cin=3, h=10, w=21, cout=2, k=(1, 1), stride=(1, 2), bias=False), True),
    (dict(n=1, cin=4, h=21, w=20, cout=6, k=(1, 1), stride=2), False),  # fewer images
    (dict(n=3, cin=4, h=21, w=20, cout=6, k=(1, 1), stride=2, groups=2), False),
    (dict(n=3, cin=4, h=21, w=20, cout=6, k=(1, 1), stride=2, padding=1), False),
    (dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1), stride=2), False),  # 20 outputs
    (dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1)), False),  # no subsampling
    # lowered: any kernel, stride, padding and dilation, ungrouped
    (dict(n=3, cin=4, h=21, w=20, cout=5, k=(3, 3), stride=2, padding=1), True),
    (dict(n=2, cin=3, h=23, w=31, cout=4, k=(3, 2), stride=(2, 3), padding=(0, 2, 1, 0)), True),
    (dict(n=2, cin=2, h=12, w=12, cout=3, k=(3, 3), dilation=2, padding=(2, 1, 0, 3)), True),
    (dict(n=2, cin=3, h=21, w=21, cout=2, k=(7, 7), stride=2, padding=3, bias=False), True),
    (dict(n=3, cin=4, h=21, w=20, cout=6, k=(3, 3), stride=2, groups=2), False),
    (dict(n=1, cin=4, h=21, w=20, cout=5, k=(3, 3), stride=2, padding=1), False),
    (dict(n=3, cin=4, h=13, w=12, cout=5, k=(3, 3), stride=2, padding=1), False),  # 42 outputs
]


#: 1x1 stride-1 cases, and whether two threads take them an image per worker: ungrouped,
#: unpadded, an image per thread, output images within 1 MiB, and a bias or a thin map.
POINTWISE_BY_IMAGES = [
    (dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1)), True),
    (dict(n=2, cin=3, h=21, w=20, cout=5, k=(1, 1)), True),  # 420 outputs per image
    (dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1), bias=False), True),  # thin: 72 outputs
    (dict(n=4, cin=5, h=1, w=1, cout=3, k=(1, 1)), True),  # one cell per image
    (dict(n=2, cin=3, h=21, w=20, cout=5, k=(1, 1), bias=False), False),  # not thin
    (dict(n=1, cin=4, h=9, w=8, cout=6, k=(1, 1)), False),  # fewer images than threads
    (dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1), groups=2), False),
    (dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1), padding=1), False),  # a border of bias
    (dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1), padding=(0, 1, 0, 0)), False),
    (dict(n=2, cin=2, h=64, w=64, cout=80, k=(1, 1)), False),  # 1.3 MB an output image
]

#: The forward's two by-image functions, each with its cases.
FORWARDS_BY_IMAGES = [("forward", *case) for case in BY_IMAGES] + [
    ("pointwise_forward", *case) for case in POINTWISE_BY_IMAGES
]


def _by_images_id(value: object) -> str:
    if isinstance(value, str):
        return value
    return case_id(value) if isinstance(value, dict) else ("by-images" if value else "batch")


def _record_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list:
    """The results of every call of ``by_image.<name>`` from now on, in a list."""
    taken = []
    original = getattr(by_image, name)

    def record(*args: object) -> object:
        taken.append(original(*args))
        return taken[-1]

    monkeypatch.setattr(by_image, name, record)
    return taken


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("path, case, by_images", FORWARDS_BY_IMAGES, ids=_by_images_id)
def test_forward_by_images_matches_naive(threads, monkeypatch, path, case, by_images, dtype):
    # Two threads: the batch is shared out by image where each thread gets one (see the
    # case lists for which layers ``path`` takes).
    threads(2)
    x, w, b, params = conv_inputs(case)
    taken = _record_calls(monkeypatch, path)
    check_conv("im2col", case, dtype)
    assert bool(taken) == by_images
    if by_images:  # one image's GEMM, whichever worker runs it: the same on one thread
        threads(1)
        xd, wd, bd = (None if a is None else a.astype(dtype) for a in (x, w, b))
        one = fastcnn.conv2d(xd, wd, bd, backend="im2col", **params)
        np.testing.assert_array_equal(one, taken[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case, by_images", BY_IMAGES, ids=_by_images_id)
def test_backward_by_images_matches_naive(threads, monkeypatch, case, by_images, dtype):
    # The same cases as the forward's; the backward goes by image only where dW is wanted.
    threads(2)
    taken = _record_calls(monkeypatch, "backward")
    check_conv("im2col", case, dtype)  # dX, dW and db against naive's
    assert bool(taken) == by_images
    x, w, _, params = conv_inputs(case)
    xd, wd = x.astype(dtype), w.astype(dtype)
    y = fastcnn.conv2d(xd, wd, backend="im2col", **params)
    gy = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    both = fastcnn.conv2d_backward(gy, xd, wd, bias=False, backend="im2col", **params)
    taken.clear()
    only_w = fastcnn.conv2d_backward(
        gy, xd, wd, bias=False, need=("w",), backend="im2col", **params
    )
    assert bool(taken) == by_images
    np.testing.assert_array_equal(only_w.w, both.w)  # dW is summed the same way
    taken.clear()
    only_x = fastcnn.conv2d_backward(
        gy, xd, wd, bias=False, need=("x",), backend="im2col", **params
    )
    assert not taken  # dX alone keeps the batch's path
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(only_x.x, both.x, rtol=rtol, atol=rtol * np.abs(both.x).max())
    again = fastcnn.conv2d_backward(gy, xd, wd, bias=False, backend="im2col", **params)
    for got, first in zip(again[:2], both[:2], strict=True):
        np.testing.assert_array_equal(got, first)  # deterministic at a thread count


def test_the_cost_model_counts_no_copy_for_a_pointwise_forward_by_images(threads):
    threads(2)
    backend = get_backend("im2col")

    def features(x_shape, w_shape):
        x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32)
        spec = make_conv_spec(x, w, bias=True, dtype=np.dtype("float32"))
        return spec, backend.cost_features(CONV2D, spec)

    # features: 1, dense FLOPs, depthwise FLOPs, bytes copied (stride 1), ... filter
    # bytes times chunks (here one GEMM per image)
    spec, by_images = features((4, 256, 14, 14), (512, 256, 1, 1))
    assert pointwise.forward_by_images(spec)
    assert by_images[3] == 0 and by_images[6] == 4 * 512 * 256 * 4
    spec, batch = features((4, 32, 112, 112), (64, 32, 1, 1))  # 3.2 MB an output image
    assert not pointwise.forward_by_images(spec)
    assert batch[3] == 4 * 32 * 112 * 112 * 4  # the input, copied with a row of ones


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_thin_strided_1x1_layer_goes_side_by_side_through_the_compiled_copy(monkeypatch, dtype):
    # 20 outputs per image and two groups: the images side by side, the input's
    # subsampled cells copied by the compiled loop, forward and for dW.
    copied = []
    original = pointwise._subsampled_side_by_side

    def record(src: np.ndarray, dst: np.ndarray) -> None:
        copied.append(src.shape)
        original(src, dst)

    monkeypatch.setattr(pointwise, "_subsampled_side_by_side", record)
    check_conv("im2col", dict(n=3, cin=6, h=9, w=8, cout=4, k=(1, 1), stride=2, groups=2), dtype)
    assert copied == [(3, 6, 5, 4)] * 2


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # naive's Inf - Inf
@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_forward_by_images_keeps_nan_and_inf_where_the_reference_has_them(
    threads, monkeypatch, bias
):
    threads(2)
    x, w, b, _ = conv_inputs(dict(n=3, cin=4, h=9, w=8, cout=6, k=(1, 1), bias=bias))
    x[1, 2, 3, 4], x[2, 0, 0, 7] = np.nan, np.inf
    taken = _record_calls(monkeypatch, "pointwise_forward")
    got = fastcnn.conv2d(x, w, b, backend="im2col")
    assert taken
    want = fastcnn.conv2d(x, w, b, backend="naive")
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(got), test(want), err_msg=str(test))
    assert np.isnan(got[1, :, 3, 4]).all() and np.isfinite(got[0]).all()


@pytest.mark.parametrize(
    "case",
    [
        # padded: the side-by-side product goes into the box of outputs that read input
        dict(n=5, cin=4, h=6, w=6, cout=6, k=(1, 1), stride=2, padding=1, groups=2),
        # unpadded: a compiled pass moves each image's planes into place, with the bias
        dict(n=5, cin=4, h=8, w=7, cout=6, k=(1, 1), stride=2, groups=2),
    ],
    ids=case_id,
)
def test_pointwise_chunks_of_images_give_the_same_result(workspace_limit, case):
    x, w, b, params = conv_inputs(case)
    gy = np.random.default_rng(4).standard_normal((5, 6, 4, 4))
    whole = fastcnn.conv2d(x, w, b, backend="im2col", **params)
    whole_grads = fastcnn.conv2d_backward(gy, x, w, backend="im2col", **params)
    spec = make_conv_spec(x, w, bias=True, dtype=np.dtype("float64"), **params)
    workspace_limit(2 * pointwise.image_bytes(spec))  # two images per chunk
    assert [c[:2] for c in pointwise.chunks(spec, CONV2D)] == [
        (0, 2),
        (2, 4),
        (4, 5),
    ]
    np.testing.assert_allclose(fastcnn.conv2d(x, w, b, backend="im2col", **params), whole)
    chunked = fastcnn.conv2d_backward(gy, x, w, backend="im2col", **params)
    for got, want in zip(chunked, whole_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    workspace_limit(1)  # not even one image: the lowering path
    np.testing.assert_allclose(fastcnn.conv2d(x, w, b, backend="im2col", **params), whole)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # naive's Inf - Inf
@pytest.mark.parametrize("poisoned", ["x", "grad_y"])
@pytest.mark.parametrize("case", [case for case, by_images in BY_IMAGES if by_images], ids=case_id)
def test_backward_by_images_keeps_nan_and_inf_where_the_reference_has_them(threads, case, poisoned):
    # One NaN and one +Inf: each gradient's non-finite cells are the reference's.
    threads(2)
    x, w, _, params = conv_inputs(case)
    y = fastcnn.conv2d(x, w, backend="naive", **params)
    arrays = {"x": x, "grad_y": np.random.default_rng(2).standard_normal(y.shape)}
    flat = arrays[poisoned].reshape(-1)
    flat[flat.size // 3], flat[(2 * flat.size) // 3] = np.nan, np.inf
    args = (arrays["grad_y"], arrays["x"], w)
    got = fastcnn.conv2d_backward(*args, bias=False, backend="im2col", **params)
    want = fastcnn.conv2d_backward(*args, bias=False, backend="naive", **params)
    for name in ("x", "w"):
        g, r = getattr(got, name), getattr(want, name)
        for test in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(test(g), test(r), err_msg=f"grad {name}: {test}")
        reads_poison = not (name == "x" and poisoned == "x")  # dX does not read x
        assert np.isfinite(g).all() != reads_poison
