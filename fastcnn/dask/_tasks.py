"""What one task runs on a worker: the ordinary front end on one block.

Only NumPy and fastcnn here (no Dask): these functions are pickled by reference and run
in worker threads or processes, which see neither the caller's context variables nor its
default backend, so every call carries its backend name explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import fastcnn

#: A gathered input: one array, or a 4-deep nested list of pieces for ``np.block``.
Pieces = Any


@dataclass(frozen=True)
class Call:
    """One front-end call on a block, and how its result maps to the output block.

    Attributes
    ----------
    fn : str
        The fastcnn function to call (``"conv2d"``, ``"max_pool2d_backward"``, ...).
    args : tuple
        Positional arguments after the arrays (pooling's ``kernel_size``).
    kwargs : tuple of (str, value)
        Keyword arguments, ``backend`` and per-block ``padding`` included.
    channels : (int, int)
        Convolution: the rows of ``w`` and ``b`` (output channels) this block uses.
    keep : ((int, int), (int, int))
        Forward: outputs ``[skip, skip + count)`` of the call kept, per spatial axis.
        Backward: where the block's ``grad_y`` goes in the call's ``grad_y``.
    grad_shape : (int, int)
        Backward: the call's output size, the spatial shape of its ``grad_y``.
    place : ((int, int, int, int), (int, int, int, int))
        Backward: per spatial axis ``(size, dst0, src0, length)``: the gradient block of
        ``size`` rows takes the call's rows ``[src0, src0 + length)`` at ``dst0``; the
        rest is zero (rows no window reaches).
    """

    fn: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    channels: tuple[int, int] = (0, 0)
    keep: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    grad_shape: tuple[int, int] = (0, 0)
    place: tuple[tuple[int, int, int, int], ...] = ()

    def run(self, *arrays: Any, **extra: Any) -> Any:
        return getattr(fastcnn, self.fn)(*arrays, *self.args, **dict(self.kwargs), **extra)


def take(chunk: np.ndarray, index: tuple[slice, ...]) -> np.ndarray:
    """Part of a chunk, copied: a view would keep the whole chunk in memory while it
    waits for the task that needs only its halo rows."""
    return np.array(chunk[index], copy=True)


def assemble(pieces: Pieces) -> np.ndarray:
    """One array from the pieces a task gathered (a halo crosses chunk borders)."""
    return np.block(pieces) if isinstance(pieces, list) else pieces


def _kept(y: np.ndarray, keep: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    (rs, rc), (cs, cc) = keep
    if (rs, cs) == (0, 0) and y.shape[2:] == (rc, cc):
        return y
    # A copy, so the stored block does not hold the whole call's output alive.
    return np.ascontiguousarray(y[:, :, rs : rs + rc, cs : cs + cc])


def _grad_input(dy: np.ndarray, call: Call) -> np.ndarray:
    """The call's ``grad_y``: the block's, with zeros for the outputs the call drops."""
    (rs, rc), (cs, cc) = call.keep
    if (rs, cs) == (0, 0) and dy.shape[2:] == call.grad_shape:
        return dy
    full = np.zeros((*dy.shape[:2], *call.grad_shape), dy.dtype)
    full[:, :, rs : rs + rc, cs : cs + cc] = dy
    return full


def _placed(gx: np.ndarray, place: tuple[tuple[int, int, int, int], ...]) -> np.ndarray:
    (rsize, rdst, rsrc, rlen), (csize, cdst, csrc, clen) = place
    if gx.shape[2:] == (rsize, csize) and (rdst, rsrc, cdst, csrc) == (0, 0, 0, 0):
        return gx
    out = np.zeros((*gx.shape[:2], rsize, csize), gx.dtype)
    out[:, :, rdst : rdst + rlen, cdst : cdst + clen] = gx[
        :, :, rsrc : rsrc + rlen, csrc : csrc + clen
    ]
    return out


def zeros(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A gradient block that no window reaches."""
    return np.zeros(shape, dtype)


def conv_forward(xp: Pieces, w: np.ndarray, b: np.ndarray | None, call: Call) -> np.ndarray:
    o0, o1 = call.channels
    y = call.run(assemble(xp), w[o0:o1], None if b is None else b[o0:o1])
    return _kept(y, call.keep)


def pool_forward(xp: Pieces, call: Call) -> np.ndarray:
    return _kept(call.run(assemble(xp)), call.keep)


def conv_grad_x(
    dyp: Pieces, w: np.ndarray, call: Call, x_shape: tuple[int, ...], dtype: str
) -> np.ndarray:
    """``dL/dx`` of one block; ``x`` itself is not needed, a stand-in gives its shape."""
    o0, o1 = call.channels
    x = np.broadcast_to(np.zeros((), dtype), x_shape)
    dy = _grad_input(assemble(dyp), call)
    grads = call.run(dy, x, w[o0:o1], need=("x",), bias=False)
    return _placed(grads.x, call.place)


def conv_grad_wb(
    dyp: Pieces, xp: Pieces, w: np.ndarray, call: Call, need: tuple[str, ...]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One block's partial ``dL/dw`` and ``dL/db`` (summed over blocks afterwards)."""
    o0, o1 = call.channels
    dy = _grad_input(assemble(dyp), call)
    grads = call.run(dy, assemble(xp), w[o0:o1], need=need, bias="b" in need)
    return grads.w, grads.b


def pool_grad_x(dyp: Pieces, xp: Pieces, call: Call) -> np.ndarray:
    dy = _grad_input(assemble(dyp), call)
    return _placed(call.run(dy, assemble(xp)), call.place)


def partial(grads: tuple[np.ndarray | None, ...], which: int) -> np.ndarray:
    """One partial sum with a leading axis of 1, to be stacked and summed by Dask."""
    return grads[which][np.newaxis]
