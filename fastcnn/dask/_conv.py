"""Convolution and its gradients on dask arrays (see :mod:`fastcnn.dask`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

import dask.array as da
import numpy as np

from fastcnn.api import _batched
from fastcnn.dask import _tasks
from fastcnn.dask._graph import (
    Graph,
    as_dask,
    backend_for,
    block_key,
    blocks,
    one_block,
    regions,
    sizes,
    stand_in,
)
from fastcnn.dask._plan import Axis, Slab, grad_outputs, keep, output_chunks, place, slab
from fastcnn.ops import CONV2D, CONV2D_BACKWARD
from fastcnn.registry import ConvGrads
from fastcnn.spec import ConvSpec, check_bias, check_grad_shape, make_conv_spec, result_dtype

_GRAD_NAMES = frozenset({"x", "w", "b"})
#: Partial dW/db sums added per tree node: a few, so the tree stays shallow and each
#: node holds only a few weight-sized arrays.
SPLIT_EVERY = 8
#: (start, stop) of a channel range of x and of the output channels it feeds.
ChannelBlock = tuple[int, int, int, int]


def _conv_axes(spec: ConvSpec) -> tuple[Axis, Axis]:
    top, bottom, left, right = spec.padding
    shape = zip(
        (spec.height, spec.width),
        (spec.out_height, spec.out_width),
        spec.kernel,
        spec.stride,
        spec.dilation,
        ((top, bottom), (left, right)),
        strict=True,
    )
    rows, cols = (Axis(n, o, k, s, d, lo, hi, symmetric=False) for n, o, k, s, d, (lo, hi) in shape)
    return rows, cols


def _channel_blocks(spec: ConvSpec, chunks: tuple[int, ...]) -> list[ChannelBlock]:
    """Input channel ranges a task can convolve alone: whole groups, else all channels."""
    per_group = spec.in_channels // spec.groups
    out_per_group = spec.out_channels // spec.groups
    ranges = regions(chunks)
    if spec.groups > 1 and all(c0 % per_group == 0 for c0, _ in ranges):
        return [
            (c0, c1, c0 // per_group * out_per_group, c1 // per_group * out_per_group)
            for c0, c1 in ranges
        ]
    return [(0, spec.in_channels, 0, spec.out_channels)]


def _conv_call(
    fn: str, spec: ConvSpec, backend: str, ch: ChannelBlock, sr: Slab, sc: Slab
) -> _tasks.Call:
    groups = (ch[1] - ch[0]) // (spec.in_channels // spec.groups)
    kwargs = dict(
        stride=spec.stride,
        padding=(sr.pad_lo, sr.pad_hi, sc.pad_lo, sc.pad_hi),
        dilation=spec.dilation,
        groups=groups,
        backend=backend,
    )
    return _tasks.Call(
        fn,
        kwargs=tuple(kwargs.items()),
        channels=ch[2:],
        keep=keep(sr, sc),
        grad_shape=(sr.call_out, sc.call_out),
    )


def conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple[int, ...] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    backend: str | None = None,
) -> da.Array:
    """2-D cross-correlation of a dask array ``x`` with filters ``w``, lazily.

    Parameters
    ----------
    x : dask.array.Array, shape (N, C_in, H, W) or (C_in, H, W)
        Input, chunked along any axes (other array-likes are taken as one chunk).
    w, b : array_like or dask.array.Array
        Filters and optional bias, small: each task receives them whole.
    stride, padding, dilation, groups, backend
        As in :func:`fastcnn.conv2d`; the backend is resolved now.

    Returns
    -------
    dask.array.Array, shape (N, C_out, OH, OW)
        Equal to ``fastcnn.conv2d`` on the whole array: batch chunks as they are, spatial
        chunks with one output chunk per input chunk, channels in one chunk unless the
        input's channel chunks hold whole groups (see the module's description).
    """
    x4, unbatched = _batched("x", as_dask("x", x))
    wd = one_block(w)
    bd = None if b is None else one_block(b)
    dtype = result_dtype("x, w and b", *(stand_in(a) for a in (x4, wd, bd) if a is not None))
    spec = make_conv_spec(
        stand_in(x4),
        stand_in(wd),
        bias=bd is not None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        dtype=dtype,
    )
    if bd is not None:
        check_bias(stand_in(bd), spec.out_channels)
    name = backend_for(backend, CONV2D, spec)
    rows, cols = _conv_axes(spec)
    chans = _channel_blocks(spec, x4.chunks[1])
    out_rows, out_cols = output_chunks(rows, x4.chunks[2]), output_chunks(cols, x4.chunks[3])
    graph = Graph("fastcnn-conv2d", x4.name, wd.name, bd is not None and bd.name, spec, name)
    b_key = None if bd is None else block_key(bd)
    for index, (nr, ch, ir, ic) in blocks(regions(x4.chunks[0]), chans, out_rows, out_cols):
        sr, sc = slab(rows, *ir), slab(cols, *ic)
        xp = graph.gather(x4, (nr, ch[:2], sr.rows, sc.rows))
        call = _conv_call(CONV2D, spec, name, ch, sr, sc)
        graph.add(index, (_tasks.conv_forward, xp, block_key(wd), b_key, call))
    chunks = (x4.chunks[0], [o1 - o0 for _, _, o0, o1 in chans], sizes(out_rows), sizes(out_cols))
    y = graph.array(chunks, dtype, [x4, wd, bd])
    return y[0] if unbatched else y


def _conv_grad_x(
    gy: da.Array, x: da.Array, wd: da.Array, spec: ConvSpec, name: str, dtype: np.dtype
) -> da.Array:
    """``dL/dx`` per block of x: the ``grad_y`` outputs whose windows reach it."""
    rows, cols = _conv_axes(spec)
    chans = _channel_blocks(spec, x.chunks[1])
    graph = Graph("fastcnn-conv2d-grad-x", gy.name, x.name, wd.name, spec, name)
    in_rows, in_cols = regions(x.chunks[2]), regions(x.chunks[3])
    for index, (nr, ch, rr, rc) in blocks(regions(x.chunks[0]), chans, in_rows, in_cols):
        (i0, i1), (j0, j1) = grad_outputs(rows, *rr), grad_outputs(cols, *rc)
        shape = (nr[1] - nr[0], ch[1] - ch[0], rr[1] - rr[0], rc[1] - rc[0])
        if i0 >= i1 or j0 >= j1:
            graph.add(index, (_tasks.zeros, shape, dtype.name))
            continue
        sr, sc = slab(rows, i0, i1), slab(cols, j0, j1)
        dyp = graph.gather(gy, (nr, ch[2:], (i0, i1), (j0, j1)))
        call = _conv_call(CONV2D_BACKWARD, spec, name, ch, sr, sc)
        call = replace(call, place=(place(rr, sr), place(rc, sc)))
        x_shape = (*shape[:2], sr.stop - sr.start, sc.stop - sc.start)
        graph.add(index, (_tasks.conv_grad_x, dyp, block_key(wd), call, x_shape, x.dtype.name))
    chunks = (x.chunks[0], [c1 - c0 for c0, c1, _, _ in chans], x.chunks[2], x.chunks[3])
    return graph.array(chunks, dtype, [gy, x, wd])


def _conv_grad_wb(
    gy: da.Array, x: da.Array, wd: da.Array, spec: ConvSpec, name: str, need: tuple[str, ...]
) -> list[da.Array | None]:
    """``dL/dw`` and ``dL/db``: partial sums per block of ``grad_y``, added in a tree."""
    rows, cols = _conv_axes(spec)
    chans = _channel_blocks(spec, x.chunks[1])
    parts = Graph("fastcnn-conv2d-grad-wb", gy.name, x.name, wd.name, spec, name, need)
    keys: list[list[Any]] = [[] for _ in chans]
    grid = (regions(gy.chunks[0]), regions(gy.chunks[2]), regions(gy.chunks[3]), chans)
    for index, (nr, ir, ic, ch) in blocks(*grid):
        sr, sc = slab(rows, *ir), slab(cols, *ic)
        dyp = parts.gather(gy, (nr, ch[2:], ir, ic))
        xp = parts.gather(x, (nr, ch[:2], sr.rows, sc.rows))
        call = _conv_call(CONV2D_BACKWARD, spec, name, ch, sr, sc)
        task = (_tasks.conv_grad_wb, dyp, xp, block_key(wd), call, need)
        keys[index[3]].append(parts.add(index, task))
    out_sizes = tuple(o1 - o0 for _, _, o0, o1 in chans)
    tails = {"w": spec.w_shape[1:], "b": ()}
    return [
        _tree_sum(parts, keys, which, field, out_sizes, tails[field], spec.dtype, [gy, x, wd])
        if field in need
        else None
        for which, field in enumerate(("w", "b"))
    ]


def _tree_sum(
    parts: Graph,
    keys: list[list[Any]],
    which: int,
    field: str,
    out_sizes: tuple[int, ...],
    tail: tuple[int, ...],
    dtype: str,
    deps: list[Any],
) -> da.Array:
    """Stack the partial sums (one per block of ``grad_y``) and add them in a tree."""
    stacked = Graph(f"fastcnn-conv2d-grad-{field}", parts.name)
    stacked.layer.update(parts.layer)  # the partials, shared by key with the other field
    for cb, channel_keys in enumerate(keys):
        for p, key in enumerate(channel_keys):
            stacked.add((p, cb, *(0,) * len(tail)), (_tasks.partial, key, which))
    chunks = ((1,) * len(keys[0]), out_sizes, *((n,) for n in tail))
    return stacked.array(chunks, np.dtype(dtype), deps).sum(axis=0, split_every=SPLIT_EVERY)


def conv2d_backward(
    grad_y: Any,
    x: Any,
    w: Any,
    *,
    bias: bool = True,
    need: Collection[str] = ("x", "w", "b"),
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple[int, ...] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    backend: str | None = None,
) -> ConvGrads:
    """Gradients through :func:`conv2d` given a dask array ``grad_y = dL/dy``, lazily.

    Parameters are those of :func:`fastcnn.conv2d_backward`, with dask arrays for
    ``grad_y`` and ``x``. ``dL/dx`` has the chunks of ``x`` (channels as in
    :func:`conv2d`); ``dL/dw`` and ``dL/db`` are partial sums over the blocks of
    ``grad_y`` added in a tree, so they differ from the whole-array call by the rounding
    of a different summation order.

    Returns
    -------
    ConvGrads
        Named tuple ``(x, w, b)`` of dask arrays, ``None`` where not requested.
    """
    wanted = set(need)
    if not wanted <= _GRAD_NAMES:
        raise ValueError(f"need={sorted(wanted)!r} may only name 'x', 'w' and 'b'")
    gy_arr, x_arr = as_dask("grad_y", grad_y), as_dask("x", x)
    x4, unbatched = _batched("x", x_arr)
    gy4 = gy_arr[np.newaxis] if unbatched and gy_arr.ndim == 3 else gy_arr
    wd = one_block(w)
    dtype = result_dtype("grad_y, x and w", *(stand_in(a) for a in (gy_arr, x_arr, wd)))
    spec = make_conv_spec(
        stand_in(x4),
        stand_in(wd),
        bias=bool(bias),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        dtype=dtype,
    )
    check_grad_shape(stand_in(gy4), spec.y_shape)
    name = backend_for(backend, CONV2D_BACKWARD, spec)
    gx = _conv_grad_x(gy4, x4, wd, spec, name, dtype) if "x" in wanted else None
    parts = tuple(f for f in ("w", "b") if f in wanted and (f == "w" or bias))
    gw, gb = _conv_grad_wb(gy4, x4, wd, spec, name, parts) if parts else (None, None)
    return ConvGrads(gx[0] if unbatched and gx is not None else gx, gw, gb)
