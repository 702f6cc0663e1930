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

#: Output rows narrower than this, and than the phases' rows, are lowered through a map
#: of offsets (:func:`_gather_through_map`) rather than copied row by row from the
#: phases: the row copies run as vector loops of 8 cells, and a shorter row runs in the
#: loops' scalar remainder. Against the row copies, in one process, float32 (float64):
#: 0.48-0.73x (0.66-0.86x) the time at widths 4, 6 and 7, but 1.43-1.67x (1.18-1.34x)
#: at width 8 and up to 2.7x on wider rows; 3x3, 5x5 and 7x7 kernels, stride 1 and 2.
MAP_BELOW_WIDTH = 8


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
    if width != wq and width < MAP_BELOW_WIDTH:
        _gather_through_map(x, cols, shape, n0, first, sh, sw, dh, dw, top, left)
        return
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


@njit(cache=True)
def _gather_through_map(x, cols, shape, n0, first, sh, sw, dh, dw, top, left):  # pragma: no cover
    """:func:`gather_columns` where output rows are narrower than the phases' (``width <
    wq``), so that a tap's rows are not one run of its phase.

    Copied row by row from the phases, rows of a few cells (7 on ResNet-18's stride-2
    512@14) cost their loops' fixed work per cell. Instead each plane's part that the
    chunk reads is copied once into a zero-bordered slab, and every tap's columns are
    read from it through one map of slab offsets: a flat loop per tap (see
    :data:`MAP_BELOW_WIDTH`).
    """
    channels, kh, kw, nb, rows, width, height, in_width = shape
    slab_h = (rows - 1) * sh + (kh - 1) * dh + 1
    slab_w = (width - 1) * sw + (kw - 1) * dw + 1
    run = rows * width
    # Column (r, q) of tap (i, j) reads padded cell (first + sh*r + dh*i, sw*q + dw*j),
    # slab cell (sh*r + dh*i, sw*q + dw*j).
    where = np.empty((kh * kw, run), dtype=np.uint32)
    for i in range(kh):
        for j in range(kw):
            for r in range(rows):
                for q in range(width):
                    where[i * kw + j, r * width + q] = (sh * r + dh * i) * slab_w + sw * q + dw * j
    # The padding's cells stay zero: every plane fills the same cells of the slab.
    slab = np.zeros(slab_h * slab_w, dtype=cols.dtype)
    y0, y1 = max(0, first - top), min(height, first - top + slab_h)
    x1 = max(0, min(in_width, slab_w - left))
    for c in range(channels):
        for n in range(nb):
            plane = ((n0 + n) * channels + c) * height * in_width
            for y in range(y0, y1):
                src = x[plane + y * in_width : plane + y * in_width + x1]
                dst = slab[(y + top - first) * slab_w + left :]
                for t in range(x1):
                    dst[t] = src[t]
            for tap in range(kh * kw):
                at = ((c * kh * kw + tap) * nb + n) * run
                out, offsets = cols[at : at + run], where[tap]
                for k in range(run):
                    out[k] = slab[offsets[k]]


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
