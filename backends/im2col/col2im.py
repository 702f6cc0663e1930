"""col2im as one compiled pass: each lowered column's gradient back to its input cell.

Per input plane (one channel of one image), the kh x kw taps' gradients are summed into
the plane's stride phases, where every tap's output rows are one unit-stride run (so the
sums are long vector loops), and the phases are then added to the plane once. In NumPy
the same steps took array operations over runs of 7 to 28 values: on ResNet-18's
stride-2 layers their fixed costs made col2im nearly as slow as one of the two GEMMs
(0.8-1.1 ms; now 0.4).

It runs on the calling thread: OpenBLAS's threads still spin after the GEMM before it,
and a parallel kernel would share the cores with them. Each plane's sums run in a fixed
order, so the result is deterministic.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastcnn.jit import FASTMATH


@njit(cache=True, fastmath=FASTMATH)
def scatter_columns(
    dcols, grad_x, shape, n0, first, sh, sw, dh, dw, top, left, out_w
):  # pragma: no cover
    """The compiled pass of :func:`col2im` on flat arrays, callable from other kernels."""
    # dcols: flat (C, kh, kw, nb, rows, width), columns out_w: dropped; grad_x: flat
    # (N, C, H, W). Padded row `first` of the input is the chunk's first. Indices are
    # flat and unsigned: a view per row costs reference counting, and a signed index a
    # wrap-around check per element that keeps LLVM from vectorising.
    channels, kh, kw, nb, rows, width, height, in_width = shape
    hq = rows + ((kh - 1) * dh) // sh + 1  # phase rows the taps reach, and a spare one
    wq = out_w + ((kw - 1) * dw) // sw  # phase columns the taps reach
    # When a lowered row is as wide as a phase row or wider, as the lowering lays it out,
    # a tap's rows are one flat run in both: one long vector loop instead of a short one
    # per row, once the dropped columns (which overhang into the next phase row) are 0.
    flat = width >= wq
    wq = max(wq, width)
    phases = np.empty(sh * sw * hq * wq, dtype=grad_x.dtype)
    for c in range(channels):
        for n in range(nb):
            phases[:] = 0
            for i in range(kh):
                a, oi = (i * dh) % sh, (i * dh) // sh
                for j in range(kw):
                    b, oj = (j * dw) % sw, (j * dw) // sw
                    src = ((((c * kh + i) * kw + j) * nb + n) * rows) * width
                    dst = ((a * sw + b) * hq + oi) * wq + oj
                    if flat:
                        for r in range(rows):
                            for t in range(out_w, width):
                                dcols[np.uint64(src + r * width + t)] = 0
                        for t in range(rows * width):
                            phases[np.uint64(dst + t)] += dcols[np.uint64(src + t)]
                        continue
                    for _ in range(rows):
                        for t in range(out_w):
                            phases[np.uint64(dst + t)] += dcols[np.uint64(src + t)]
                        src += width
                        dst += wq
            plane = ((n0 + n) * channels + c) * height * in_width
            for a in range(sh):
                for q in range(hq):
                    y = first + a + sh * q - top
                    if y < 0 or y >= height:
                        continue
                    for b in range(sw):
                        # input column b + sw*p - left, inside [0, in_width)
                        p0 = max(0, -((b - left) // sw))
                        p1 = min(wq, (in_width - 1 + left - b) // sw + 1)
                        cells = ((a * sw + b) * hq + q) * wq
                        row = plane + y * in_width + b - left
                        for p in range(p0, p1):
                            grad_x[np.uint64(row + sw * p)] += phases[np.uint64(cells + p)]


def col2im(dcols: np.ndarray, grad_x: np.ndarray, geometry: tuple[int, ...], out_w: int) -> None:
    """Add ``dcols`` ``(C, kh, kw, nb, rows, width)``, the lowered columns' gradients
    (columns from ``out_w`` on dropped, and overwritten with zeros), to the cells of
    ``grad_x`` they were read from.

    ``geometry`` is ``(n0, first, sh, sw, dh, dw, top, left)``: the chunk's first image
    and first padded row, then the stride, dilation, and top and left padding.
    """
    height, width = grad_x.shape[2:]
    shape = (*dcols.shape, height, width)
    scatter_columns(dcols.reshape(-1), grad_x.reshape(-1), shape, *geometry, out_w)
