"""The public operations: validate -> normalise -> select a backend -> call it -> shape.

Semantics follow ``torch.nn.functional`` (NCHW cross-correlation, ``avg_pool2d`` as
mean pooling). Arrays are converted once to the compute dtype, made C-contiguous and
handed to backends as read-only views: a backend that writes into its input fails
loudly instead of silently changing the caller's array (and the audit checks it).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fastcnn import registry, select
from fastcnn.registry import BackendUnsupported, ConvGrads, GradNeed
from fastcnn.spec import (
    ConvSpec,
    PoolSpec,
    check_bias,
    check_grad_shape,
    make_conv_spec,
    make_pool_spec,
    result_dtype,
)

_GRAD_NAMES = frozenset({"x", "w", "b"})


def _as_array(name: str, value: ArrayLike) -> np.ndarray:
    # Detected by module name so that the front end never imports Dask: converting a dask
    # array would silently compute all of it into memory.
    if type(value).__module__.startswith("dask."):
        raise TypeError(
            f"{name} is a dask array ({type(value).__name__}); fastcnn's functions take "
            "in-memory arrays and would compute all of it at once. Use the same function "
            "from fastcnn.dask (e.g. fastcnn.dask.conv2d), which works chunk by chunk and "
            "returns a dask array"
        )
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None


def _batched(name: str, array: np.ndarray) -> tuple[np.ndarray, bool]:
    """Add a batch axis to an unbatched (C, H, W) array; say whether one was added."""
    if array.ndim == 3:
        return array[np.newaxis], True
    if array.ndim != 4:
        raise ValueError(
            f"{name} must be 4-D (N, C, H, W) or 3-D (C, H, W), got {array.ndim}-D shape "
            f"{array.shape}"
        )
    return array, False


def _frozen(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous read-only array of ``dtype``: a view when no copy is needed."""
    out = np.ascontiguousarray(array, dtype=dtype).view()
    out.flags.writeable = False
    return out


def _all_finite(*arrays: np.ndarray) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def _pick_backend(
    requested: str | None,
    op: str,
    spec: ConvSpec | PoolSpec,
    arrays: tuple[np.ndarray, ...],
    call_args: tuple[Any, ...],
) -> Any:
    """The backend that runs the call; a named one that cannot is refused, never swapped.

    ``arrays`` are the inputs whose finiteness matters; ``call_args`` the backend
    method's arguments, which autotune uses to time the candidates on the real call.
    """
    name = registry.current_backend(requested)

    answer: list[bool] = []  # a pass over the inputs, done at most once and only if asked

    def finite() -> bool:
        if not answer:
            answer.append(_all_finite(*arrays))
        return answer[0]

    if name == registry.AUTO:
        return select.choose(
            op, spec, finite=finite, run=lambda b: registry.call(b, op, *call_args)
        )
    backend = registry.get_backend(name)
    reason = select.refusal(backend, op, spec, finite)
    if reason is not None:
        able = [
            b.name
            for b in registry.available_backends()
            if select.refusal(b, op, spec, finite) is None
        ]
        raise BackendUnsupported(
            f"backend {name!r} cannot run {op} here: {reason}. "
            f"Backends that can: {', '.join(able) or 'none'} (or backend='auto')"
        )
    return backend


def _unbatch(array: np.ndarray, added: bool) -> np.ndarray:
    """Drop the batch axis that :func:`_batched` added."""
    return array[0] if added else array


# --- convolution -----------------------------------------------------------------------------


def conv2d(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple[int, ...] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    backend: str | None = None,
) -> np.ndarray:
    """2-D cross-correlation of ``x`` with filters ``w``, plus an optional bias.

    Parameters
    ----------
    x : array_like, shape (N, C_in, H, W) or (C_in, H, W)
        Input images; 3-D input is one unbatched image and gives a 3-D result.
    w : array_like, shape (C_out, C_in // groups, kh, kw)
        Filters; each has as many channels as its group of the input.
    b : array_like, shape (C_out,), optional
        Bias added to every output position of each channel.
    stride, dilation : int or (int, int)
        Step between windows and spacing between kernel taps, per axis; at least 1.
    padding : int, (int, int), (top, bottom, left, right), "valid" or "same"
        Zeros added around the input. ``"same"`` keeps the spatial size (stride 1 only).
    groups : int
        Split channels into groups convolved separately; must divide C_in and C_out.
    backend : str, optional
        A backend name or ``"auto"``; default: the current choice (see ``use_backend``).

    Returns
    -------
    numpy.ndarray, shape (N, C_out, OH, OW)
        ``OH = floor((H + pad_top + pad_bottom - dilation*(kh-1) - 1) / stride) + 1``;
        dtype ``np.result_type(x, w, b, np.float32)``.

    Raises
    ------
    ValueError, TypeError
        For invalid shapes, parameters or dtypes, naming the parameter and the rule.
    BackendUnsupported
        If the named backend cannot run this call.
    """
    x_arr, w_arr = _as_array("x", x), _as_array("w", w)
    b_arr = None if b is None else _as_array("b", b)
    x4, unbatched = _batched("x", x_arr)
    dtype = result_dtype("x, w and b", *(a for a in (x_arr, w_arr, b_arr) if a is not None))
    spec = make_conv_spec(
        x4,
        w_arr,
        bias=b_arr is not None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        dtype=dtype,
    )
    if b_arr is not None:
        check_bias(b_arr, spec.out_channels)
    xs, ws = _frozen(x4, dtype), _frozen(w_arr, dtype)
    bs = None if b_arr is None else _frozen(b_arr, dtype)
    arrays = (xs, ws) if bs is None else (xs, ws, bs)
    chosen = _pick_backend(backend, "conv2d", spec, arrays, (xs, ws, bs, spec))
    if spec.batch == 0:
        return _unbatch(np.zeros(spec.y_shape, dtype), unbatched)
    y = registry.call(chosen, "conv2d", xs, ws, bs, spec)
    return _unbatch(y, unbatched)


def conv2d_backward(
    grad_y: ArrayLike,
    x: ArrayLike,
    w: ArrayLike,
    *,
    bias: bool = True,
    need: Collection[str] = ("x", "w", "b"),
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple[int, ...] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    backend: str | None = None,
) -> ConvGrads:
    """Gradients of a loss through :func:`conv2d`, given ``grad_y = dL/dy``.

    Parameters
    ----------
    grad_y : array_like
        Gradient with respect to the forward output; its shape must be the output's.
    x, w : array_like
        The forward call's input and filters.
    bias : bool
        Whether the forward call had a bias (only then is ``b`` computed).
    need : collection of {"x", "w", "b"}
        The gradients wanted; the others are skipped and returned as ``None``.
    stride, padding, dilation, groups, backend
        As in :func:`conv2d`.

    Returns
    -------
    ConvGrads
        Named tuple ``(x, w, b)``: ``dL/dx`` shaped like ``x``, ``dL/dw`` like ``w``,
        ``dL/db`` of length C_out (``None`` without bias or when not needed).
    """
    wanted = set(need)
    if not wanted <= _GRAD_NAMES:
        raise ValueError(f"need={sorted(wanted)!r} may only name 'x', 'w' and 'b'")
    gy_arr, x_arr, w_arr = _as_array("grad_y", grad_y), _as_array("x", x), _as_array("w", w)
    x4, unbatched = _batched("x", x_arr)
    gy4 = gy_arr[np.newaxis] if unbatched and gy_arr.ndim == 3 else gy_arr
    dtype = result_dtype("grad_y, x and w", gy_arr, x_arr, w_arr)
    spec = make_conv_spec(
        x4,
        w_arr,
        bias=bool(bias),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        dtype=dtype,
    )
    check_grad_shape(gy4, spec.y_shape)
    grads_needed = GradNeed(x="x" in wanted, w="w" in wanted, b="b" in wanted and bool(bias))
    gys, xs, ws = _frozen(gy4, dtype), _frozen(x4, dtype), _frozen(w_arr, dtype)
    chosen = _pick_backend(
        backend, "conv2d_backward", spec, (gys, xs, ws), (gys, xs, ws, spec, grads_needed)
    )
    if spec.batch == 0:
        grads = ConvGrads(
            np.zeros(spec.x_shape, dtype) if grads_needed.x else None,
            np.zeros(spec.w_shape, dtype) if grads_needed.w else None,
            np.zeros(spec.out_channels, dtype) if grads_needed.b else None,
        )
    else:
        grads = registry.call(chosen, "conv2d_backward", gys, xs, ws, spec, grads_needed)
    grad_x = None if grads.x is None else _unbatch(grads.x, unbatched)
    return ConvGrads(grad_x, grads.w, grads.b)


# --- pooling -----------------------------------------------------------------------------------


def _pool(
    mode: str,
    x: ArrayLike,
    kernel_size: int | tuple[int, int],
    backend: str | None,
    **params: Any,
) -> np.ndarray:
    x_arr = _as_array("x", x)
    x4, unbatched = _batched("x", x_arr)
    dtype = result_dtype("x", x_arr)
    spec = make_pool_spec(x4, mode, kernel_size, dtype=dtype, **params)
    xs = _frozen(x4, dtype)
    chosen = _pick_backend(backend, "pool2d", spec, (xs,), (xs, spec))
    if spec.batch == 0:
        return _unbatch(np.zeros(spec.y_shape, dtype), unbatched)
    return _unbatch(registry.call(chosen, "pool2d", xs, spec), unbatched)


def _pool_backward(
    mode: str,
    grad_y: ArrayLike,
    x: ArrayLike,
    kernel_size: int | tuple[int, int],
    backend: str | None,
    **params: Any,
) -> np.ndarray:
    gy_arr, x_arr = _as_array("grad_y", grad_y), _as_array("x", x)
    x4, unbatched = _batched("x", x_arr)
    gy4 = gy_arr[np.newaxis] if unbatched and gy_arr.ndim == 3 else gy_arr
    dtype = result_dtype("grad_y and x", gy_arr, x_arr)
    spec = make_pool_spec(x4, mode, kernel_size, dtype=dtype, **params)
    check_grad_shape(gy4, spec.y_shape)
    gys, xs = _frozen(gy4, dtype), _frozen(x4, dtype)
    chosen = _pick_backend(backend, "pool2d_backward", spec, (gys, xs), (gys, xs, spec))
    if spec.batch == 0:
        return _unbatch(np.zeros(spec.x_shape, dtype), unbatched)
    gx = registry.call(chosen, "pool2d_backward", gys, xs, spec)
    return _unbatch(gx, unbatched)


_POOL_DOC = """{title} pooling over 2-D windows, per channel (the channel count is kept).

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (C, H, W)
        Input; 3-D input is unbatched and gives a 3-D result.
    kernel_size : int or (int, int)
        Window size.
    stride : int or (int, int), optional
        Step between windows; defaults to ``kernel_size``.
    padding : int or (int, int)
        Padding on each side, at most half the kernel; padded cells hold {pad}.{extra}
    ceil_mode : bool
        Round the output size up (PyTorch's rule: a last window must start inside the
        input or its left padding).
    backend : str, optional
        A backend name or ``"auto"``; default: the current choice.

    Returns
    -------
    numpy.ndarray, shape (N, C, OH, OW)
        dtype ``np.result_type(x, np.float32)``.{ties}
    """

_DILATION_DOC = """
    dilation : int or (int, int)
        Spacing between window taps."""
_COUNT_DOC = """
    count_include_pad : bool
        Divide by the window size clipped to the padded input (True), or by the number
        of real input cells in the window (False)."""
_TIES_DOC = """ NaN in a window gives NaN; the gradient goes to the
        first {what} in row-major order, or to the window's last NaN if it holds one
        (PyTorch's rule)."""


def max_pool2d(
    x: ArrayLike,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    return _pool(
        "max",
        x,
        kernel_size,
        backend,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
    )


def min_pool2d(
    x: ArrayLike,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    return _pool(
        "min",
        x,
        kernel_size,
        backend,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
    )


def mean_pool2d(
    x: ArrayLike,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    backend: str | None = None,
) -> np.ndarray:
    return _pool(
        "mean",
        x,
        kernel_size,
        backend,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )


def max_pool2d_backward(
    grad_y: ArrayLike,
    x: ArrayLike,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    """Gradient of a loss through :func:`max_pool2d` with respect to ``x``.

    Each ``grad_y`` entry goes to the first maximum of its window (row-major, as
    PyTorch); the other parameters are those of the forward call.
    """
    return _pool_backward(
        "max",
        grad_y,
        x,
        kernel_size,
        backend,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
    )


def min_pool2d_backward(
    grad_y: ArrayLike,
    x: ArrayLike,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    """Gradient of a loss through :func:`min_pool2d` with respect to ``x``.

    Each ``grad_y`` entry goes to the first minimum of its window (row-major).
    """
    return _pool_backward(
        "min",
        grad_y,
        x,
        kernel_size,
        backend,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
    )


def mean_pool2d_backward(
    grad_y: ArrayLike,
    x: ArrayLike,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    backend: str | None = None,
) -> np.ndarray:
    """Gradient of a loss through :func:`mean_pool2d` with respect to ``x``.

    Each ``grad_y`` entry is spread evenly over the real cells of its window, divided by
    the same divisor as the forward call.
    """
    return _pool_backward(
        "mean",
        grad_y,
        x,
        kernel_size,
        backend,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )


max_pool2d.__doc__ = _POOL_DOC.format(
    title="Max", pad="-inf", extra=_DILATION_DOC, ties=_TIES_DOC.format(what="maximum")
)
min_pool2d.__doc__ = _POOL_DOC.format(
    title="Min", pad="+inf", extra=_DILATION_DOC, ties=_TIES_DOC.format(what="minimum")
)
mean_pool2d.__doc__ = _POOL_DOC.format(
    title="Mean (average)", pad="zeros", extra=_COUNT_DOC, ties=""
)
