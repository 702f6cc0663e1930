"""Winograd transform kernels, GENERATED from the matrices of ``transforms.py`` by
``python -m fastcnn.backends.winograd.transforms``; do not edit (a test checks that this
file is current).
"""

# ruff: noqa: E501

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH

#: Tiles transformed together by one task: the vector length of the generated loops.
BLOCK = 128
IN_KERNELS = ('bt2', 'bt4', 'g2', 'g4', 'a2', 'a4')
OUT_KERNELS = ('at2', 'at4', 'gt2', 'gt4')


@njit(cache=True, fastmath=FASTMATH)
def _in_bt2(win, half, out, at, nq, kc):  # pragma: no cover
    """``out[u*4 + v, at + q] = (L win[:, :, q] L^T)[u, v]``, L = bt2."""
    for q in range(nq):
        half[0, 0, q] = win[0, 0, q] - win[2, 0, q]
    for q in range(nq):
        half[0, 1, q] = win[0, 1, q] - win[2, 1, q]
    for q in range(nq):
        half[0, 2, q] = win[0, 2, q] - win[2, 2, q]
    for q in range(nq):
        half[0, 3, q] = win[0, 3, q] - win[2, 3, q]
    for q in range(nq):
        half[1, 0, q] = win[1, 0, q] + win[2, 0, q]
    for q in range(nq):
        half[1, 1, q] = win[1, 1, q] + win[2, 1, q]
    for q in range(nq):
        half[1, 2, q] = win[1, 2, q] + win[2, 2, q]
    for q in range(nq):
        half[1, 3, q] = win[1, 3, q] + win[2, 3, q]
    for q in range(nq):
        half[2, 0, q] = -win[1, 0, q] + win[2, 0, q]
    for q in range(nq):
        half[2, 1, q] = -win[1, 1, q] + win[2, 1, q]
    for q in range(nq):
        half[2, 2, q] = -win[1, 2, q] + win[2, 2, q]
    for q in range(nq):
        half[2, 3, q] = -win[1, 3, q] + win[2, 3, q]
    for q in range(nq):
        half[3, 0, q] = -win[1, 0, q] + win[3, 0, q]
    for q in range(nq):
        half[3, 1, q] = -win[1, 1, q] + win[3, 1, q]
    for q in range(nq):
        half[3, 2, q] = -win[1, 2, q] + win[3, 2, q]
    for q in range(nq):
        half[3, 3, q] = -win[1, 3, q] + win[3, 3, q]
    for q in range(nq):
        out[0, at + q] = half[0, 0, q] - half[0, 2, q]
    for q in range(nq):
        out[1, at + q] = half[0, 1, q] + half[0, 2, q]
    for q in range(nq):
        out[2, at + q] = -half[0, 1, q] + half[0, 2, q]
    for q in range(nq):
        out[3, at + q] = -half[0, 1, q] + half[0, 3, q]
    for q in range(nq):
        out[4, at + q] = half[1, 0, q] - half[1, 2, q]
    for q in range(nq):
        out[5, at + q] = half[1, 1, q] + half[1, 2, q]
    for q in range(nq):
        out[6, at + q] = -half[1, 1, q] + half[1, 2, q]
    for q in range(nq):
        out[7, at + q] = -half[1, 1, q] + half[1, 3, q]
    for q in range(nq):
        out[8, at + q] = half[2, 0, q] - half[2, 2, q]
    for q in range(nq):
        out[9, at + q] = half[2, 1, q] + half[2, 2, q]
    for q in range(nq):
        out[10, at + q] = -half[2, 1, q] + half[2, 2, q]
    for q in range(nq):
        out[11, at + q] = -half[2, 1, q] + half[2, 3, q]
    for q in range(nq):
        out[12, at + q] = half[3, 0, q] - half[3, 2, q]
    for q in range(nq):
        out[13, at + q] = half[3, 1, q] + half[3, 2, q]
    for q in range(nq):
        out[14, at + q] = -half[3, 1, q] + half[3, 2, q]
    for q in range(nq):
        out[15, at + q] = -half[3, 1, q] + half[3, 3, q]


@njit(cache=True, fastmath=FASTMATH)
def _in_bt4(win, half, out, at, nq, kc):  # pragma: no cover
    """``out[u*6 + v, at + q] = (L win[:, :, q] L^T)[u, v]``, L = bt4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    for q in range(nq):
        half[0, 0, q] = win[0, 0, q] - k1 * win[1, 0, q] - k2 * win[2, 0, q] + k1 * win[3, 0, q] + win[4, 0, q]
    for q in range(nq):
        half[0, 1, q] = win[0, 1, q] - k1 * win[1, 1, q] - k2 * win[2, 1, q] + k1 * win[3, 1, q] + win[4, 1, q]
    for q in range(nq):
        half[0, 2, q] = win[0, 2, q] - k1 * win[1, 2, q] - k2 * win[2, 2, q] + k1 * win[3, 2, q] + win[4, 2, q]
    for q in range(nq):
        half[0, 3, q] = win[0, 3, q] - k1 * win[1, 3, q] - k2 * win[2, 3, q] + k1 * win[3, 3, q] + win[4, 3, q]
    for q in range(nq):
        half[0, 4, q] = win[0, 4, q] - k1 * win[1, 4, q] - k2 * win[2, 4, q] + k1 * win[3, 4, q] + win[4, 4, q]
    for q in range(nq):
        half[0, 5, q] = win[0, 5, q] - k1 * win[1, 5, q] - k2 * win[2, 5, q] + k1 * win[3, 5, q] + win[4, 5, q]
    for q in range(nq):
        half[1, 0, q] = -win[1, 0, q] + k0 * win[2, 0, q] + k3 * win[3, 0, q] + win[4, 0, q]
    for q in range(nq):
        half[1, 1, q] = -win[1, 1, q] + k0 * win[2, 1, q] + k3 * win[3, 1, q] + win[4, 1, q]
    for q in range(nq):
        half[1, 2, q] = -win[1, 2, q] + k0 * win[2, 2, q] + k3 * win[3, 2, q] + win[4, 2, q]
    for q in range(nq):
        half[1, 3, q] = -win[1, 3, q] + k0 * win[2, 3, q] + k3 * win[3, 3, q] + win[4, 3, q]
    for q in range(nq):
        half[1, 4, q] = -win[1, 4, q] + k0 * win[2, 4, q] + k3 * win[3, 4, q] + win[4, 4, q]
    for q in range(nq):
        half[1, 5, q] = -win[1, 5, q] + k0 * win[2, 5, q] + k3 * win[3, 5, q] + win[4, 5, q]
    for q in range(nq):
        half[2, 0, q] = -win[1, 0, q] + k3 * win[2, 0, q] - k0 * win[3, 0, q] - win[4, 0, q]
    for q in range(nq):
        half[2, 1, q] = -win[1, 1, q] + k3 * win[2, 1, q] - k0 * win[3, 1, q] - win[4, 1, q]
    for q in range(nq):
        half[2, 2, q] = -win[1, 2, q] + k3 * win[2, 2, q] - k0 * win[3, 2, q] - win[4, 2, q]
    for q in range(nq):
        half[2, 3, q] = -win[1, 3, q] + k3 * win[2, 3, q] - k0 * win[3, 3, q] - win[4, 3, q]
    for q in range(nq):
        half[2, 4, q] = -win[1, 4, q] + k3 * win[2, 4, q] - k0 * win[3, 4, q] - win[4, 4, q]
    for q in range(nq):
        half[2, 5, q] = -win[1, 5, q] + k3 * win[2, 5, q] - k0 * win[3, 5, q] - win[4, 5, q]
    for q in range(nq):
        half[3, 0, q] = k2 * win[1, 0, q] + win[2, 0, q] - k2 * win[3, 0, q] - win[4, 0, q]
    for q in range(nq):
        half[3, 1, q] = k2 * win[1, 1, q] + win[2, 1, q] - k2 * win[3, 1, q] - win[4, 1, q]
    for q in range(nq):
        half[3, 2, q] = k2 * win[1, 2, q] + win[2, 2, q] - k2 * win[3, 2, q] - win[4, 2, q]
    for q in range(nq):
        half[3, 3, q] = k2 * win[1, 3, q] + win[2, 3, q] - k2 * win[3, 3, q] - win[4, 3, q]
    for q in range(nq):
        half[3, 4, q] = k2 * win[1, 4, q] + win[2, 4, q] - k2 * win[3, 4, q] - win[4, 4, q]
    for q in range(nq):
        half[3, 5, q] = k2 * win[1, 5, q] + win[2, 5, q] - k2 * win[3, 5, q] - win[4, 5, q]
    for q in range(nq):
        half[4, 0, q] = k0 * win[1, 0, q] - win[2, 0, q] - k0 * win[3, 0, q] + win[4, 0, q]
    for q in range(nq):
        half[4, 1, q] = k0 * win[1, 1, q] - win[2, 1, q] - k0 * win[3, 1, q] + win[4, 1, q]
    for q in range(nq):
        half[4, 2, q] = k0 * win[1, 2, q] - win[2, 2, q] - k0 * win[3, 2, q] + win[4, 2, q]
    for q in range(nq):
        half[4, 3, q] = k0 * win[1, 3, q] - win[2, 3, q] - k0 * win[3, 3, q] + win[4, 3, q]
    for q in range(nq):
        half[4, 4, q] = k0 * win[1, 4, q] - win[2, 4, q] - k0 * win[3, 4, q] + win[4, 4, q]
    for q in range(nq):
        half[4, 5, q] = k0 * win[1, 5, q] - win[2, 5, q] - k0 * win[3, 5, q] + win[4, 5, q]
    for q in range(nq):
        half[5, 0, q] = win[1, 0, q] - k1 * win[2, 0, q] - k2 * win[3, 0, q] + k1 * win[4, 0, q] + win[5, 0, q]
    for q in range(nq):
        half[5, 1, q] = win[1, 1, q] - k1 * win[2, 1, q] - k2 * win[3, 1, q] + k1 * win[4, 1, q] + win[5, 1, q]
    for q in range(nq):
        half[5, 2, q] = win[1, 2, q] - k1 * win[2, 2, q] - k2 * win[3, 2, q] + k1 * win[4, 2, q] + win[5, 2, q]
    for q in range(nq):
        half[5, 3, q] = win[1, 3, q] - k1 * win[2, 3, q] - k2 * win[3, 3, q] + k1 * win[4, 3, q] + win[5, 3, q]
    for q in range(nq):
        half[5, 4, q] = win[1, 4, q] - k1 * win[2, 4, q] - k2 * win[3, 4, q] + k1 * win[4, 4, q] + win[5, 4, q]
    for q in range(nq):
        half[5, 5, q] = win[1, 5, q] - k1 * win[2, 5, q] - k2 * win[3, 5, q] + k1 * win[4, 5, q] + win[5, 5, q]
    for q in range(nq):
        out[0, at + q] = half[0, 0, q] - k1 * half[0, 1, q] - k2 * half[0, 2, q] + k1 * half[0, 3, q] + half[0, 4, q]
    for q in range(nq):
        out[1, at + q] = -half[0, 1, q] + k0 * half[0, 2, q] + k3 * half[0, 3, q] + half[0, 4, q]
    for q in range(nq):
        out[2, at + q] = -half[0, 1, q] + k3 * half[0, 2, q] - k0 * half[0, 3, q] - half[0, 4, q]
    for q in range(nq):
        out[3, at + q] = k2 * half[0, 1, q] + half[0, 2, q] - k2 * half[0, 3, q] - half[0, 4, q]
    for q in range(nq):
        out[4, at + q] = k0 * half[0, 1, q] - half[0, 2, q] - k0 * half[0, 3, q] + half[0, 4, q]
    for q in range(nq):
        out[5, at + q] = half[0, 1, q] - k1 * half[0, 2, q] - k2 * half[0, 3, q] + k1 * half[0, 4, q] + half[0, 5, q]
    for q in range(nq):
        out[6, at + q] = half[1, 0, q] - k1 * half[1, 1, q] - k2 * half[1, 2, q] + k1 * half[1, 3, q] + half[1, 4, q]
    for q in range(nq):
        out[7, at + q] = -half[1, 1, q] + k0 * half[1, 2, q] + k3 * half[1, 3, q] + half[1, 4, q]
    for q in range(nq):
        out[8, at + q] = -half[1, 1, q] + k3 * half[1, 2, q] - k0 * half[1, 3, q] - half[1, 4, q]
    for q in range(nq):
        out[9, at + q] = k2 * half[1, 1, q] + half[1, 2, q] - k2 * half[1, 3, q] - half[1, 4, q]
    for q in range(nq):
        out[10, at + q] = k0 * half[1, 1, q] - half[1, 2, q] - k0 * half[1, 3, q] + half[1, 4, q]
    for q in range(nq):
        out[11, at + q] = half[1, 1, q] - k1 * half[1, 2, q] - k2 * half[1, 3, q] + k1 * half[1, 4, q] + half[1, 5, q]
    for q in range(nq):
        out[12, at + q] = half[2, 0, q] - k1 * half[2, 1, q] - k2 * half[2, 2, q] + k1 * half[2, 3, q] + half[2, 4, q]
    for q in range(nq):
        out[13, at + q] = -half[2, 1, q] + k0 * half[2, 2, q] + k3 * half[2, 3, q] + half[2, 4, q]
    for q in range(nq):
        out[14, at + q] = -half[2, 1, q] + k3 * half[2, 2, q] - k0 * half[2, 3, q] - half[2, 4, q]
    for q in range(nq):
        out[15, at + q] = k2 * half[2, 1, q] + half[2, 2, q] - k2 * half[2, 3, q] - half[2, 4, q]
    for q in range(nq):
        out[16, at + q] = k0 * half[2, 1, q] - half[2, 2, q] - k0 * half[2, 3, q] + half[2, 4, q]
    for q in range(nq):
        out[17, at + q] = half[2, 1, q] - k1 * half[2, 2, q] - k2 * half[2, 3, q] + k1 * half[2, 4, q] + half[2, 5, q]
    for q in range(nq):
        out[18, at + q] = half[3, 0, q] - k1 * half[3, 1, q] - k2 * half[3, 2, q] + k1 * half[3, 3, q] + half[3, 4, q]
    for q in range(nq):
        out[19, at + q] = -half[3, 1, q] + k0 * half[3, 2, q] + k3 * half[3, 3, q] + half[3, 4, q]
    for q in range(nq):
        out[20, at + q] = -half[3, 1, q] + k3 * half[3, 2, q] - k0 * half[3, 3, q] - half[3, 4, q]
    for q in range(nq):
        out[21, at + q] = k2 * half[3, 1, q] + half[3, 2, q] - k2 * half[3, 3, q] - half[3, 4, q]
    for q in range(nq):
        out[22, at + q] = k0 * half[3, 1, q] - half[3, 2, q] - k0 * half[3, 3, q] + half[3, 4, q]
    for q in range(nq):
        out[23, at + q] = half[3, 1, q] - k1 * half[3, 2, q] - k2 * half[3, 3, q] + k1 * half[3, 4, q] + half[3, 5, q]
    for q in range(nq):
        out[24, at + q] = half[4, 0, q] - k1 * half[4, 1, q] - k2 * half[4, 2, q] + k1 * half[4, 3, q] + half[4, 4, q]
    for q in range(nq):
        out[25, at + q] = -half[4, 1, q] + k0 * half[4, 2, q] + k3 * half[4, 3, q] + half[4, 4, q]
    for q in range(nq):
        out[26, at + q] = -half[4, 1, q] + k3 * half[4, 2, q] - k0 * half[4, 3, q] - half[4, 4, q]
    for q in range(nq):
        out[27, at + q] = k2 * half[4, 1, q] + half[4, 2, q] - k2 * half[4, 3, q] - half[4, 4, q]
    for q in range(nq):
        out[28, at + q] = k0 * half[4, 1, q] - half[4, 2, q] - k0 * half[4, 3, q] + half[4, 4, q]
    for q in range(nq):
        out[29, at + q] = half[4, 1, q] - k1 * half[4, 2, q] - k2 * half[4, 3, q] + k1 * half[4, 4, q] + half[4, 5, q]
    for q in range(nq):
        out[30, at + q] = half[5, 0, q] - k1 * half[5, 1, q] - k2 * half[5, 2, q] + k1 * half[5, 3, q] + half[5, 4, q]
    for q in range(nq):
        out[31, at + q] = -half[5, 1, q] + k0 * half[5, 2, q] + k3 * half[5, 3, q] + half[5, 4, q]
    for q in range(nq):
        out[32, at + q] = -half[5, 1, q] + k3 * half[5, 2, q] - k0 * half[5, 3, q] - half[5, 4, q]
    for q in range(nq):
        out[33, at + q] = k2 * half[5, 1, q] + half[5, 2, q] - k2 * half[5, 3, q] - half[5, 4, q]
    for q in range(nq):
        out[34, at + q] = k0 * half[5, 1, q] - half[5, 2, q] - k0 * half[5, 3, q] + half[5, 4, q]
    for q in range(nq):
        out[35, at + q] = half[5, 1, q] - k1 * half[5, 2, q] - k2 * half[5, 3, q] + k1 * half[5, 4, q] + half[5, 5, q]


@njit(cache=True, fastmath=FASTMATH)
def _in_g2(win, half, out, at, nq, kc):  # pragma: no cover
    """``out[u*4 + v, at + q] = (L win[:, :, q] L^T)[u, v]``, L = g2."""
    k0 = kc[0]
    for q in range(nq):
        half[0, 0, q] = win[0, 0, q]
    for q in range(nq):
        half[0, 1, q] = win[0, 1, q]
    for q in range(nq):
        half[0, 2, q] = win[0, 2, q]
    for q in range(nq):
        half[1, 0, q] = k0 * win[0, 0, q] + k0 * win[1, 0, q] + k0 * win[2, 0, q]
    for q in range(nq):
        half[1, 1, q] = k0 * win[0, 1, q] + k0 * win[1, 1, q] + k0 * win[2, 1, q]
    for q in range(nq):
        half[1, 2, q] = k0 * win[0, 2, q] + k0 * win[1, 2, q] + k0 * win[2, 2, q]
    for q in range(nq):
        half[2, 0, q] = k0 * win[0, 0, q] - k0 * win[1, 0, q] + k0 * win[2, 0, q]
    for q in range(nq):
        half[2, 1, q] = k0 * win[0, 1, q] - k0 * win[1, 1, q] + k0 * win[2, 1, q]
    for q in range(nq):
        half[2, 2, q] = k0 * win[0, 2, q] - k0 * win[1, 2, q] + k0 * win[2, 2, q]
    for q in range(nq):
        half[3, 0, q] = win[2, 0, q]
    for q in range(nq):
        half[3, 1, q] = win[2, 1, q]
    for q in range(nq):
        half[3, 2, q] = win[2, 2, q]
    for q in range(nq):
        out[0, at + q] = half[0, 0, q]
    for q in range(nq):
        out[1, at + q] = k0 * half[0, 0, q] + k0 * half[0, 1, q] + k0 * half[0, 2, q]
    for q in range(nq):
        out[2, at + q] = k0 * half[0, 0, q] - k0 * half[0, 1, q] + k0 * half[0, 2, q]
    for q in range(nq):
        out[3, at + q] = half[0, 2, q]
    for q in range(nq):
        out[4, at + q] = half[1, 0, q]
    for q in range(nq):
        out[5, at + q] = k0 * half[1, 0, q] + k0 * half[1, 1, q] + k0 * half[1, 2, q]
    for q in range(nq):
        out[6, at + q] = k0 * half[1, 0, q] - k0 * half[1, 1, q] + k0 * half[1, 2, q]
    for q in range(nq):
        out[7, at + q] = half[1, 2, q]
    for q in range(nq):
        out[8, at + q] = half[2, 0, q]
    for q in range(nq):
        out[9, at + q] = k0 * half[2, 0, q] + k0 * half[2, 1, q] + k0 * half[2, 2, q]
    for q in range(nq):
        out[10, at + q] = k0 * half[2, 0, q] - k0 * half[2, 1, q] + k0 * half[2, 2, q]
    for q in range(nq):
        out[11, at + q] = half[2, 2, q]
    for q in range(nq):
        out[12, at + q] = half[3, 0, q]
    for q in range(nq):
        out[13, at + q] = k0 * half[3, 0, q] + k0 * half[3, 1, q] + k0 * half[3, 2, q]
    for q in range(nq):
        out[14, at + q] = k0 * half[3, 0, q] - k0 * half[3, 1, q] + k0 * half[3, 2, q]
    for q in range(nq):
        out[15, at + q] = half[3, 2, q]


@njit(cache=True, fastmath=FASTMATH)
def _in_g4(win, half, out, at, nq, kc):  # pragma: no cover
    """``out[u*6 + v, at + q] = (L win[:, :, q] L^T)[u, v]``, L = g4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    k4 = kc[4]
    k5 = kc[5]
    for q in range(nq):
        half[0, 0, q] = win[0, 0, q]
    for q in range(nq):
        half[0, 1, q] = win[0, 1, q]
    for q in range(nq):
        half[0, 2, q] = win[0, 2, q]
    for q in range(nq):
        half[1, 0, q] = k3 * win[0, 0, q] + k3 * win[1, 0, q] + k3 * win[2, 0, q]
    for q in range(nq):
        half[1, 1, q] = k3 * win[0, 1, q] + k3 * win[1, 1, q] + k3 * win[2, 1, q]
    for q in range(nq):
        half[1, 2, q] = k3 * win[0, 2, q] + k3 * win[1, 2, q] + k3 * win[2, 2, q]
    for q in range(nq):
        half[2, 0, q] = k3 * win[0, 0, q] - k3 * win[1, 0, q] + k3 * win[2, 0, q]
    for q in range(nq):
        half[2, 1, q] = k3 * win[0, 1, q] - k3 * win[1, 1, q] + k3 * win[2, 1, q]
    for q in range(nq):
        half[2, 2, q] = k3 * win[0, 2, q] - k3 * win[1, 2, q] + k3 * win[2, 2, q]
    for q in range(nq):
        half[3, 0, q] = k5 * win[0, 0, q] + k4 * win[1, 0, q] + k2 * win[2, 0, q]
    for q in range(nq):
        half[3, 1, q] = k5 * win[0, 1, q] + k4 * win[1, 1, q] + k2 * win[2, 1, q]
    for q in range(nq):
        half[3, 2, q] = k5 * win[0, 2, q] + k4 * win[1, 2, q] + k2 * win[2, 2, q]
    for q in range(nq):
        half[4, 0, q] = k0 * win[0, 0, q] - k1 * win[1, 0, q] + k2 * win[2, 0, q]
    for q in range(nq):
        half[4, 1, q] = k0 * win[0, 1, q] - k1 * win[1, 1, q] + k2 * win[2, 1, q]
    for q in range(nq):
        half[4, 2, q] = k0 * win[0, 2, q] - k1 * win[1, 2, q] + k2 * win[2, 2, q]
    for q in range(nq):
        half[5, 0, q] = win[2, 0, q]
    for q in range(nq):
        half[5, 1, q] = win[2, 1, q]
    for q in range(nq):
        half[5, 2, q] = win[2, 2, q]
    for q in range(nq):
        out[0, at + q] = half[0, 0, q]
    for q in range(nq):
        out[1, at + q] = k3 * half[0, 0, q] + k3 * half[0, 1, q] + k3 * half[0, 2, q]
    for q in range(nq):
        out[2, at + q] = k3 * half[0, 0, q] - k3 * half[0, 1, q] + k3 * half[0, 2, q]
    for q in range(nq):
        out[3, at + q] = k5 * half[0, 0, q] + k4 * half[0, 1, q] + k2 * half[0, 2, q]
    for q in range(nq):
        out[4, at + q] = k0 * half[0, 0, q] - k1 * half[0, 1, q] + k2 * half[0, 2, q]
    for q in range(nq):
        out[5, at + q] = half[0, 2, q]
    for q in range(nq):
        out[6, at + q] = half[1, 0, q]
    for q in range(nq):
        out[7, at + q] = k3 * half[1, 0, q] + k3 * half[1, 1, q] + k3 * half[1, 2, q]
    for q in range(nq):
        out[8, at + q] = k3 * half[1, 0, q] - k3 * half[1, 1, q] + k3 * half[1, 2, q]
    for q in range(nq):
        out[9, at + q] = k5 * half[1, 0, q] + k4 * half[1, 1, q] + k2 * half[1, 2, q]
    for q in range(nq):
        out[10, at + q] = k0 * half[1, 0, q] - k1 * half[1, 1, q] + k2 * half[1, 2, q]
    for q in range(nq):
        out[11, at + q] = half[1, 2, q]
    for q in range(nq):
        out[12, at + q] = half[2, 0, q]
    for q in range(nq):
        out[13, at + q] = k3 * half[2, 0, q] + k3 * half[2, 1, q] + k3 * half[2, 2, q]
    for q in range(nq):
        out[14, at + q] = k3 * half[2, 0, q] - k3 * half[2, 1, q] + k3 * half[2, 2, q]
    for q in range(nq):
        out[15, at + q] = k5 * half[2, 0, q] + k4 * half[2, 1, q] + k2 * half[2, 2, q]
    for q in range(nq):
        out[16, at + q] = k0 * half[2, 0, q] - k1 * half[2, 1, q] + k2 * half[2, 2, q]
    for q in range(nq):
        out[17, at + q] = half[2, 2, q]
    for q in range(nq):
        out[18, at + q] = half[3, 0, q]
    for q in range(nq):
        out[19, at + q] = k3 * half[3, 0, q] + k3 * half[3, 1, q] + k3 * half[3, 2, q]
    for q in range(nq):
        out[20, at + q] = k3 * half[3, 0, q] - k3 * half[3, 1, q] + k3 * half[3, 2, q]
    for q in range(nq):
        out[21, at + q] = k5 * half[3, 0, q] + k4 * half[3, 1, q] + k2 * half[3, 2, q]
    for q in range(nq):
        out[22, at + q] = k0 * half[3, 0, q] - k1 * half[3, 1, q] + k2 * half[3, 2, q]
    for q in range(nq):
        out[23, at + q] = half[3, 2, q]
    for q in range(nq):
        out[24, at + q] = half[4, 0, q]
    for q in range(nq):
        out[25, at + q] = k3 * half[4, 0, q] + k3 * half[4, 1, q] + k3 * half[4, 2, q]
    for q in range(nq):
        out[26, at + q] = k3 * half[4, 0, q] - k3 * half[4, 1, q] + k3 * half[4, 2, q]
    for q in range(nq):
        out[27, at + q] = k5 * half[4, 0, q] + k4 * half[4, 1, q] + k2 * half[4, 2, q]
    for q in range(nq):
        out[28, at + q] = k0 * half[4, 0, q] - k1 * half[4, 1, q] + k2 * half[4, 2, q]
    for q in range(nq):
        out[29, at + q] = half[4, 2, q]
    for q in range(nq):
        out[30, at + q] = half[5, 0, q]
    for q in range(nq):
        out[31, at + q] = k3 * half[5, 0, q] + k3 * half[5, 1, q] + k3 * half[5, 2, q]
    for q in range(nq):
        out[32, at + q] = k3 * half[5, 0, q] - k3 * half[5, 1, q] + k3 * half[5, 2, q]
    for q in range(nq):
        out[33, at + q] = k5 * half[5, 0, q] + k4 * half[5, 1, q] + k2 * half[5, 2, q]
    for q in range(nq):
        out[34, at + q] = k0 * half[5, 0, q] - k1 * half[5, 1, q] + k2 * half[5, 2, q]
    for q in range(nq):
        out[35, at + q] = half[5, 2, q]


@njit(cache=True, fastmath=FASTMATH)
def _in_a2(win, half, out, at, nq, kc):  # pragma: no cover
    """``out[u*4 + v, at + q] = (L win[:, :, q] L^T)[u, v]``, L = a2."""
    for q in range(nq):
        half[0, 0, q] = win[0, 0, q]
    for q in range(nq):
        half[0, 1, q] = win[0, 1, q]
    for q in range(nq):
        half[1, 0, q] = win[0, 0, q] + win[1, 0, q]
    for q in range(nq):
        half[1, 1, q] = win[0, 1, q] + win[1, 1, q]
    for q in range(nq):
        half[2, 0, q] = win[0, 0, q] - win[1, 0, q]
    for q in range(nq):
        half[2, 1, q] = win[0, 1, q] - win[1, 1, q]
    for q in range(nq):
        half[3, 0, q] = win[1, 0, q]
    for q in range(nq):
        half[3, 1, q] = win[1, 1, q]
    for q in range(nq):
        out[0, at + q] = half[0, 0, q]
    for q in range(nq):
        out[1, at + q] = half[0, 0, q] + half[0, 1, q]
    for q in range(nq):
        out[2, at + q] = half[0, 0, q] - half[0, 1, q]
    for q in range(nq):
        out[3, at + q] = half[0, 1, q]
    for q in range(nq):
        out[4, at + q] = half[1, 0, q]
    for q in range(nq):
        out[5, at + q] = half[1, 0, q] + half[1, 1, q]
    for q in range(nq):
        out[6, at + q] = half[1, 0, q] - half[1, 1, q]
    for q in range(nq):
        out[7, at + q] = half[1, 1, q]
    for q in range(nq):
        out[8, at + q] = half[2, 0, q]
    for q in range(nq):
        out[9, at + q] = half[2, 0, q] + half[2, 1, q]
    for q in range(nq):
        out[10, at + q] = half[2, 0, q] - half[2, 1, q]
    for q in range(nq):
        out[11, at + q] = half[2, 1, q]
    for q in range(nq):
        out[12, at + q] = half[3, 0, q]
    for q in range(nq):
        out[13, at + q] = half[3, 0, q] + half[3, 1, q]
    for q in range(nq):
        out[14, at + q] = half[3, 0, q] - half[3, 1, q]
    for q in range(nq):
        out[15, at + q] = half[3, 1, q]


@njit(cache=True, fastmath=FASTMATH)
def _in_a4(win, half, out, at, nq, kc):  # pragma: no cover
    """``out[u*6 + v, at + q] = (L win[:, :, q] L^T)[u, v]``, L = a4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    k4 = kc[4]
    k5 = kc[5]
    for q in range(nq):
        half[0, 0, q] = win[0, 0, q]
    for q in range(nq):
        half[0, 1, q] = win[0, 1, q]
    for q in range(nq):
        half[0, 2, q] = win[0, 2, q]
    for q in range(nq):
        half[0, 3, q] = win[0, 3, q]
    for q in range(nq):
        half[1, 0, q] = win[0, 0, q] + win[1, 0, q] + win[2, 0, q] + win[3, 0, q]
    for q in range(nq):
        half[1, 1, q] = win[0, 1, q] + win[1, 1, q] + win[2, 1, q] + win[3, 1, q]
    for q in range(nq):
        half[1, 2, q] = win[0, 2, q] + win[1, 2, q] + win[2, 2, q] + win[3, 2, q]
    for q in range(nq):
        half[1, 3, q] = win[0, 3, q] + win[1, 3, q] + win[2, 3, q] + win[3, 3, q]
    for q in range(nq):
        half[2, 0, q] = win[0, 0, q] - win[1, 0, q] + win[2, 0, q] - win[3, 0, q]
    for q in range(nq):
        half[2, 1, q] = win[0, 1, q] - win[1, 1, q] + win[2, 1, q] - win[3, 1, q]
    for q in range(nq):
        half[2, 2, q] = win[0, 2, q] - win[1, 2, q] + win[2, 2, q] - win[3, 2, q]
    for q in range(nq):
        half[2, 3, q] = win[0, 3, q] - win[1, 3, q] + win[2, 3, q] - win[3, 3, q]
    for q in range(nq):
        half[3, 0, q] = win[0, 0, q] + k2 * win[1, 0, q] + k1 * win[2, 0, q] + k0 * win[3, 0, q]
    for q in range(nq):
        half[3, 1, q] = win[0, 1, q] + k2 * win[1, 1, q] + k1 * win[2, 1, q] + k0 * win[3, 1, q]
    for q in range(nq):
        half[3, 2, q] = win[0, 2, q] + k2 * win[1, 2, q] + k1 * win[2, 2, q] + k0 * win[3, 2, q]
    for q in range(nq):
        half[3, 3, q] = win[0, 3, q] + k2 * win[1, 3, q] + k1 * win[2, 3, q] + k0 * win[3, 3, q]
    for q in range(nq):
        half[4, 0, q] = win[0, 0, q] - k3 * win[1, 0, q] + k4 * win[2, 0, q] - k5 * win[3, 0, q]
    for q in range(nq):
        half[4, 1, q] = win[0, 1, q] - k3 * win[1, 1, q] + k4 * win[2, 1, q] - k5 * win[3, 1, q]
    for q in range(nq):
        half[4, 2, q] = win[0, 2, q] - k3 * win[1, 2, q] + k4 * win[2, 2, q] - k5 * win[3, 2, q]
    for q in range(nq):
        half[4, 3, q] = win[0, 3, q] - k3 * win[1, 3, q] + k4 * win[2, 3, q] - k5 * win[3, 3, q]
    for q in range(nq):
        half[5, 0, q] = win[3, 0, q]
    for q in range(nq):
        half[5, 1, q] = win[3, 1, q]
    for q in range(nq):
        half[5, 2, q] = win[3, 2, q]
    for q in range(nq):
        half[5, 3, q] = win[3, 3, q]
    for q in range(nq):
        out[0, at + q] = half[0, 0, q]
    for q in range(nq):
        out[1, at + q] = half[0, 0, q] + half[0, 1, q] + half[0, 2, q] + half[0, 3, q]
    for q in range(nq):
        out[2, at + q] = half[0, 0, q] - half[0, 1, q] + half[0, 2, q] - half[0, 3, q]
    for q in range(nq):
        out[3, at + q] = half[0, 0, q] + k2 * half[0, 1, q] + k1 * half[0, 2, q] + k0 * half[0, 3, q]
    for q in range(nq):
        out[4, at + q] = half[0, 0, q] - k3 * half[0, 1, q] + k4 * half[0, 2, q] - k5 * half[0, 3, q]
    for q in range(nq):
        out[5, at + q] = half[0, 3, q]
    for q in range(nq):
        out[6, at + q] = half[1, 0, q]
    for q in range(nq):
        out[7, at + q] = half[1, 0, q] + half[1, 1, q] + half[1, 2, q] + half[1, 3, q]
    for q in range(nq):
        out[8, at + q] = half[1, 0, q] - half[1, 1, q] + half[1, 2, q] - half[1, 3, q]
    for q in range(nq):
        out[9, at + q] = half[1, 0, q] + k2 * half[1, 1, q] + k1 * half[1, 2, q] + k0 * half[1, 3, q]
    for q in range(nq):
        out[10, at + q] = half[1, 0, q] - k3 * half[1, 1, q] + k4 * half[1, 2, q] - k5 * half[1, 3, q]
    for q in range(nq):
        out[11, at + q] = half[1, 3, q]
    for q in range(nq):
        out[12, at + q] = half[2, 0, q]
    for q in range(nq):
        out[13, at + q] = half[2, 0, q] + half[2, 1, q] + half[2, 2, q] + half[2, 3, q]
    for q in range(nq):
        out[14, at + q] = half[2, 0, q] - half[2, 1, q] + half[2, 2, q] - half[2, 3, q]
    for q in range(nq):
        out[15, at + q] = half[2, 0, q] + k2 * half[2, 1, q] + k1 * half[2, 2, q] + k0 * half[2, 3, q]
    for q in range(nq):
        out[16, at + q] = half[2, 0, q] - k3 * half[2, 1, q] + k4 * half[2, 2, q] - k5 * half[2, 3, q]
    for q in range(nq):
        out[17, at + q] = half[2, 3, q]
    for q in range(nq):
        out[18, at + q] = half[3, 0, q]
    for q in range(nq):
        out[19, at + q] = half[3, 0, q] + half[3, 1, q] + half[3, 2, q] + half[3, 3, q]
    for q in range(nq):
        out[20, at + q] = half[3, 0, q] - half[3, 1, q] + half[3, 2, q] - half[3, 3, q]
    for q in range(nq):
        out[21, at + q] = half[3, 0, q] + k2 * half[3, 1, q] + k1 * half[3, 2, q] + k0 * half[3, 3, q]
    for q in range(nq):
        out[22, at + q] = half[3, 0, q] - k3 * half[3, 1, q] + k4 * half[3, 2, q] - k5 * half[3, 3, q]
    for q in range(nq):
        out[23, at + q] = half[3, 3, q]
    for q in range(nq):
        out[24, at + q] = half[4, 0, q]
    for q in range(nq):
        out[25, at + q] = half[4, 0, q] + half[4, 1, q] + half[4, 2, q] + half[4, 3, q]
    for q in range(nq):
        out[26, at + q] = half[4, 0, q] - half[4, 1, q] + half[4, 2, q] - half[4, 3, q]
    for q in range(nq):
        out[27, at + q] = half[4, 0, q] + k2 * half[4, 1, q] + k1 * half[4, 2, q] + k0 * half[4, 3, q]
    for q in range(nq):
        out[28, at + q] = half[4, 0, q] - k3 * half[4, 1, q] + k4 * half[4, 2, q] - k5 * half[4, 3, q]
    for q in range(nq):
        out[29, at + q] = half[4, 3, q]
    for q in range(nq):
        out[30, at + q] = half[5, 0, q]
    for q in range(nq):
        out[31, at + q] = half[5, 0, q] + half[5, 1, q] + half[5, 2, q] + half[5, 3, q]
    for q in range(nq):
        out[32, at + q] = half[5, 0, q] - half[5, 1, q] + half[5, 2, q] - half[5, 3, q]
    for q in range(nq):
        out[33, at + q] = half[5, 0, q] + k2 * half[5, 1, q] + k1 * half[5, 2, q] + k0 * half[5, 3, q]
    for q in range(nq):
        out[34, at + q] = half[5, 0, q] - k3 * half[5, 1, q] + k4 * half[5, 2, q] - k5 * half[5, 3, q]
    for q in range(nq):
        out[35, at + q] = half[5, 3, q]


@njit(cache=True, fastmath=FASTMATH)
def _out_at2(prod, at, nq, half, res, bias, kc):  # pragma: no cover
    """``res[a, b, q] = bias + (R M_q R^T)[a, b]``, ``M_q[u, v] = prod[u*4 + v, at + q]``, R = at2."""
    for q in range(nq):
        half[0, 0, q] = prod[0, at + q] + prod[4, at + q] + prod[8, at + q]
    for q in range(nq):
        half[0, 1, q] = prod[1, at + q] + prod[5, at + q] + prod[9, at + q]
    for q in range(nq):
        half[0, 2, q] = prod[2, at + q] + prod[6, at + q] + prod[10, at + q]
    for q in range(nq):
        half[0, 3, q] = prod[3, at + q] + prod[7, at + q] + prod[11, at + q]
    for q in range(nq):
        half[1, 0, q] = prod[4, at + q] - prod[8, at + q] + prod[12, at + q]
    for q in range(nq):
        half[1, 1, q] = prod[5, at + q] - prod[9, at + q] + prod[13, at + q]
    for q in range(nq):
        half[1, 2, q] = prod[6, at + q] - prod[10, at + q] + prod[14, at + q]
    for q in range(nq):
        half[1, 3, q] = prod[7, at + q] - prod[11, at + q] + prod[15, at + q]
    for q in range(nq):
        res[0, 0, q] = bias + half[0, 0, q] + half[0, 1, q] + half[0, 2, q]
    for q in range(nq):
        res[0, 1, q] = bias + half[0, 1, q] - half[0, 2, q] + half[0, 3, q]
    for q in range(nq):
        res[1, 0, q] = bias + half[1, 0, q] + half[1, 1, q] + half[1, 2, q]
    for q in range(nq):
        res[1, 1, q] = bias + half[1, 1, q] - half[1, 2, q] + half[1, 3, q]


@njit(cache=True, fastmath=FASTMATH)
def _out_at4(prod, at, nq, half, res, bias, kc):  # pragma: no cover
    """``res[a, b, q] = bias + (R M_q R^T)[a, b]``, ``M_q[u, v] = prod[u*6 + v, at + q]``, R = at4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    k4 = kc[4]
    k5 = kc[5]
    for q in range(nq):
        half[0, 0, q] = prod[0, at + q] + prod[6, at + q] + prod[12, at + q] + prod[18, at + q] + prod[24, at + q]
    for q in range(nq):
        half[0, 1, q] = prod[1, at + q] + prod[7, at + q] + prod[13, at + q] + prod[19, at + q] + prod[25, at + q]
    for q in range(nq):
        half[0, 2, q] = prod[2, at + q] + prod[8, at + q] + prod[14, at + q] + prod[20, at + q] + prod[26, at + q]
    for q in range(nq):
        half[0, 3, q] = prod[3, at + q] + prod[9, at + q] + prod[15, at + q] + prod[21, at + q] + prod[27, at + q]
    for q in range(nq):
        half[0, 4, q] = prod[4, at + q] + prod[10, at + q] + prod[16, at + q] + prod[22, at + q] + prod[28, at + q]
    for q in range(nq):
        half[0, 5, q] = prod[5, at + q] + prod[11, at + q] + prod[17, at + q] + prod[23, at + q] + prod[29, at + q]
    for q in range(nq):
        half[1, 0, q] = prod[6, at + q] - prod[12, at + q] + k2 * prod[18, at + q] - k3 * prod[24, at + q]
    for q in range(nq):
        half[1, 1, q] = prod[7, at + q] - prod[13, at + q] + k2 * prod[19, at + q] - k3 * prod[25, at + q]
    for q in range(nq):
        half[1, 2, q] = prod[8, at + q] - prod[14, at + q] + k2 * prod[20, at + q] - k3 * prod[26, at + q]
    for q in range(nq):
        half[1, 3, q] = prod[9, at + q] - prod[15, at + q] + k2 * prod[21, at + q] - k3 * prod[27, at + q]
    for q in range(nq):
        half[1, 4, q] = prod[10, at + q] - prod[16, at + q] + k2 * prod[22, at + q] - k3 * prod[28, at + q]
    for q in range(nq):
        half[1, 5, q] = prod[11, at + q] - prod[17, at + q] + k2 * prod[23, at + q] - k3 * prod[29, at + q]
    for q in range(nq):
        half[2, 0, q] = prod[6, at + q] + prod[12, at + q] + k1 * prod[18, at + q] + k4 * prod[24, at + q]
    for q in range(nq):
        half[2, 1, q] = prod[7, at + q] + prod[13, at + q] + k1 * prod[19, at + q] + k4 * prod[25, at + q]
    for q in range(nq):
        half[2, 2, q] = prod[8, at + q] + prod[14, at + q] + k1 * prod[20, at + q] + k4 * prod[26, at + q]
    for q in range(nq):
        half[2, 3, q] = prod[9, at + q] + prod[15, at + q] + k1 * prod[21, at + q] + k4 * prod[27, at + q]
    for q in range(nq):
        half[2, 4, q] = prod[10, at + q] + prod[16, at + q] + k1 * prod[22, at + q] + k4 * prod[28, at + q]
    for q in range(nq):
        half[2, 5, q] = prod[11, at + q] + prod[17, at + q] + k1 * prod[23, at + q] + k4 * prod[29, at + q]
    for q in range(nq):
        half[3, 0, q] = prod[6, at + q] - prod[12, at + q] + k0 * prod[18, at + q] - k5 * prod[24, at + q] + prod[30, at + q]
    for q in range(nq):
        half[3, 1, q] = prod[7, at + q] - prod[13, at + q] + k0 * prod[19, at + q] - k5 * prod[25, at + q] + prod[31, at + q]
    for q in range(nq):
        half[3, 2, q] = prod[8, at + q] - prod[14, at + q] + k0 * prod[20, at + q] - k5 * prod[26, at + q] + prod[32, at + q]
    for q in range(nq):
        half[3, 3, q] = prod[9, at + q] - prod[15, at + q] + k0 * prod[21, at + q] - k5 * prod[27, at + q] + prod[33, at + q]
    for q in range(nq):
        half[3, 4, q] = prod[10, at + q] - prod[16, at + q] + k0 * prod[22, at + q] - k5 * prod[28, at + q] + prod[34, at + q]
    for q in range(nq):
        half[3, 5, q] = prod[11, at + q] - prod[17, at + q] + k0 * prod[23, at + q] - k5 * prod[29, at + q] + prod[35, at + q]
    for q in range(nq):
        res[0, 0, q] = bias + half[0, 0, q] + half[0, 1, q] + half[0, 2, q] + half[0, 3, q] + half[0, 4, q]
    for q in range(nq):
        res[0, 1, q] = bias + half[0, 1, q] - half[0, 2, q] + k2 * half[0, 3, q] - k3 * half[0, 4, q]
    for q in range(nq):
        res[0, 2, q] = bias + half[0, 1, q] + half[0, 2, q] + k1 * half[0, 3, q] + k4 * half[0, 4, q]
    for q in range(nq):
        res[0, 3, q] = bias + half[0, 1, q] - half[0, 2, q] + k0 * half[0, 3, q] - k5 * half[0, 4, q] + half[0, 5, q]
    for q in range(nq):
        res[1, 0, q] = bias + half[1, 0, q] + half[1, 1, q] + half[1, 2, q] + half[1, 3, q] + half[1, 4, q]
    for q in range(nq):
        res[1, 1, q] = bias + half[1, 1, q] - half[1, 2, q] + k2 * half[1, 3, q] - k3 * half[1, 4, q]
    for q in range(nq):
        res[1, 2, q] = bias + half[1, 1, q] + half[1, 2, q] + k1 * half[1, 3, q] + k4 * half[1, 4, q]
    for q in range(nq):
        res[1, 3, q] = bias + half[1, 1, q] - half[1, 2, q] + k0 * half[1, 3, q] - k5 * half[1, 4, q] + half[1, 5, q]
    for q in range(nq):
        res[2, 0, q] = bias + half[2, 0, q] + half[2, 1, q] + half[2, 2, q] + half[2, 3, q] + half[2, 4, q]
    for q in range(nq):
        res[2, 1, q] = bias + half[2, 1, q] - half[2, 2, q] + k2 * half[2, 3, q] - k3 * half[2, 4, q]
    for q in range(nq):
        res[2, 2, q] = bias + half[2, 1, q] + half[2, 2, q] + k1 * half[2, 3, q] + k4 * half[2, 4, q]
    for q in range(nq):
        res[2, 3, q] = bias + half[2, 1, q] - half[2, 2, q] + k0 * half[2, 3, q] - k5 * half[2, 4, q] + half[2, 5, q]
    for q in range(nq):
        res[3, 0, q] = bias + half[3, 0, q] + half[3, 1, q] + half[3, 2, q] + half[3, 3, q] + half[3, 4, q]
    for q in range(nq):
        res[3, 1, q] = bias + half[3, 1, q] - half[3, 2, q] + k2 * half[3, 3, q] - k3 * half[3, 4, q]
    for q in range(nq):
        res[3, 2, q] = bias + half[3, 1, q] + half[3, 2, q] + k1 * half[3, 3, q] + k4 * half[3, 4, q]
    for q in range(nq):
        res[3, 3, q] = bias + half[3, 1, q] - half[3, 2, q] + k0 * half[3, 3, q] - k5 * half[3, 4, q] + half[3, 5, q]


@njit(cache=True, fastmath=FASTMATH)
def _out_gt2(prod, at, nq, half, res, bias, kc):  # pragma: no cover
    """``res[a, b, q] = bias + (R M_q R^T)[a, b]``, ``M_q[u, v] = prod[u*4 + v, at + q]``, R = gt2."""
    k0 = kc[0]
    for q in range(nq):
        half[0, 0, q] = prod[0, at + q] + k0 * prod[4, at + q] + k0 * prod[8, at + q]
    for q in range(nq):
        half[0, 1, q] = prod[1, at + q] + k0 * prod[5, at + q] + k0 * prod[9, at + q]
    for q in range(nq):
        half[0, 2, q] = prod[2, at + q] + k0 * prod[6, at + q] + k0 * prod[10, at + q]
    for q in range(nq):
        half[0, 3, q] = prod[3, at + q] + k0 * prod[7, at + q] + k0 * prod[11, at + q]
    for q in range(nq):
        half[1, 0, q] = k0 * prod[4, at + q] - k0 * prod[8, at + q]
    for q in range(nq):
        half[1, 1, q] = k0 * prod[5, at + q] - k0 * prod[9, at + q]
    for q in range(nq):
        half[1, 2, q] = k0 * prod[6, at + q] - k0 * prod[10, at + q]
    for q in range(nq):
        half[1, 3, q] = k0 * prod[7, at + q] - k0 * prod[11, at + q]
    for q in range(nq):
        half[2, 0, q] = k0 * prod[4, at + q] + k0 * prod[8, at + q] + prod[12, at + q]
    for q in range(nq):
        half[2, 1, q] = k0 * prod[5, at + q] + k0 * prod[9, at + q] + prod[13, at + q]
    for q in range(nq):
        half[2, 2, q] = k0 * prod[6, at + q] + k0 * prod[10, at + q] + prod[14, at + q]
    for q in range(nq):
        half[2, 3, q] = k0 * prod[7, at + q] + k0 * prod[11, at + q] + prod[15, at + q]
    for q in range(nq):
        res[0, 0, q] = bias + half[0, 0, q] + k0 * half[0, 1, q] + k0 * half[0, 2, q]
    for q in range(nq):
        res[0, 1, q] = bias + k0 * half[0, 1, q] - k0 * half[0, 2, q]
    for q in range(nq):
        res[0, 2, q] = bias + k0 * half[0, 1, q] + k0 * half[0, 2, q] + half[0, 3, q]
    for q in range(nq):
        res[1, 0, q] = bias + half[1, 0, q] + k0 * half[1, 1, q] + k0 * half[1, 2, q]
    for q in range(nq):
        res[1, 1, q] = bias + k0 * half[1, 1, q] - k0 * half[1, 2, q]
    for q in range(nq):
        res[1, 2, q] = bias + k0 * half[1, 1, q] + k0 * half[1, 2, q] + half[1, 3, q]
    for q in range(nq):
        res[2, 0, q] = bias + half[2, 0, q] + k0 * half[2, 1, q] + k0 * half[2, 2, q]
    for q in range(nq):
        res[2, 1, q] = bias + k0 * half[2, 1, q] - k0 * half[2, 2, q]
    for q in range(nq):
        res[2, 2, q] = bias + k0 * half[2, 1, q] + k0 * half[2, 2, q] + half[2, 3, q]


@njit(cache=True, fastmath=FASTMATH)
def _out_gt4(prod, at, nq, half, res, bias, kc):  # pragma: no cover
    """``res[a, b, q] = bias + (R M_q R^T)[a, b]``, ``M_q[u, v] = prod[u*6 + v, at + q]``, R = gt4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    k4 = kc[4]
    k5 = kc[5]
    for q in range(nq):
        half[0, 0, q] = prod[0, at + q] + k3 * prod[6, at + q] + k3 * prod[12, at + q] + k5 * prod[18, at + q] + k0 * prod[24, at + q]
    for q in range(nq):
        half[0, 1, q] = prod[1, at + q] + k3 * prod[7, at + q] + k3 * prod[13, at + q] + k5 * prod[19, at + q] + k0 * prod[25, at + q]
    for q in range(nq):
        half[0, 2, q] = prod[2, at + q] + k3 * prod[8, at + q] + k3 * prod[14, at + q] + k5 * prod[20, at + q] + k0 * prod[26, at + q]
    for q in range(nq):
        half[0, 3, q] = prod[3, at + q] + k3 * prod[9, at + q] + k3 * prod[15, at + q] + k5 * prod[21, at + q] + k0 * prod[27, at + q]
    for q in range(nq):
        half[0, 4, q] = prod[4, at + q] + k3 * prod[10, at + q] + k3 * prod[16, at + q] + k5 * prod[22, at + q] + k0 * prod[28, at + q]
    for q in range(nq):
        half[0, 5, q] = prod[5, at + q] + k3 * prod[11, at + q] + k3 * prod[17, at + q] + k5 * prod[23, at + q] + k0 * prod[29, at + q]
    for q in range(nq):
        half[1, 0, q] = k3 * prod[6, at + q] - k3 * prod[12, at + q] + k4 * prod[18, at + q] - k1 * prod[24, at + q]
    for q in range(nq):
        half[1, 1, q] = k3 * prod[7, at + q] - k3 * prod[13, at + q] + k4 * prod[19, at + q] - k1 * prod[25, at + q]
    for q in range(nq):
        half[1, 2, q] = k3 * prod[8, at + q] - k3 * prod[14, at + q] + k4 * prod[20, at + q] - k1 * prod[26, at + q]
    for q in range(nq):
        half[1, 3, q] = k3 * prod[9, at + q] - k3 * prod[15, at + q] + k4 * prod[21, at + q] - k1 * prod[27, at + q]
    for q in range(nq):
        half[1, 4, q] = k3 * prod[10, at + q] - k3 * prod[16, at + q] + k4 * prod[22, at + q] - k1 * prod[28, at + q]
    for q in range(nq):
        half[1, 5, q] = k3 * prod[11, at + q] - k3 * prod[17, at + q] + k4 * prod[23, at + q] - k1 * prod[29, at + q]
    for q in range(nq):
        half[2, 0, q] = k3 * prod[6, at + q] + k3 * prod[12, at + q] + k2 * prod[18, at + q] + k2 * prod[24, at + q] + prod[30, at + q]
    for q in range(nq):
        half[2, 1, q] = k3 * prod[7, at + q] + k3 * prod[13, at + q] + k2 * prod[19, at + q] + k2 * prod[25, at + q] + prod[31, at + q]
    for q in range(nq):
        half[2, 2, q] = k3 * prod[8, at + q] + k3 * prod[14, at + q] + k2 * prod[20, at + q] + k2 * prod[26, at + q] + prod[32, at + q]
    for q in range(nq):
        half[2, 3, q] = k3 * prod[9, at + q] + k3 * prod[15, at + q] + k2 * prod[21, at + q] + k2 * prod[27, at + q] + prod[33, at + q]
    for q in range(nq):
        half[2, 4, q] = k3 * prod[10, at + q] + k3 * prod[16, at + q] + k2 * prod[22, at + q] + k2 * prod[28, at + q] + prod[34, at + q]
    for q in range(nq):
        half[2, 5, q] = k3 * prod[11, at + q] + k3 * prod[17, at + q] + k2 * prod[23, at + q] + k2 * prod[29, at + q] + prod[35, at + q]
    for q in range(nq):
        res[0, 0, q] = bias + half[0, 0, q] + k3 * half[0, 1, q] + k3 * half[0, 2, q] + k5 * half[0, 3, q] + k0 * half[0, 4, q]
    for q in range(nq):
        res[0, 1, q] = bias + k3 * half[0, 1, q] - k3 * half[0, 2, q] + k4 * half[0, 3, q] - k1 * half[0, 4, q]
    for q in range(nq):
        res[0, 2, q] = bias + k3 * half[0, 1, q] + k3 * half[0, 2, q] + k2 * half[0, 3, q] + k2 * half[0, 4, q] + half[0, 5, q]
    for q in range(nq):
        res[1, 0, q] = bias + half[1, 0, q] + k3 * half[1, 1, q] + k3 * half[1, 2, q] + k5 * half[1, 3, q] + k0 * half[1, 4, q]
    for q in range(nq):
        res[1, 1, q] = bias + k3 * half[1, 1, q] - k3 * half[1, 2, q] + k4 * half[1, 3, q] - k1 * half[1, 4, q]
    for q in range(nq):
        res[1, 2, q] = bias + k3 * half[1, 1, q] + k3 * half[1, 2, q] + k2 * half[1, 3, q] + k2 * half[1, 4, q] + half[1, 5, q]
    for q in range(nq):
        res[2, 0, q] = bias + half[2, 0, q] + k3 * half[2, 1, q] + k3 * half[2, 2, q] + k5 * half[2, 3, q] + k0 * half[2, 4, q]
    for q in range(nq):
        res[2, 1, q] = bias + k3 * half[2, 1, q] - k3 * half[2, 2, q] + k4 * half[2, 3, q] - k1 * half[2, 4, q]
    for q in range(nq):
        res[2, 2, q] = bias + k3 * half[2, 1, q] + k3 * half[2, 2, q] + k2 * half[2, 3, q] + k2 * half[2, 4, q] + half[2, 5, q]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def tiles_in(
    which, k, src, kc, out, count, t0, step, top, left, tiles_h, tiles_w, workers
):  # pragma: no cover
    """``out[:, c*count + t - t0]`` = in-kernel ``which`` of tile t's k x k window of
    ``src[n, c]``, for tiles ``t0 .. t0 + count``. (``out`` is C-contiguous, so that the
    generated loops store unit-stride vectors; its rows may be longer than ``C*count``.)

    Tile ``t = (n*tiles_h + ty)*tiles_w + tx`` has its window's top left at row
    ``ty*step - top``, column ``tx*step - left``; cells outside ``src`` read as zero. Work
    is split into tasks of one channel and ``BLOCK`` tiles, dealt to ``workers`` workers
    that each allocate their buffer once. Each task gathers its windows tile-minor, so the
    transform runs along the block, and writes every value once.
    """
    n_ch, height, width = src.shape[1], src.shape[2], src.shape[3]
    alpha = int(np.sqrt(out.shape[0]) + 0.5)
    blocks = (count + BLOCK - 1) // BLOCK
    per_image = tiles_h * tiles_w
    tasks = n_ch * blocks
    workers = max(1, min(workers, tasks))
    for worker in prange(workers):
        win = np.zeros((k, k, BLOCK), dtype=out.dtype)
        half = np.empty((alpha, k, BLOCK), dtype=out.dtype)
        for task in range(worker, tasks, workers):
            c = task // blocks
            q0 = (task % blocks) * BLOCK
            nq = min(BLOCK, count - q0)
            for q in range(nq):
                t = t0 + q0 + q
                n = t // per_image
                r0 = ((t % per_image) // tiles_w) * step - top
                c0 = (t % tiles_w) * step - left
                plane = src[n, c]
                if r0 >= 0 and c0 >= 0 and r0 + k <= height and c0 + k <= width:
                    for i in range(k):
                        for j in range(k):
                            win[i, j, q] = plane[np.uint64(r0 + i), np.uint64(c0 + j)]
                else:
                    for i in range(k):
                        for j in range(k):
                            r, s = r0 + i, c0 + j
                            inside = 0 <= r < height and 0 <= s < width
                            win[i, j, q] = plane[r, s] if inside else 0
            if which == 0:
                _in_bt2(win, half, out, c * count + q0, nq, kc)
            elif which == 1:
                _in_bt4(win, half, out, c * count + q0, nq, kc)
            elif which == 2:
                _in_g2(win, half, out, c * count + q0, nq, kc)
            elif which == 3:
                _in_g4(win, half, out, c * count + q0, nq, kc)
            elif which == 4:
                _in_a2(win, half, out, c * count + q0, nq, kc)
            elif which == 5:
                _in_a4(win, half, out, c * count + q0, nq, kc)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def tiles_out(
    which, m, prod, count, kc, bias, dst, t0, tiles_h, tiles_w, workers
):  # pragma: no cover
    """``dst`` tile t (m x m, cropped at the edges) = out-kernel ``which`` of
    ``prod[:, o*count + t - t0]`` plus ``bias[o]``; tiles numbered as in :func:`tiles_in`. Tasks of
    one output channel and ``BLOCK`` tiles; every cell of ``dst`` is written by one task.
    """
    n_out, height, width = dst.shape[1], dst.shape[2], dst.shape[3]
    alpha = int(np.sqrt(prod.shape[0]) + 0.5)
    blocks = (count + BLOCK - 1) // BLOCK
    per_image = tiles_h * tiles_w
    tasks = n_out * blocks
    workers = max(1, min(workers, tasks))
    for worker in prange(workers):
        res = np.empty((m, m, BLOCK), dtype=dst.dtype)
        half = np.empty((m, alpha, BLOCK), dtype=dst.dtype)
        for task in range(worker, tasks, workers):
            o = task // blocks
            q0 = (task % blocks) * BLOCK
            nq = min(BLOCK, count - q0)
            if which == 0:
                _out_at2(prod, o * count + q0, nq, half, res, bias[o], kc)
            elif which == 1:
                _out_at4(prod, o * count + q0, nq, half, res, bias[o], kc)
            elif which == 2:
                _out_gt2(prod, o * count + q0, nq, half, res, bias[o], kc)
            elif which == 3:
                _out_gt4(prod, o * count + q0, nq, half, res, bias[o], kc)
            for q in range(nq):
                t = t0 + q0 + q
                n = t // per_image
                r0 = ((t % per_image) // tiles_w) * m
                c0 = (t % tiles_w) * m
                for a in range(min(m, height - r0)):
                    for b in range(min(m, width - c0)):
                        dst[n, o, r0 + a, c0 + b] = res[a, b, q]
