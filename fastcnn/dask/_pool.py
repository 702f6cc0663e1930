"""Pooling and its gradients on dask arrays (see :mod:`fastcnn.dask`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dask.array as da
import numpy as np

from fastcnn.api import _batched
from fastcnn.dask import _tasks
from fastcnn.dask._graph import Graph, as_dask, backend_for, blocks, regions, sizes, stand_in
from fastcnn.dask._plan import Axis, Slab, grad_outputs, keep, output_chunks, place, slab
from fastcnn.ops import POOL2D, POOL2D_BACKWARD, backward_of
from fastcnn.spec import PoolSpec, check_grad_shape, make_pool_spec, result_dtype


def _pool_axes(spec: PoolSpec) -> tuple[Axis, Axis]:
    top, _, left, _ = spec.padding
    rows = Axis(
        spec.height, spec.out_height, spec.kernel[0], spec.stride[0], spec.dilation[0],
        top, top, symmetric=True, ceil_mode=spec.ceil_mode,
    )  # fmt: skip
    cols = Axis(
        spec.width, spec.out_width, spec.kernel[1], spec.stride[1], spec.dilation[1],
        left, left, symmetric=True, ceil_mode=spec.ceil_mode,
    )  # fmt: skip
    return rows, cols


def _pool_call(fn: str, spec: PoolSpec, backend: str, sr: Slab, sc: Slab) -> _tasks.Call:
    kwargs: dict[str, Any] = dict(
        stride=spec.stride, padding=(sr.pad_lo, sc.pad_lo), ceil_mode=spec.ceil_mode
    )
    if spec.mode == "mean":
        kwargs["count_include_pad"] = spec.count_include_pad
    else:
        kwargs["dilation"] = spec.dilation
    return _tasks.Call(
        fn,
        args=(spec.kernel,),
        kwargs=(*kwargs.items(), ("backend", backend)),
        keep=keep(sr, sc),
        grad_shape=(sr.call_out, sc.call_out),
    )


def _pool_spec(mode: str, x: da.Array, kernel_size: Any, params: dict[str, Any]) -> PoolSpec:
    return make_pool_spec(
        stand_in(x), mode, kernel_size, dtype=result_dtype("x", stand_in(x)), **params
    )


def _pool(mode: str, x: Any, kernel_size: Any, backend: str | None, **params: Any) -> da.Array:
    x4, unbatched = _batched("x", as_dask("x", x))
    spec = _pool_spec(mode, x4, kernel_size, params)
    name = backend_for(backend, POOL2D, spec)
    rows, cols = _pool_axes(spec)
    out_rows, out_cols = output_chunks(rows, x4.chunks[2]), output_chunks(cols, x4.chunks[3])
    fn = f"{mode}_{POOL2D}"
    graph = Graph(f"fastcnn-{fn}", x4.name, spec, name)
    grid = (regions(x4.chunks[0]), regions(x4.chunks[1]), out_rows, out_cols)
    for index, (nr, cr, ir, ic) in blocks(*grid):
        sr, sc = slab(rows, *ir), slab(cols, *ic)
        xp = graph.gather(x4, (nr, cr, sr.rows, sc.rows))
        graph.add(index, (_tasks.pool_forward, xp, _pool_call(fn, spec, name, sr, sc)))
    chunks = (x4.chunks[0], x4.chunks[1], sizes(out_rows), sizes(out_cols))
    y = graph.array(chunks, np.dtype(spec.dtype), [x4])
    return y[0] if unbatched else y


def _pool_backward(
    mode: str, grad_y: Any, x: Any, kernel_size: Any, backend: str | None, **params: Any
) -> da.Array:
    gy_arr, x_arr = as_dask("grad_y", grad_y), as_dask("x", x)
    x4, unbatched = _batched("x", x_arr)
    gy4 = gy_arr[np.newaxis] if unbatched and gy_arr.ndim == 3 else gy_arr
    dtype = result_dtype("grad_y and x", stand_in(gy_arr), stand_in(x_arr))
    spec = make_pool_spec(stand_in(x4), mode, kernel_size, dtype=dtype, **params)
    check_grad_shape(stand_in(gy4), spec.y_shape)
    name = backend_for(backend, POOL2D_BACKWARD, spec)
    rows, cols = _pool_axes(spec)
    fn = backward_of(f"{mode}_{POOL2D}")
    graph = Graph(f"fastcnn-{fn}", gy4.name, x4.name, spec, name)
    grid = (regions(x4.chunks[0]), regions(x4.chunks[1]), *map(regions, x4.chunks[2:]))
    for index, (nr, cr, rr, rc) in blocks(*grid):
        (i0, i1), (j0, j1) = grad_outputs(rows, *rr), grad_outputs(cols, *rc)
        if i0 >= i1 or j0 >= j1:
            shape = (nr[1] - nr[0], cr[1] - cr[0], rr[1] - rr[0], rc[1] - rc[0])
            graph.add(index, (_tasks.zeros, shape, dtype.name))
            continue
        sr, sc = slab(rows, i0, i1), slab(cols, j0, j1)
        dyp = graph.gather(gy4, (nr, cr, (i0, i1), (j0, j1)))
        xp = graph.gather(x4, (nr, cr, sr.rows, sc.rows))
        call = replace(_pool_call(fn, spec, name, sr, sc), place=(place(rr, sr), place(rc, sc)))
        graph.add(index, (_tasks.pool_grad_x, dyp, xp, call))
    gx = graph.array(x4.chunks, dtype, [gy4, x4])
    return gx[0] if unbatched else gx


_POOL_DOC = """{title} pooling of a dask array, lazily: :func:`fastcnn.{fn}` chunk by chunk.

    Parameters are those of :func:`fastcnn.{fn}`, with a dask array ``x`` of shape
    (N, C, H, W) or (C, H, W). Channel and batch chunks are kept; each spatial output
    chunk is computed from one input chunk and the halo its windows need, with padding
    only at the real border, so the result equals the whole-array call (``ceil_mode``
    and the mean's divisor included).
    """

_POOL_BACKWARD_DOC = """Gradient through :func:`{fn}` for dask arrays, lazily, chunked like ``x``.

    Parameters are those of :func:`fastcnn.{fn}_backward`. Each block of ``x`` receives
    the gradients of the outputs whose windows reach it, routed exactly as the
    whole-array call routes them.
    """


def max_pool2d(
    x: Any,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    backend: str | None = None,
) -> da.Array:
    return _pool(
        "max", x, kernel_size, backend,
        stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
    )  # fmt: skip


def min_pool2d(
    x: Any,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    backend: str | None = None,
) -> da.Array:
    return _pool(
        "min", x, kernel_size, backend,
        stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
    )  # fmt: skip


def mean_pool2d(
    x: Any,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    backend: str | None = None,
) -> da.Array:
    return _pool(
        "mean", x, kernel_size, backend,
        stride=stride, padding=padding, ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )  # fmt: skip


def max_pool2d_backward(
    grad_y: Any,
    x: Any,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    backend: str | None = None,
) -> da.Array:
    return _pool_backward(
        "max", grad_y, x, kernel_size, backend,
        stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
    )  # fmt: skip


def min_pool2d_backward(
    grad_y: Any,
    x: Any,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    backend: str | None = None,
) -> da.Array:
    return _pool_backward(
        "min", grad_y, x, kernel_size, backend,
        stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
    )  # fmt: skip


def mean_pool2d_backward(
    grad_y: Any,
    x: Any,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    backend: str | None = None,
) -> da.Array:
    return _pool_backward(
        "mean", grad_y, x, kernel_size, backend,
        stride=stride, padding=padding, ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )  # fmt: skip


for _mode, _title in (("max", "Max"), ("min", "Min"), ("mean", "Mean (average)")):
    _fn = f"{_mode}_{POOL2D}"
    globals()[_fn].__doc__ = _POOL_DOC.format(title=_title, fn=_fn)
    globals()[backward_of(_fn)].__doc__ = _POOL_BACKWARD_DOC.format(fn=_fn)
