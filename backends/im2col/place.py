"""A chunk's GEMM result moved into the output, with the bias, as one compiled pass.

The lowered forward's GEMM leaves a chunk's result as ``(C_out, images, rows, width)``
(the columns past the output's width dropped), while the output is ``(N, C_out, H, W)``.
NumPy's strided add over that transpose ran at 12-16 GB/s on ResNet-18's stride-2 layers
(0.10-0.14 ms for 0.8-1.6 MB, per row runs of 14-29 cells); this loop moves whole rows
at 2-3x that. The 1x1 path (:mod:`.pointwise`) passes each image's plane as one row, the
longest run there is: on the 7x7 outputs of ResNet-18's and MobileNet's last 1x1 layers
it added the bias in 0.010 and 0.022 ms, NumPy's add in 0.027 and 0.055 ms.

It runs on the calling thread, right after a GEMM whose BLAS threads may still be
spinning (see :mod:`.col2im`), and each output cell is written once: deterministic.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastcnn.jit import FASTMATH


@njit(cache=True, fastmath=FASTMATH)
def _place(out, y, n0, r0, bias, add_bias):  # pragma: no cover
    # out: (C_out, nb, rows, width); y: (N, C_out, H, W), rows r0.. of images n0..
    channels, nb, rows = out.shape[:3]
    out_w = y.shape[3]
    for n in range(nb):
        for o in range(channels):
            b = bias[o] if add_bias else y.dtype.type(0)
            for r in range(rows):
                src, dst = out[o, n, r], y[n0 + n, o, r0 + r]
                if add_bias:
                    for t in range(out_w):
                        dst[t] = src[t] + b
                else:
                    for t in range(out_w):
                        dst[t] = src[t]


def place(out: np.ndarray, y: np.ndarray, first: tuple[int, int], bias: np.ndarray | None) -> None:
    """``y[n0 + n, :, r0 + r] = out[:, n, r, :W] + bias`` for a chunk's GEMM result ``out``
    ``(C_out, images, rows, width >= W)``, where ``first`` is ``(n0, r0)``."""
    add_bias = bias is not None
    _place(out, y, *first, bias if add_bias else np.zeros(0, dtype=y.dtype), add_bias)
