"""Task graphs: one task per output block, reading exactly the input region it needs.

A block's region (its rows plus the halo) may cross chunk borders; the graph then holds
one slicing task per chunk it touches, so that only the rows needed travel between
workers, and the block's task joins them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate, pairwise, product
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from fastcnn import registry
from fastcnn.dask import _tasks
from fastcnn.registry import BackendUnsupported
from fastcnn.spec import ConvSpec, PoolSpec

Region = Sequence[tuple[int, int]]


def _overlaps(chunks: tuple[int, ...], lo: int, hi: int) -> list[tuple[int, slice, bool]]:
    """The chunks of one axis that ``[lo, hi)`` touches: (index, local slice, whole?)."""
    bounds = [0, *accumulate(chunks)]
    first = min(bisect_right(bounds, lo) - 1, len(chunks) - 1)
    if lo == hi:  # an empty batch: an empty slice of one chunk
        local = lo - bounds[first]
        return [(first, slice(local, local), chunks[first] == 0)]
    out = []
    for k in range(first, len(chunks)):
        c0, c1 = bounds[k], bounds[k + 1]
        if c0 >= hi:
            break
        a, b = max(lo, c0), min(hi, c1)
        out.append((k, slice(a - c0, b - c0), (a, b) == (c0, c1)))
    return out


class Graph:
    """The tasks of one new array, built block by block."""

    def __init__(self, prefix: str, *token: Any) -> None:
        self.name = f"{prefix}-{tokenize(*token)}"
        self.layer: dict[Any, Any] = {}
        self._pieces = 0

    def gather(self, array: da.Array, region: Region) -> Any:
        """A task argument that evaluates to ``array[region]``: a key or nested pieces."""
        axes = [_overlaps(c, lo, hi) for c, (lo, hi) in zip(array.chunks, region, strict=True)]

        def piece(parts: tuple[tuple[int, slice, bool], ...]) -> Any:
            key = (array.name, *(k for k, _, _ in parts))
            if all(whole for _, _, whole in parts):
                return key
            self._pieces += 1
            sliced = (f"{self.name}-piece", self._pieces)
            self.layer[sliced] = (_tasks.take, key, tuple(s for _, s, _ in parts))
            return sliced

        if all(len(a) == 1 for a in axes):
            return piece(tuple(a[0] for a in axes))

        def nest(depth: int, chosen: tuple[tuple[int, slice, bool], ...]) -> Any:
            if depth == len(axes):
                return piece(chosen)
            return [nest(depth + 1, (*chosen, part)) for part in axes[depth]]

        return nest(0, ())

    def add(self, index: tuple[int, ...], task: tuple[Any, ...]) -> tuple[Any, ...]:
        key = (self.name, *index)
        self.layer[key] = task
        return key

    def array(
        self, chunks: Sequence[Sequence[int]], dtype: np.dtype, deps: Sequence[Any]
    ) -> da.Array:
        graph = HighLevelGraph.from_collections(
            self.name, self.layer, dependencies=[d for d in deps if d is not None]
        )
        return da.Array(graph, self.name, tuple(tuple(c) for c in chunks), dtype=dtype)


def one_block(array: Any) -> da.Array:
    """A small array (weights, bias) as a dask array of one chunk."""
    out = da.asarray(array)
    return out.rechunk(out.shape) if out.npartitions > 1 else out


def block_key(array: da.Array) -> tuple[Any, ...]:
    """The key of a one-chunk array's only block."""
    return (array.name, *(0,) * array.ndim)


def regions(chunks: tuple[int, ...]) -> list[tuple[int, int]]:
    """``[start, stop)`` of every chunk along one axis."""
    bounds = [0, *accumulate(chunks)]
    return list(pairwise(bounds))


def blocks(*axes: Sequence[Any]) -> Any:
    """Every combination of per-axis blocks, with its index."""
    for combo in product(*(list(enumerate(a)) for a in axes)):
        yield tuple(i for i, _ in combo), tuple(v for _, v in combo)


# --- arguments ------------------------------------------------------------------------------


def as_dask(name: str, value: Any) -> da.Array:
    """``value`` as a dask array with known chunks (an array-like becomes one chunk)."""
    array = value if isinstance(value, da.Array) else da.asarray(value)
    if any(np.isnan(c) for chunks in array.chunks for c in chunks):
        raise ValueError(
            f"{name} has unknown chunk sizes {array.chunks}; call compute_chunk_sizes() first"
        )
    return array


def stand_in(array: Any) -> np.ndarray:
    """A shape-and-dtype-only NumPy array (no memory) for the front end's validation."""
    return np.broadcast_to(np.zeros((), array.dtype), array.shape)


def backend_for(requested: str | None, op: str, spec: ConvSpec | PoolSpec) -> str:
    """The backend name every task uses, checked now rather than on the workers."""
    name = registry.current_backend(requested)
    if name != registry.AUTO:
        reason = registry.unsupported_reason(registry.get_backend(name), op, spec)
        if reason is not None:
            raise BackendUnsupported(f"backend {name!r} cannot run {op} here: {reason}")
    return name


def sizes(ranges: list[tuple[int, int]]) -> tuple[int, ...]:
    """Chunk sizes from ``[start, stop)`` ranges."""
    return tuple(hi - lo for lo, hi in ranges)
