"""The lowered columns of a strided convolution as one compiled pass per input channel.

For each input channel, the chunk's part of its padded planes is split into their
stride phases in a small buffer (tens of KiB, so it stays in cache), and then each
kernel tap's block of its phase, a unit-stride run, is copied into the channel's
lowered rows. NumPy's two steps had been a strided gather into a phase grid in memory
and then the tap blocks: on ResNet-18's stride-2 layers and its stem this pass made the
whole forward 0.85-0.98x as long (interleaved in one process, five rounds).

It runs on the calling thread, as col2im does. A parallel version took a third of the
time alone, but made the whole forward 4-19 % slower than NumPy's steps: the GEMM that
follows it reads columns that the other core wrote, and runs next to the workers'
spinning threads.

Each lowered cell is written once, from one input cell or as a zero: the columns are
the NumPy steps', bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastcnn.jit import readonly


@njit(cache=True)
def gather_columns(
    x, cols, shape, n0, first, sh, sw, dh, dw, top, left, hq, wq
):  # pragma: no cover
    """The compiled pass of :func:`gather` on flat arrays, callable from other kernels.

    ``x`` is the flat input ``(N, C, H, W)`` and ``cols`` the flat columns ``(C, kh, kw,
    nb, rows, width)`` of images ``n0 ..``; ``shape`` is those six sizes and ``(H, W)``.
    Phase (a, b) row q, column p of image n holds padded cell ``(first + a + sh*q, b +
    sw*p)``; the phase rows number ``hq`` (one spare: with ``width == wq`` a tap's run
    overhangs into it) and are ``wq`` wide.
    """
    # Indices are flat and unsigned, as in col2im: a signed index costs a wrap-around
    # check per element that keeps LLVM from vectorising.
    channels, kh, kw, nb, rows, width, height, in_width = shape
    plane, run = hq * wq, rows * width
    phases = np.empty(sh * sw * nb * plane, dtype=cols.dtype)
    for c in range(channels):
        phases[:] = 0  # the padding's cells
        for a in range(sh):
            for b in range(sw):
                # Phase columns p whose input column b + sw*p - left is inside the row.
                p0 = min(wq, max(0, -((b - left) // sw)))
                p1 = max(p0, min(wq, (in_width - 1 + left - b) // sw + 1))
                for n in range(nb):
                    for q in range(hq):
                        y = first + a + sh * q - top
                        if y < 0 or y >= height:
                            continue
                        src = (((n0 + n) * channels + c) * height + y) * in_width + b - left
                        dst = (((a * sw + b) * nb + n) * hq + q) * wq
                        for p in range(p0, p1):
                            phases[np.uint64(dst + p)] = x[np.uint64(src + sw * p)]
        for i in range(kh):
            a, oi = (i * dh) % sh, (i * dh) // sh
            for j in range(kw):
                b, oj = (j * dw) % sw, (j * dw) // sw
                for n in range(nb):
                    dst = (((c * kh + i) * kw + j) * nb + n) * run
                    src = ((a * sw + b) * nb + n) * plane + oi * wq + oj
                    if width == wq:  # the tap's rows are one run of its phase
                        for t in range(run):
                            cols[np.uint64(dst + t)] = phases[np.uint64(src + t)]
                        continue
                    for _ in range(rows):
                        for t in range(width):
                            cols[np.uint64(dst + t)] = phases[np.uint64(src + t)]
                        dst += width
                        src += wq


def gather(
    x: np.ndarray, cols: np.ndarray, geometry: tuple[int, ...], phase_shape: tuple[int, int]
) -> None:
    """Fill ``cols`` ``(C, kh, kw, nb, rows, width)`` with the windows of images
    ``n0 ..`` of ``x``.

    ``geometry`` is ``(n0, first, sh, sw, dh, dw, top, left)``: the chunk's first image
    and first padded row, the stride, dilation, and top and left padding;
    ``phase_shape`` is ``(hq, wq)``, the rows (one spare) and columns of a stride phase
    of the chunk's padded input, with ``width`` either ``wq`` or at most ``wq`` minus
    the kernel's reach.
    """
    shape = (*cols.shape, *x.shape[2:])
    gather_columns(readonly(x).reshape(-1), cols.reshape(-1), shape, *geometry, *phase_shape)
