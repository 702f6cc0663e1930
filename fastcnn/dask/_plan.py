"""Halo arithmetic along one spatial axis: which input rows a block of outputs needs.

Pure integer arithmetic, no Dask: each block of outputs ``[i0, i1)`` along an axis is
computed by one ordinary front-end call on the input rows its windows touch, with the
op's padding applied only where those windows reach past the real border. The block call
then sees every window exactly as the whole-array call does (the same real cells, the
same padded cells, the same mean divisor), so its outputs are the whole call's outputs.

Output window ``i`` starts at input row ``i * stride - pad_lo`` and spans
``dilation * (kernel - 1) + 1`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate, pairwise

from fastcnn.spec import conv_output_size, pool_output_size


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a windowed op.

    ``symmetric`` marks pooling, whose front end takes one padding for both sides of an
    axis (at most half the kernel): a block call there gets either the op's padding on
    both sides or none, and drops the outputs it computes beyond the block.
    """

    size: int
    out: int
    kernel: int
    stride: int
    dilation: int
    pad_lo: int
    pad_hi: int
    symmetric: bool
    ceil_mode: bool = False

    @property
    def span(self) -> int:
        """Input rows one window covers, dilation included."""
        return self.dilation * (self.kernel - 1) + 1

    def start(self, i: int) -> int:
        """Input row where output ``i``'s window starts (negative inside the padding)."""
        return i * self.stride - self.pad_lo

    def call_out(self, rows: int, pad_lo: int, pad_hi: int) -> int:
        """Outputs a front-end call over ``rows`` input rows with this padding produces."""
        if self.symmetric:
            return pool_output_size(
                rows, pad_lo, self.kernel, self.stride, self.dilation, self.ceil_mode
            )
        return conv_output_size(rows, pad_lo + pad_hi, self.kernel, self.stride, self.dilation)


@dataclass(frozen=True)
class Slab:
    """What one block call sees along an axis, and which of its outputs are kept.

    The call reads input rows ``[start, stop)`` with padding ``(pad_lo, pad_hi)``; its
    outputs ``[skip, skip + count)`` are the whole call's outputs ``[i0, i0 + count)``;
    it produces ``call_out`` outputs in all.
    """

    start: int
    stop: int
    pad_lo: int
    pad_hi: int
    skip: int
    count: int
    call_out: int

    @property
    def rows(self) -> tuple[int, int]:
        """The input rows ``[start, stop)`` the call reads."""
        return (self.start, self.stop)


def slab(axis: Axis, i0: int, i1: int) -> Slab:
    """The block call that computes outputs ``[i0, i1)`` of ``axis`` exactly.

    Convolution takes per-side padding, so the call reads exactly the rows the windows
    touch and pads only what lies past the border. Pooling pads both sides or neither:
    a block at the top border starts at row 0 with the op's padding; a block at the
    bottom border runs to the last row with the op's padding and starts a whole number
    of strides before its first window, at least ``pad`` rows before it, so that no kept
    window sees the block's top padding; an interior block reads its windows' rows
    unpadded. Every kept window then holds the same cells as in the whole call, and
    ``ceil_mode`` windows that run past the border are clipped as in the whole call.
    """
    if i0 == 0 and i1 == axis.out:  # the whole axis: exactly the whole call's parameters
        start, stop, pad_lo, pad_hi, skip = 0, axis.size, axis.pad_lo, axis.pad_hi, 0
    else:
        first, end = axis.start(i0), axis.start(i1 - 1) + axis.span
        top, bottom = first < 0, end > axis.size
        if not axis.symmetric:
            start, stop, pad_lo, pad_hi, skip = _conv_rows(axis, first, end)
        elif top or bottom:
            s = axis.stride
            pad_lo = pad_hi = axis.pad_lo
            start = 0 if top else (i0 - -(-pad_lo // s)) * s
            stop = axis.size if bottom else end
            skip = i0 - start // s
        else:
            start, stop, pad_lo, pad_hi, skip = first, end, 0, 0, 0
    call_out = axis.call_out(stop - start, pad_lo, pad_hi)
    assert skip + i1 - i0 <= call_out, (axis, i0, i1)
    return Slab(start, stop, pad_lo, pad_hi, skip, i1 - i0, call_out)


def _conv_rows(axis: Axis, first: int, end: int) -> tuple[int, int, int, int, int]:
    """Convolution: the rows windows ``[first, end)`` touch, per-side padding for the rest.

    Windows wholly inside a wide padding touch no row, but a call needs one: the block
    then reads the nearest real row, padded so that its windows stay on the stride grid,
    and drops the outputs that reach that row (returns start, stop, pads, skip).
    """
    if end <= 0:
        return 0, 1, -first, 0, 0
    if first >= axis.size:
        last = axis.size - 1
        pad_lo = (last - first) % axis.stride
        return last, axis.size, pad_lo, end - axis.size, (first - last + pad_lo) // axis.stride
    start, stop = max(first, 0), min(end, axis.size)
    return start, stop, start - first, max(end - axis.size, 0), 0


def output_chunks(axis: Axis, chunks: tuple[int, ...]) -> list[tuple[int, int]]:
    """Output ranges, one per input chunk: the outputs ``i`` whose row ``i * stride``
    lies in that chunk.

    That row is where the window starts before padding shifts it, so a stride-1
    convolution with padding "same" keeps the input's chunks, and a stride-s op maps
    chunks that are multiples of s onto chunks s times smaller: a chain of ops keeps
    its chunks aligned. Outputs past the last row (``ceil_mode``, a wide bottom padding)
    go to the last chunk; an input chunk that holds no such row (smaller than the
    stride) gives no output chunk. The halo a range needs is ``pad_lo`` rows before its
    chunk and ``span - 1 - pad_lo`` after.
    """
    bounds = [0, *accumulate(chunks)]
    edges = [min(axis.out, -(-r // axis.stride)) for r in bounds]
    edges[0], edges[-1] = 0, axis.out
    return [(lo, hi) for lo, hi in pairwise(edges) if hi > lo]


def grad_outputs(axis: Axis, r0: int, r1: int) -> tuple[int, int]:
    """Outputs ``[i_lo, i_hi)`` whose windows overlap input rows ``[r0, r1)``.

    These are all the outputs whose gradients reach those rows; the range is empty
    (``i_lo >= i_hi``) when no window covers them.
    """
    i_lo = max(0, (r0 - axis.span + axis.pad_lo) // axis.stride + 1)
    i_hi = min(axis.out, (r1 - 1 + axis.pad_lo) // axis.stride + 1)
    return i_lo, i_hi


def keep(sr: Slab, sc: Slab) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(skip, count)`` per spatial axis: the outputs of a block call that are kept."""
    return (sr.skip, sr.count), (sc.skip, sc.count)


def place(rows: tuple[int, int], s: Slab) -> tuple[int, int, int, int]:
    """Where a call's gradient rows ``[s.start, s.stop)`` land in the block ``rows``.

    ``(size, dst0, src0, length)``: the block of ``size`` rows takes ``length`` rows of
    the call's gradient from ``src0`` at ``dst0``; rows outside are in no window.
    """
    lo, hi = max(rows[0], s.start), min(rows[1], s.stop)
    return (rows[1] - rows[0], lo - rows[0], lo - s.start, max(hi - lo, 0))
