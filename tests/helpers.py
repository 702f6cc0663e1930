"""One-line checks shared by every backend's tests (in the spirit of tinygrad's helper_test_op).

``check_conv(backend, case, dtype)`` runs forward and backward through the public API
with ``backend=`` and compares them with the naive backend in float64; ``check_conv_fd``
checks a backend's gradients against central differences of its own forward. The sweeps
cover every parameter at least once, so a backend's test file is a few parametrised lines.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fastcnn
from fastcnn.gradcheck import directional_error, tie_free
from fastcnn.registry import get_backend
from fastcnn.tolerances import FD_TOLERANCE, forward_tolerance, product_scale, relative_error

#: Convolution cases: shapes plus parameters, each a dict for ``conv_inputs``.
CONV_SWEEP: list[dict[str, Any]] = [
    dict(n=2, cin=3, h=7, w=6, cout=4, k=(3, 3)),
    dict(n=1, cin=2, h=8, w=9, cout=3, k=(3, 2), stride=2),
    dict(n=2, cin=4, h=7, w=7, cout=6, k=(3, 3), groups=2),
    dict(n=1, cin=4, h=6, w=5, cout=4, k=(3, 3), groups=4, padding=1),
    dict(n=2, cin=3, h=9, w=8, cout=2, k=(3, 3), dilation=2, padding=(1, 2, 0, 3)),
    dict(n=1, cin=2, h=6, w=7, cout=3, k=(2, 3), stride=(2, 3), padding=(2, 1), dilation=(2, 1)),
    dict(n=2, cin=3, h=5, w=5, cout=2, k=(1, 1)),
    dict(n=1, cin=2, h=8, w=8, cout=2, k=(5, 4), padding="same"),
    dict(n=1, cin=1, h=12, w=11, cout=2, k=(7, 7), stride=3, padding=3, bias=False),
    dict(
        n=3,
        cin=6,
        h=5,
        w=6,
        cout=9,
        k=(3, 3),
        groups=3,
        stride=2,
        padding=(0, 1, 1, 0),
        dilation=(1, 2),
    ),
    dict(n=1, cin=2, h=6, w=6, cout=2, k=(6, 6), padding="valid"),
    dict(n=2, cin=8, h=4, w=4, cout=8, k=(2, 2), groups=8, stride=2, bias=False),
]

#: Pooling cases; ``dilation`` applies to max/min only, ``count_include_pad`` to mean only.
POOL_SWEEP: list[dict[str, Any]] = [
    dict(n=2, c=3, h=6, w=6, k=2),
    dict(n=2, c=2, h=7, w=9, k=2),  # the odd last row and column are in no window
    dict(n=1, c=2, h=7, w=5, k=2, ceil_mode=True),
    dict(n=1, c=2, h=7, w=8, k=3, stride=2, padding=1),
    dict(n=2, c=2, h=7, w=7, k=3, stride=2, ceil_mode=True),
    dict(n=1, c=3, h=9, w=8, k=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
    dict(n=1, c=2, h=9, w=9, k=3, stride=1, dilation=2, padding=1),
    dict(n=1, c=2, h=5, w=5, k=2, stride=1),
    dict(n=1, c=2, h=8, w=7, k=3, stride=3, padding=1, count_include_pad=False, ceil_mode=True),
    dict(n=2, c=1, h=6, w=7, k=(2, 3), stride=(1, 2), padding=(1, 0), count_include_pad=False),
    dict(n=1, c=2, h=10, w=9, k=(3, 3), stride=2, dilation=(2, 1), ceil_mode=True, padding=1),
]

POOL_FUNCS = {
    "max": (fastcnn.max_pool2d, fastcnn.max_pool2d_backward),
    "min": (fastcnn.min_pool2d, fastcnn.min_pool2d_backward),
    "mean": (fastcnn.mean_pool2d, fastcnn.mean_pool2d_backward),
}


def case_id(case: dict[str, Any]) -> str:
    return "-".join(f"{k}{v}" for k, v in case.items()).replace(" ", "")


def conv_inputs(
    case: dict[str, Any], seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """float64 ``x, w, b`` and the conv2d keyword parameters of a sweep case."""
    rng = np.random.default_rng(seed)
    groups = case.get("groups", 1)
    x = rng.standard_normal((case["n"], case["cin"], case["h"], case["w"]))
    w = rng.standard_normal((case["cout"], case["cin"] // groups, *case["k"]))
    b = rng.standard_normal(case["cout"]) if case.get("bias", True) else None
    params = {key: case[key] for key in ("stride", "padding", "dilation", "groups") if key in case}
    return x, w, b, params


def pool_inputs(
    case: dict[str, Any], mode: str, seed: int = 0
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """float64 tie-free ``x`` and keyword parameters, or None if the case is not for ``mode``."""
    if mode == "mean" and "dilation" in case:
        return None
    if mode != "mean" and "count_include_pad" in case:
        return None
    rng = np.random.default_rng(seed)
    x = tie_free(rng, (case["n"], case["c"], case["h"], case["w"]))
    keys = ("stride", "padding", "dilation", "ceil_mode", "count_include_pad")
    params = {key: case[key] for key in keys if key in case}
    params["kernel_size"] = case["k"]
    return x, params


def _assert_close(
    name: str, actual: np.ndarray, reference: np.ndarray, tol: float, floor: float
) -> None:
    assert actual.shape == reference.shape, f"{name}: shape {actual.shape} != {reference.shape}"
    err = relative_error(actual, reference, floor)
    assert err <= tol, f"{name}: normwise relative error {err:.3g} > {tol:.3g}"


def check_conv(backend: str, case: dict[str, Any], dtype: str, seed: int = 0) -> None:
    """Forward and backward of ``backend`` in ``dtype`` agree with naive in float64."""
    x, w, b, params = conv_inputs(case, seed)
    tol = forward_tolerance(dtype, get_backend(backend))
    xd, wd = x.astype(dtype), w.astype(dtype)
    bd = None if b is None else b.astype(dtype)
    saved = [a.copy() for a in (xd, wd) + (() if bd is None else (bd,))]
    y = fastcnn.conv2d(xd, wd, bd, backend=backend, **params)
    y_ref = fastcnn.conv2d(x, w, b, backend="naive", **params)
    assert y.dtype == np.dtype(dtype), f"forward dtype {y.dtype} != {dtype}"
    _assert_close("conv2d", y, y_ref, tol, product_scale(x, w))

    gy = np.random.default_rng(seed + 1).standard_normal(y_ref.shape)
    grads = fastcnn.conv2d_backward(
        gy.astype(dtype), xd, wd, bias=b is not None, backend=backend, **params
    )
    ref = fastcnn.conv2d_backward(gy, x, w, bias=b is not None, backend="naive", **params)
    for name in ("x", "w", "b"):
        got, want = getattr(grads, name), getattr(ref, name)
        if want is None:
            assert got is None, f"grad {name} should be None without a bias"
            continue
        assert got.dtype == np.dtype(dtype), f"grad {name} dtype {got.dtype} != {dtype}"
        _assert_close(
            f"grad {name}", got, want, tol, max(product_scale(gy, x), product_scale(gy, w))
        )
    for before, after in zip(saved, (xd, wd) + (() if bd is None else (bd,)), strict=True):
        np.testing.assert_array_equal(before, after, err_msg="an input was modified")


def check_conv_fd(backend: str, case: dict[str, Any], seed: int = 0) -> None:
    """``backend``'s conv gradients match central differences of its own forward."""
    x, w, b, params = conv_inputs(case, seed)
    gy = np.random.default_rng(seed + 1).standard_normal(
        fastcnn.conv2d(x, w, b, backend=backend, **params).shape
    )
    grads = fastcnn.conv2d_backward(gy, x, w, bias=b is not None, backend=backend, **params)
    inputs = [x, w] if b is None else [x, w, b]
    got = [grads.x, grads.w] if b is None else [grads.x, grads.w, grads.b]

    def forward(arrays: list[np.ndarray]) -> np.ndarray:
        bias = arrays[2] if len(arrays) == 3 else None
        return fastcnn.conv2d(arrays[0], arrays[1], bias, backend=backend, **params)

    floor = max(product_scale(gy, x), product_scale(gy, w))
    err = directional_error(forward, inputs, got, gy, np.random.default_rng(seed + 2), floor=floor)
    assert err <= FD_TOLERANCE, f"finite-difference error {err:.3g} > {FD_TOLERANCE:.3g}"


def check_pool(backend: str, mode: str, case: dict[str, Any], dtype: str, seed: int = 0) -> None:
    """Pooling forward and backward of ``backend`` agree with naive in float64."""
    made = pool_inputs(case, mode, seed)
    if made is None:
        return
    x, params = made
    forward, backward = POOL_FUNCS[mode]
    tol = forward_tolerance(dtype, get_backend(backend))
    xd = x.astype(dtype)
    saved = xd.copy()
    y = forward(xd, backend=backend, **params)
    y_ref = forward(x, backend="naive", **params)
    assert y.dtype == np.dtype(dtype)
    _assert_close(f"{mode}_pool2d", y, y_ref, tol, product_scale(x))
    gy = np.random.default_rng(seed + 1).standard_normal(y_ref.shape)
    gx = backward(gy.astype(dtype), xd, backend=backend, **params)
    gx_ref = backward(gy, x, backend="naive", **params)
    assert gx.dtype == np.dtype(dtype)
    _assert_close(f"{mode}_pool2d_backward", gx, gx_ref, tol, product_scale(gy))
    np.testing.assert_array_equal(saved, xd, err_msg="the input was modified")


def check_pool_fd(backend: str, mode: str, case: dict[str, Any], seed: int = 0) -> None:
    """``backend``'s pooling gradient matches central differences of its own forward."""
    made = pool_inputs(case, mode, seed)
    if made is None:
        return
    x, params = made
    forward, backward = POOL_FUNCS[mode]
    gy = np.random.default_rng(seed + 1).standard_normal(
        forward(x, backend=backend, **params).shape
    )
    gx = backward(gy, x, backend=backend, **params)
    err = directional_error(
        lambda arrays: forward(arrays[0], backend=backend, **params),
        [x],
        [gx],
        gy,
        np.random.default_rng(seed + 2),
        floor=product_scale(gy),
    )
    assert err <= FD_TOLERANCE, f"finite-difference error {err:.3g} > {FD_TOLERANCE:.3g}"
