"""Winograd transform kernels, GENERATED from the matrices of ``transforms.py`` by
``python -m fastcnn.backends.winograd.transforms``; do not edit (a test checks that this
file is current).
"""

# ruff: noqa: E501

from __future__ import annotations

from numba import njit

from fastcnn.jit import FASTMATH

#: Tiles transformed together: the trip count of every generated loop, a constant so that
#: the loops vectorise without a remainder.
BLOCK = 32
IN_KERNELS = ('bt2', 'bt4', 'g2', 'g4', 'a2', 'a4')
OUT_KERNELS = ('at2', 'at4', 'gt2', 'gt4')


@njit(cache=True, fastmath=FASTMATH)
def _in_bt2(win, out, kc):  # pragma: no cover
    """``out[(u*4 + v)*BLOCK + q] = (L W_q L^T)[u, v]`` with ``W_q[i, j] = win[(i*4 + j)*BLOCK + q]``, L = bt2."""
    for q in range(BLOCK):
        h0_0 = win[q] - win[8 * BLOCK + q]
        h0_1 = win[1 * BLOCK + q] - win[9 * BLOCK + q]
        h0_2 = win[2 * BLOCK + q] - win[10 * BLOCK + q]
        h0_3 = win[3 * BLOCK + q] - win[11 * BLOCK + q]
        h1_0 = win[4 * BLOCK + q] + win[8 * BLOCK + q]
        h1_1 = win[5 * BLOCK + q] + win[9 * BLOCK + q]
        h1_2 = win[6 * BLOCK + q] + win[10 * BLOCK + q]
        h1_3 = win[7 * BLOCK + q] + win[11 * BLOCK + q]
        h2_0 = -win[4 * BLOCK + q] + win[8 * BLOCK + q]
        h2_1 = -win[5 * BLOCK + q] + win[9 * BLOCK + q]
        h2_2 = -win[6 * BLOCK + q] + win[10 * BLOCK + q]
        h2_3 = -win[7 * BLOCK + q] + win[11 * BLOCK + q]
        h3_0 = -win[4 * BLOCK + q] + win[12 * BLOCK + q]
        h3_1 = -win[5 * BLOCK + q] + win[13 * BLOCK + q]
        h3_2 = -win[6 * BLOCK + q] + win[14 * BLOCK + q]
        h3_3 = -win[7 * BLOCK + q] + win[15 * BLOCK + q]
        out[q] = h0_0 - h0_2
        out[1 * BLOCK + q] = h0_1 + h0_2
        out[2 * BLOCK + q] = -h0_1 + h0_2
        out[3 * BLOCK + q] = -h0_1 + h0_3
        out[4 * BLOCK + q] = h1_0 - h1_2
        out[5 * BLOCK + q] = h1_1 + h1_2
        out[6 * BLOCK + q] = -h1_1 + h1_2
        out[7 * BLOCK + q] = -h1_1 + h1_3
        out[8 * BLOCK + q] = h2_0 - h2_2
        out[9 * BLOCK + q] = h2_1 + h2_2
        out[10 * BLOCK + q] = -h2_1 + h2_2
        out[11 * BLOCK + q] = -h2_1 + h2_3
        out[12 * BLOCK + q] = h3_0 - h3_2
        out[13 * BLOCK + q] = h3_1 + h3_2
        out[14 * BLOCK + q] = -h3_1 + h3_2
        out[15 * BLOCK + q] = -h3_1 + h3_3


@njit(cache=True, fastmath=FASTMATH)
def _in_bt4(win, out, kc):  # pragma: no cover
    """``out[(u*6 + v)*BLOCK + q] = (L W_q L^T)[u, v]`` with ``W_q[i, j] = win[(i*6 + j)*BLOCK + q]``, L = bt4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    for q in range(BLOCK):
        h0_0 = win[q] - k1 * win[6 * BLOCK + q] - k2 * win[12 * BLOCK + q] + k1 * win[18 * BLOCK + q] + win[24 * BLOCK + q]
        h0_1 = win[1 * BLOCK + q] - k1 * win[7 * BLOCK + q] - k2 * win[13 * BLOCK + q] + k1 * win[19 * BLOCK + q] + win[25 * BLOCK + q]
        h0_2 = win[2 * BLOCK + q] - k1 * win[8 * BLOCK + q] - k2 * win[14 * BLOCK + q] + k1 * win[20 * BLOCK + q] + win[26 * BLOCK + q]
        h0_3 = win[3 * BLOCK + q] - k1 * win[9 * BLOCK + q] - k2 * win[15 * BLOCK + q] + k1 * win[21 * BLOCK + q] + win[27 * BLOCK + q]
        h0_4 = win[4 * BLOCK + q] - k1 * win[10 * BLOCK + q] - k2 * win[16 * BLOCK + q] + k1 * win[22 * BLOCK + q] + win[28 * BLOCK + q]
        h0_5 = win[5 * BLOCK + q] - k1 * win[11 * BLOCK + q] - k2 * win[17 * BLOCK + q] + k1 * win[23 * BLOCK + q] + win[29 * BLOCK + q]
        h1_0 = -win[6 * BLOCK + q] + k0 * win[12 * BLOCK + q] + k3 * win[18 * BLOCK + q] + win[24 * BLOCK + q]
        h1_1 = -win[7 * BLOCK + q] + k0 * win[13 * BLOCK + q] + k3 * win[19 * BLOCK + q] + win[25 * BLOCK + q]
        h1_2 = -win[8 * BLOCK + q] + k0 * win[14 * BLOCK + q] + k3 * win[20 * BLOCK + q] + win[26 * BLOCK + q]
        h1_3 = -win[9 * BLOCK + q] + k0 * win[15 * BLOCK + q] + k3 * win[21 * BLOCK + q] + win[27 * BLOCK + q]
        h1_4 = -win[10 * BLOCK + q] + k0 * win[16 * BLOCK + q] + k3 * win[22 * BLOCK + q] + win[28 * BLOCK + q]
        h1_5 = -win[11 * BLOCK + q] + k0 * win[17 * BLOCK + q] + k3 * win[23 * BLOCK + q] + win[29 * BLOCK + q]
        h2_0 = -win[6 * BLOCK + q] + k3 * win[12 * BLOCK + q] - k0 * win[18 * BLOCK + q] - win[24 * BLOCK + q]
        h2_1 = -win[7 * BLOCK + q] + k3 * win[13 * BLOCK + q] - k0 * win[19 * BLOCK + q] - win[25 * BLOCK + q]
        h2_2 = -win[8 * BLOCK + q] + k3 * win[14 * BLOCK + q] - k0 * win[20 * BLOCK + q] - win[26 * BLOCK + q]
        h2_3 = -win[9 * BLOCK + q] + k3 * win[15 * BLOCK + q] - k0 * win[21 * BLOCK + q] - win[27 * BLOCK + q]
        h2_4 = -win[10 * BLOCK + q] + k3 * win[16 * BLOCK + q] - k0 * win[22 * BLOCK + q] - win[28 * BLOCK + q]
        h2_5 = -win[11 * BLOCK + q] + k3 * win[17 * BLOCK + q] - k0 * win[23 * BLOCK + q] - win[29 * BLOCK + q]
        h3_0 = k2 * win[6 * BLOCK + q] + win[12 * BLOCK + q] - k2 * win[18 * BLOCK + q] - win[24 * BLOCK + q]
        h3_1 = k2 * win[7 * BLOCK + q] + win[13 * BLOCK + q] - k2 * win[19 * BLOCK + q] - win[25 * BLOCK + q]
        h3_2 = k2 * win[8 * BLOCK + q] + win[14 * BLOCK + q] - k2 * win[20 * BLOCK + q] - win[26 * BLOCK + q]
        h3_3 = k2 * win[9 * BLOCK + q] + win[15 * BLOCK + q] - k2 * win[21 * BLOCK + q] - win[27 * BLOCK + q]
        h3_4 = k2 * win[10 * BLOCK + q] + win[16 * BLOCK + q] - k2 * win[22 * BLOCK + q] - win[28 * BLOCK + q]
        h3_5 = k2 * win[11 * BLOCK + q] + win[17 * BLOCK + q] - k2 * win[23 * BLOCK + q] - win[29 * BLOCK + q]
        h4_0 = k0 * win[6 * BLOCK + q] - win[12 * BLOCK + q] - k0 * win[18 * BLOCK + q] + win[24 * BLOCK + q]
        h4_1 = k0 * win[7 * BLOCK + q] - win[13 * BLOCK + q] - k0 * win[19 * BLOCK + q] + win[25 * BLOCK + q]
        h4_2 = k0 * win[8 * BLOCK + q] - win[14 * BLOCK + q] - k0 * win[20 * BLOCK + q] + win[26 * BLOCK + q]
        h4_3 = k0 * win[9 * BLOCK + q] - win[15 * BLOCK + q] - k0 * win[21 * BLOCK + q] + win[27 * BLOCK + q]
        h4_4 = k0 * win[10 * BLOCK + q] - win[16 * BLOCK + q] - k0 * win[22 * BLOCK + q] + win[28 * BLOCK + q]
        h4_5 = k0 * win[11 * BLOCK + q] - win[17 * BLOCK + q] - k0 * win[23 * BLOCK + q] + win[29 * BLOCK + q]
        h5_0 = win[6 * BLOCK + q] - k1 * win[12 * BLOCK + q] - k2 * win[18 * BLOCK + q] + k1 * win[24 * BLOCK + q] + win[30 * BLOCK + q]
        h5_1 = win[7 * BLOCK + q] - k1 * win[13 * BLOCK + q] - k2 * win[19 * BLOCK + q] + k1 * win[25 * BLOCK + q] + win[31 * BLOCK + q]
        h5_2 = win[8 * BLOCK + q] - k1 * win[14 * BLOCK + q] - k2 * win[20 * BLOCK + q] + k1 * win[26 * BLOCK + q] + win[32 * BLOCK + q]
        h5_3 = win[9 * BLOCK + q] - k1 * win[15 * BLOCK + q] - k2 * win[21 * BLOCK + q] + k1 * win[27 * BLOCK + q] + win[33 * BLOCK + q]
        h5_4 = win[10 * BLOCK + q] - k1 * win[16 * BLOCK + q] - k2 * win[22 * BLOCK + q] + k1 * win[28 * BLOCK + q] + win[34 * BLOCK + q]
        h5_5 = win[11 * BLOCK + q] - k1 * win[17 * BLOCK + q] - k2 * win[23 * BLOCK + q] + k1 * win[29 * BLOCK + q] + win[35 * BLOCK + q]
        out[q] = h0_0 - k1 * h0_1 - k2 * h0_2 + k1 * h0_3 + h0_4
        out[1 * BLOCK + q] = -h0_1 + k0 * h0_2 + k3 * h0_3 + h0_4
        out[2 * BLOCK + q] = -h0_1 + k3 * h0_2 - k0 * h0_3 - h0_4
        out[3 * BLOCK + q] = k2 * h0_1 + h0_2 - k2 * h0_3 - h0_4
        out[4 * BLOCK + q] = k0 * h0_1 - h0_2 - k0 * h0_3 + h0_4
        out[5 * BLOCK + q] = h0_1 - k1 * h0_2 - k2 * h0_3 + k1 * h0_4 + h0_5
        out[6 * BLOCK + q] = h1_0 - k1 * h1_1 - k2 * h1_2 + k1 * h1_3 + h1_4
        out[7 * BLOCK + q] = -h1_1 + k0 * h1_2 + k3 * h1_3 + h1_4
        out[8 * BLOCK + q] = -h1_1 + k3 * h1_2 - k0 * h1_3 - h1_4
        out[9 * BLOCK + q] = k2 * h1_1 + h1_2 - k2 * h1_3 - h1_4
        out[10 * BLOCK + q] = k0 * h1_1 - h1_2 - k0 * h1_3 + h1_4
        out[11 * BLOCK + q] = h1_1 - k1 * h1_2 - k2 * h1_3 + k1 * h1_4 + h1_5
        out[12 * BLOCK + q] = h2_0 - k1 * h2_1 - k2 * h2_2 + k1 * h2_3 + h2_4
        out[13 * BLOCK + q] = -h2_1 + k0 * h2_2 + k3 * h2_3 + h2_4
        out[14 * BLOCK + q] = -h2_1 + k3 * h2_2 - k0 * h2_3 - h2_4
        out[15 * BLOCK + q] = k2 * h2_1 + h2_2 - k2 * h2_3 - h2_4
        out[16 * BLOCK + q] = k0 * h2_1 - h2_2 - k0 * h2_3 + h2_4
        out[17 * BLOCK + q] = h2_1 - k1 * h2_2 - k2 * h2_3 + k1 * h2_4 + h2_5
        out[18 * BLOCK + q] = h3_0 - k1 * h3_1 - k2 * h3_2 + k1 * h3_3 + h3_4
        out[19 * BLOCK + q] = -h3_1 + k0 * h3_2 + k3 * h3_3 + h3_4
        out[20 * BLOCK + q] = -h3_1 + k3 * h3_2 - k0 * h3_3 - h3_4
        out[21 * BLOCK + q] = k2 * h3_1 + h3_2 - k2 * h3_3 - h3_4
        out[22 * BLOCK + q] = k0 * h3_1 - h3_2 - k0 * h3_3 + h3_4
        out[23 * BLOCK + q] = h3_1 - k1 * h3_2 - k2 * h3_3 + k1 * h3_4 + h3_5
        out[24 * BLOCK + q] = h4_0 - k1 * h4_1 - k2 * h4_2 + k1 * h4_3 + h4_4
        out[25 * BLOCK + q] = -h4_1 + k0 * h4_2 + k3 * h4_3 + h4_4
        out[26 * BLOCK + q] = -h4_1 + k3 * h4_2 - k0 * h4_3 - h4_4
        out[27 * BLOCK + q] = k2 * h4_1 + h4_2 - k2 * h4_3 - h4_4
        out[28 * BLOCK + q] = k0 * h4_1 - h4_2 - k0 * h4_3 + h4_4
        out[29 * BLOCK + q] = h4_1 - k1 * h4_2 - k2 * h4_3 + k1 * h4_4 + h4_5
        out[30 * BLOCK + q] = h5_0 - k1 * h5_1 - k2 * h5_2 + k1 * h5_3 + h5_4
        out[31 * BLOCK + q] = -h5_1 + k0 * h5_2 + k3 * h5_3 + h5_4
        out[32 * BLOCK + q] = -h5_1 + k3 * h5_2 - k0 * h5_3 - h5_4
        out[33 * BLOCK + q] = k2 * h5_1 + h5_2 - k2 * h5_3 - h5_4
        out[34 * BLOCK + q] = k0 * h5_1 - h5_2 - k0 * h5_3 + h5_4
        out[35 * BLOCK + q] = h5_1 - k1 * h5_2 - k2 * h5_3 + k1 * h5_4 + h5_5


@njit(cache=True, fastmath=FASTMATH)
def _in_g2(win, out, kc):  # pragma: no cover
    """``out[(u*4 + v)*BLOCK + q] = (L W_q L^T)[u, v]`` with ``W_q[i, j] = win[(i*3 + j)*BLOCK + q]``, L = g2."""
    k0 = kc[0]
    for q in range(BLOCK):
        h0_0 = win[q]
        h0_1 = win[1 * BLOCK + q]
        h0_2 = win[2 * BLOCK + q]
        h1_0 = k0 * win[q] + k0 * win[3 * BLOCK + q] + k0 * win[6 * BLOCK + q]
        h1_1 = k0 * win[1 * BLOCK + q] + k0 * win[4 * BLOCK + q] + k0 * win[7 * BLOCK + q]
        h1_2 = k0 * win[2 * BLOCK + q] + k0 * win[5 * BLOCK + q] + k0 * win[8 * BLOCK + q]
        h2_0 = k0 * win[q] - k0 * win[3 * BLOCK + q] + k0 * win[6 * BLOCK + q]
        h2_1 = k0 * win[1 * BLOCK + q] - k0 * win[4 * BLOCK + q] + k0 * win[7 * BLOCK + q]
        h2_2 = k0 * win[2 * BLOCK + q] - k0 * win[5 * BLOCK + q] + k0 * win[8 * BLOCK + q]
        h3_0 = win[6 * BLOCK + q]
        h3_1 = win[7 * BLOCK + q]
        h3_2 = win[8 * BLOCK + q]
        out[q] = h0_0
        out[1 * BLOCK + q] = k0 * h0_0 + k0 * h0_1 + k0 * h0_2
        out[2 * BLOCK + q] = k0 * h0_0 - k0 * h0_1 + k0 * h0_2
        out[3 * BLOCK + q] = h0_2
        out[4 * BLOCK + q] = h1_0
        out[5 * BLOCK + q] = k0 * h1_0 + k0 * h1_1 + k0 * h1_2
        out[6 * BLOCK + q] = k0 * h1_0 - k0 * h1_1 + k0 * h1_2
        out[7 * BLOCK + q] = h1_2
        out[8 * BLOCK + q] = h2_0
        out[9 * BLOCK + q] = k0 * h2_0 + k0 * h2_1 + k0 * h2_2
        out[10 * BLOCK + q] = k0 * h2_0 - k0 * h2_1 + k0 * h2_2
        out[11 * BLOCK + q] = h2_2
        out[12 * BLOCK + q] = h3_0
        out[13 * BLOCK + q] = k0 * h3_0 + k0 * h3_1 + k0 * h3_2
        out[14 * BLOCK + q] = k0 * h3_0 - k0 * h3_1 + k0 * h3_2
        out[15 * BLOCK + q] = h3_2


@njit(cache=True, fastmath=FASTMATH)
def _in_g4(win, out, kc):  # pragma: no cover
    """``out[(u*6 + v)*BLOCK + q] = (L W_q L^T)[u, v]`` with ``W_q[i, j] = win[(i*3 + j)*BLOCK + q]``, L = g4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    k4 = kc[4]
    k5 = kc[5]
    for q in range(BLOCK):
        h0_0 = win[q]
        h0_1 = win[1 * BLOCK + q]
        h0_2 = win[2 * BLOCK + q]
        h1_0 = k3 * win[q] + k3 * win[3 * BLOCK + q] + k3 * win[6 * BLOCK + q]
        h1_1 = k3 * win[1 * BLOCK + q] + k3 * win[4 * BLOCK + q] + k3 * win[7 * BLOCK + q]
        h1_2 = k3 * win[2 * BLOCK + q] + k3 * win[5 * BLOCK + q] + k3 * win[8 * BLOCK + q]
        h2_0 = k3 * win[q] - k3 * win[3 * BLOCK + q] + k3 * win[6 * BLOCK + q]
        h2_1 = k3 * win[1 * BLOCK + q] - k3 * win[4 * BLOCK + q] + k3 * win[7 * BLOCK + q]
        h2_2 = k3 * win[2 * BLOCK + q] - k3 * win[5 * BLOCK + q] + k3 * win[8 * BLOCK + q]
        h3_0 = k5 * win[q] + k4 * win[3 * BLOCK + q] + k2 * win[6 * BLOCK + q]
        h3_1 = k5 * win[1 * BLOCK + q] + k4 * win[4 * BLOCK + q] + k2 * win[7 * BLOCK + q]
        h3_2 = k5 * win[2 * BLOCK + q] + k4 * win[5 * BLOCK + q] + k2 * win[8 * BLOCK + q]
        h4_0 = k0 * win[q] - k1 * win[3 * BLOCK + q] + k2 * win[6 * BLOCK + q]
        h4_1 = k0 * win[1 * BLOCK + q] - k1 * win[4 * BLOCK + q] + k2 * win[7 * BLOCK + q]
        h4_2 = k0 * win[2 * BLOCK + q] - k1 * win[5 * BLOCK + q] + k2 * win[8 * BLOCK + q]
        h5_0 = win[6 * BLOCK + q]
        h5_1 = win[7 * BLOCK + q]
        h5_2 = win[8 * BLOCK + q]
        out[q] = h0_0
        out[1 * BLOCK + q] = k3 * h0_0 + k3 * h0_1 + k3 * h0_2
        out[2 * BLOCK + q] = k3 * h0_0 - k3 * h0_1 + k3 * h0_2
        out[3 * BLOCK + q] = k5 * h0_0 + k4 * h0_1 + k2 * h0_2
        out[4 * BLOCK + q] = k0 * h0_0 - k1 * h0_1 + k2 * h0_2
        out[5 * BLOCK + q] = h0_2
        out[6 * BLOCK + q] = h1_0
        out[7 * BLOCK + q] = k3 * h1_0 + k3 * h1_1 + k3 * h1_2
        out[8 * BLOCK + q] = k3 * h1_0 - k3 * h1_1 + k3 * h1_2
        out[9 * BLOCK + q] = k5 * h1_0 + k4 * h1_1 + k2 * h1_2
        out[10 * BLOCK + q] = k0 * h1_0 - k1 * h1_1 + k2 * h1_2
        out[11 * BLOCK + q] = h1_2
        out[12 * BLOCK + q] = h2_0
        out[13 * BLOCK + q] = k3 * h2_0 + k3 * h2_1 + k3 * h2_2
        out[14 * BLOCK + q] = k3 * h2_0 - k3 * h2_1 + k3 * h2_2
        out[15 * BLOCK + q] = k5 * h2_0 + k4 * h2_1 + k2 * h2_2
        out[16 * BLOCK + q] = k0 * h2_0 - k1 * h2_1 + k2 * h2_2
        out[17 * BLOCK + q] = h2_2
        out[18 * BLOCK + q] = h3_0
        out[19 * BLOCK + q] = k3 * h3_0 + k3 * h3_1 + k3 * h3_2
        out[20 * BLOCK + q] = k3 * h3_0 - k3 * h3_1 + k3 * h3_2
        out[21 * BLOCK + q] = k5 * h3_0 + k4 * h3_1 + k2 * h3_2
        out[22 * BLOCK + q] = k0 * h3_0 - k1 * h3_1 + k2 * h3_2
        out[23 * BLOCK + q] = h3_2
        out[24 * BLOCK + q] = h4_0
        out[25 * BLOCK + q] = k3 * h4_0 + k3 * h4_1 + k3 * h4_2
        out[26 * BLOCK + q] = k3 * h4_0 - k3 * h4_1 + k3 * h4_2
        out[27 * BLOCK + q] = k5 * h4_0 + k4 * h4_1 + k2 * h4_2
        out[28 * BLOCK + q] = k0 * h4_0 - k1 * h4_1 + k2 * h4_2
        out[29 * BLOCK + q] = h4_2
        out[30 * BLOCK + q] = h5_0
        out[31 * BLOCK + q] = k3 * h5_0 + k3 * h5_1 + k3 * h5_2
        out[32 * BLOCK + q] = k3 * h5_0 - k3 * h5_1 + k3 * h5_2
        out[33 * BLOCK + q] = k5 * h5_0 + k4 * h5_1 + k2 * h5_2
        out[34 * BLOCK + q] = k0 * h5_0 - k1 * h5_1 + k2 * h5_2
        out[35 * BLOCK + q] = h5_2


@njit(cache=True, fastmath=FASTMATH)
def _in_a2(win, out, kc):  # pragma: no cover
    """``out[(u*4 + v)*BLOCK + q] = (L W_q L^T)[u, v]`` with ``W_q[i, j] = win[(i*2 + j)*BLOCK + q]``, L = a2."""
    for q in range(BLOCK):
        h0_0 = win[q]
        h0_1 = win[1 * BLOCK + q]
        h1_0 = win[q] + win[2 * BLOCK + q]
        h1_1 = win[1 * BLOCK + q] + win[3 * BLOCK + q]
        h2_0 = win[q] - win[2 * BLOCK + q]
        h2_1 = win[1 * BLOCK + q] - win[3 * BLOCK + q]
        h3_0 = win[2 * BLOCK + q]
        h3_1 = win[3 * BLOCK + q]
        out[q] = h0_0
        out[1 * BLOCK + q] = h0_0 + h0_1
        out[2 * BLOCK + q] = h0_0 - h0_1
        out[3 * BLOCK + q] = h0_1
        out[4 * BLOCK + q] = h1_0
        out[5 * BLOCK + q] = h1_0 + h1_1
        out[6 * BLOCK + q] = h1_0 - h1_1
        out[7 * BLOCK + q] = h1_1
        out[8 * BLOCK + q] = h2_0
        out[9 * BLOCK + q] = h2_0 + h2_1
        out[10 * BLOCK + q] = h2_0 - h2_1
        out[11 * BLOCK + q] = h2_1
        out[12 * BLOCK + q] = h3_0
        out[13 * BLOCK + q] = h3_0 + h3_1
        out[14 * BLOCK + q] = h3_0 - h3_1
        out[15 * BLOCK + q] = h3_1


@njit(cache=True, fastmath=FASTMATH)
def _in_a4(win, out, kc):  # pragma: no cover
    """``out[(u*6 + v)*BLOCK + q] = (L W_q L^T)[u, v]`` with ``W_q[i, j] = win[(i*4 + j)*BLOCK + q]``, L = a4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    k4 = kc[4]
    k5 = kc[5]
    for q in range(BLOCK):
        h0_0 = win[q]
        h0_1 = win[1 * BLOCK + q]
        h0_2 = win[2 * BLOCK + q]
        h0_3 = win[3 * BLOCK + q]
        h1_0 = win[q] + win[4 * BLOCK + q] + win[8 * BLOCK + q] + win[12 * BLOCK + q]
        h1_1 = win[1 * BLOCK + q] + win[5 * BLOCK + q] + win[9 * BLOCK + q] + win[13 * BLOCK + q]
        h1_2 = win[2 * BLOCK + q] + win[6 * BLOCK + q] + win[10 * BLOCK + q] + win[14 * BLOCK + q]
        h1_3 = win[3 * BLOCK + q] + win[7 * BLOCK + q] + win[11 * BLOCK + q] + win[15 * BLOCK + q]
        h2_0 = win[q] - win[4 * BLOCK + q] + win[8 * BLOCK + q] - win[12 * BLOCK + q]
        h2_1 = win[1 * BLOCK + q] - win[5 * BLOCK + q] + win[9 * BLOCK + q] - win[13 * BLOCK + q]
        h2_2 = win[2 * BLOCK + q] - win[6 * BLOCK + q] + win[10 * BLOCK + q] - win[14 * BLOCK + q]
        h2_3 = win[3 * BLOCK + q] - win[7 * BLOCK + q] + win[11 * BLOCK + q] - win[15 * BLOCK + q]
        h3_0 = win[q] + k2 * win[4 * BLOCK + q] + k1 * win[8 * BLOCK + q] + k0 * win[12 * BLOCK + q]
        h3_1 = win[1 * BLOCK + q] + k2 * win[5 * BLOCK + q] + k1 * win[9 * BLOCK + q] + k0 * win[13 * BLOCK + q]
        h3_2 = win[2 * BLOCK + q] + k2 * win[6 * BLOCK + q] + k1 * win[10 * BLOCK + q] + k0 * win[14 * BLOCK + q]
        h3_3 = win[3 * BLOCK + q] + k2 * win[7 * BLOCK + q] + k1 * win[11 * BLOCK + q] + k0 * win[15 * BLOCK + q]
        h4_0 = win[q] - k3 * win[4 * BLOCK + q] + k4 * win[8 * BLOCK + q] - k5 * win[12 * BLOCK + q]
        h4_1 = win[1 * BLOCK + q] - k3 * win[5 * BLOCK + q] + k4 * win[9 * BLOCK + q] - k5 * win[13 * BLOCK + q]
        h4_2 = win[2 * BLOCK + q] - k3 * win[6 * BLOCK + q] + k4 * win[10 * BLOCK + q] - k5 * win[14 * BLOCK + q]
        h4_3 = win[3 * BLOCK + q] - k3 * win[7 * BLOCK + q] + k4 * win[11 * BLOCK + q] - k5 * win[15 * BLOCK + q]
        h5_0 = win[12 * BLOCK + q]
        h5_1 = win[13 * BLOCK + q]
        h5_2 = win[14 * BLOCK + q]
        h5_3 = win[15 * BLOCK + q]
        out[q] = h0_0
        out[1 * BLOCK + q] = h0_0 + h0_1 + h0_2 + h0_3
        out[2 * BLOCK + q] = h0_0 - h0_1 + h0_2 - h0_3
        out[3 * BLOCK + q] = h0_0 + k2 * h0_1 + k1 * h0_2 + k0 * h0_3
        out[4 * BLOCK + q] = h0_0 - k3 * h0_1 + k4 * h0_2 - k5 * h0_3
        out[5 * BLOCK + q] = h0_3
        out[6 * BLOCK + q] = h1_0
        out[7 * BLOCK + q] = h1_0 + h1_1 + h1_2 + h1_3
        out[8 * BLOCK + q] = h1_0 - h1_1 + h1_2 - h1_3
        out[9 * BLOCK + q] = h1_0 + k2 * h1_1 + k1 * h1_2 + k0 * h1_3
        out[10 * BLOCK + q] = h1_0 - k3 * h1_1 + k4 * h1_2 - k5 * h1_3
        out[11 * BLOCK + q] = h1_3
        out[12 * BLOCK + q] = h2_0
        out[13 * BLOCK + q] = h2_0 + h2_1 + h2_2 + h2_3
        out[14 * BLOCK + q] = h2_0 - h2_1 + h2_2 - h2_3
        out[15 * BLOCK + q] = h2_0 + k2 * h2_1 + k1 * h2_2 + k0 * h2_3
        out[16 * BLOCK + q] = h2_0 - k3 * h2_1 + k4 * h2_2 - k5 * h2_3
        out[17 * BLOCK + q] = h2_3
        out[18 * BLOCK + q] = h3_0
        out[19 * BLOCK + q] = h3_0 + h3_1 + h3_2 + h3_3
        out[20 * BLOCK + q] = h3_0 - h3_1 + h3_2 - h3_3
        out[21 * BLOCK + q] = h3_0 + k2 * h3_1 + k1 * h3_2 + k0 * h3_3
        out[22 * BLOCK + q] = h3_0 - k3 * h3_1 + k4 * h3_2 - k5 * h3_3
        out[23 * BLOCK + q] = h3_3
        out[24 * BLOCK + q] = h4_0
        out[25 * BLOCK + q] = h4_0 + h4_1 + h4_2 + h4_3
        out[26 * BLOCK + q] = h4_0 - h4_1 + h4_2 - h4_3
        out[27 * BLOCK + q] = h4_0 + k2 * h4_1 + k1 * h4_2 + k0 * h4_3
        out[28 * BLOCK + q] = h4_0 - k3 * h4_1 + k4 * h4_2 - k5 * h4_3
        out[29 * BLOCK + q] = h4_3
        out[30 * BLOCK + q] = h5_0
        out[31 * BLOCK + q] = h5_0 + h5_1 + h5_2 + h5_3
        out[32 * BLOCK + q] = h5_0 - h5_1 + h5_2 - h5_3
        out[33 * BLOCK + q] = h5_0 + k2 * h5_1 + k1 * h5_2 + k0 * h5_3
        out[34 * BLOCK + q] = h5_0 - k3 * h5_1 + k4 * h5_2 - k5 * h5_3
        out[35 * BLOCK + q] = h5_3


@njit(cache=True, fastmath=FASTMATH)
def _out_at2(prod, res, bias, kc):  # pragma: no cover
    """``res[(a*2 + b)*BLOCK + q] = bias + (R M_q R^T)[a, b]`` with ``M_q[u, v] = prod[(u*4 + v)*BLOCK + q]``, R = at2."""
    for q in range(BLOCK):
        h0_0 = prod[q] + prod[4 * BLOCK + q] + prod[8 * BLOCK + q]
        h0_1 = prod[1 * BLOCK + q] + prod[5 * BLOCK + q] + prod[9 * BLOCK + q]
        h0_2 = prod[2 * BLOCK + q] + prod[6 * BLOCK + q] + prod[10 * BLOCK + q]
        h0_3 = prod[3 * BLOCK + q] + prod[7 * BLOCK + q] + prod[11 * BLOCK + q]
        h1_0 = prod[4 * BLOCK + q] - prod[8 * BLOCK + q] + prod[12 * BLOCK + q]
        h1_1 = prod[5 * BLOCK + q] - prod[9 * BLOCK + q] + prod[13 * BLOCK + q]
        h1_2 = prod[6 * BLOCK + q] - prod[10 * BLOCK + q] + prod[14 * BLOCK + q]
        h1_3 = prod[7 * BLOCK + q] - prod[11 * BLOCK + q] + prod[15 * BLOCK + q]
        res[q] = bias + h0_0 + h0_1 + h0_2
        res[1 * BLOCK + q] = bias + h0_1 - h0_2 + h0_3
        res[2 * BLOCK + q] = bias + h1_0 + h1_1 + h1_2
        res[3 * BLOCK + q] = bias + h1_1 - h1_2 + h1_3


@njit(cache=True, fastmath=FASTMATH)
def _out_at4(prod, res, bias, kc):  # pragma: no cover
    """``res[(a*4 + b)*BLOCK + q] = bias + (R M_q R^T)[a, b]`` with ``M_q[u, v] = prod[(u*6 + v)*BLOCK + q]``, R = at4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    k4 = kc[4]
    k5 = kc[5]
    for q in range(BLOCK):
        h0_0 = prod[q] + prod[6 * BLOCK + q] + prod[12 * BLOCK + q] + prod[18 * BLOCK + q] + prod[24 * BLOCK + q]
        h0_1 = prod[1 * BLOCK + q] + prod[7 * BLOCK + q] + prod[13 * BLOCK + q] + prod[19 * BLOCK + q] + prod[25 * BLOCK + q]
        h0_2 = prod[2 * BLOCK + q] + prod[8 * BLOCK + q] + prod[14 * BLOCK + q] + prod[20 * BLOCK + q] + prod[26 * BLOCK + q]
        h0_3 = prod[3 * BLOCK + q] + prod[9 * BLOCK + q] + prod[15 * BLOCK + q] + prod[21 * BLOCK + q] + prod[27 * BLOCK + q]
        h0_4 = prod[4 * BLOCK + q] + prod[10 * BLOCK + q] + prod[16 * BLOCK + q] + prod[22 * BLOCK + q] + prod[28 * BLOCK + q]
        h0_5 = prod[5 * BLOCK + q] + prod[11 * BLOCK + q] + prod[17 * BLOCK + q] + prod[23 * BLOCK + q] + prod[29 * BLOCK + q]
        h1_0 = prod[6 * BLOCK + q] - prod[12 * BLOCK + q] + k2 * prod[18 * BLOCK + q] - k3 * prod[24 * BLOCK + q]
        h1_1 = prod[7 * BLOCK + q] - prod[13 * BLOCK + q] + k2 * prod[19 * BLOCK + q] - k3 * prod[25 * BLOCK + q]
        h1_2 = prod[8 * BLOCK + q] - prod[14 * BLOCK + q] + k2 * prod[20 * BLOCK + q] - k3 * prod[26 * BLOCK + q]
        h1_3 = prod[9 * BLOCK + q] - prod[15 * BLOCK + q] + k2 * prod[21 * BLOCK + q] - k3 * prod[27 * BLOCK + q]
        h1_4 = prod[10 * BLOCK + q] - prod[16 * BLOCK + q] + k2 * prod[22 * BLOCK + q] - k3 * prod[28 * BLOCK + q]
        h1_5 = prod[11 * BLOCK + q] - prod[17 * BLOCK + q] + k2 * prod[23 * BLOCK + q] - k3 * prod[29 * BLOCK + q]
        h2_0 = prod[6 * BLOCK + q] + prod[12 * BLOCK + q] + k1 * prod[18 * BLOCK + q] + k4 * prod[24 * BLOCK + q]
        h2_1 = prod[7 * BLOCK + q] + prod[13 * BLOCK + q] + k1 * prod[19 * BLOCK + q] + k4 * prod[25 * BLOCK + q]
        h2_2 = prod[8 * BLOCK + q] + prod[14 * BLOCK + q] + k1 * prod[20 * BLOCK + q] + k4 * prod[26 * BLOCK + q]
        h2_3 = prod[9 * BLOCK + q] + prod[15 * BLOCK + q] + k1 * prod[21 * BLOCK + q] + k4 * prod[27 * BLOCK + q]
        h2_4 = prod[10 * BLOCK + q] + prod[16 * BLOCK + q] + k1 * prod[22 * BLOCK + q] + k4 * prod[28 * BLOCK + q]
        h2_5 = prod[11 * BLOCK + q] + prod[17 * BLOCK + q] + k1 * prod[23 * BLOCK + q] + k4 * prod[29 * BLOCK + q]
        h3_0 = prod[6 * BLOCK + q] - prod[12 * BLOCK + q] + k0 * prod[18 * BLOCK + q] - k5 * prod[24 * BLOCK + q] + prod[30 * BLOCK + q]
        h3_1 = prod[7 * BLOCK + q] - prod[13 * BLOCK + q] + k0 * prod[19 * BLOCK + q] - k5 * prod[25 * BLOCK + q] + prod[31 * BLOCK + q]
        h3_2 = prod[8 * BLOCK + q] - prod[14 * BLOCK + q] + k0 * prod[20 * BLOCK + q] - k5 * prod[26 * BLOCK + q] + prod[32 * BLOCK + q]
        h3_3 = prod[9 * BLOCK + q] - prod[15 * BLOCK + q] + k0 * prod[21 * BLOCK + q] - k5 * prod[27 * BLOCK + q] + prod[33 * BLOCK + q]
        h3_4 = prod[10 * BLOCK + q] - prod[16 * BLOCK + q] + k0 * prod[22 * BLOCK + q] - k5 * prod[28 * BLOCK + q] + prod[34 * BLOCK + q]
        h3_5 = prod[11 * BLOCK + q] - prod[17 * BLOCK + q] + k0 * prod[23 * BLOCK + q] - k5 * prod[29 * BLOCK + q] + prod[35 * BLOCK + q]
        res[q] = bias + h0_0 + h0_1 + h0_2 + h0_3 + h0_4
        res[1 * BLOCK + q] = bias + h0_1 - h0_2 + k2 * h0_3 - k3 * h0_4
        res[2 * BLOCK + q] = bias + h0_1 + h0_2 + k1 * h0_3 + k4 * h0_4
        res[3 * BLOCK + q] = bias + h0_1 - h0_2 + k0 * h0_3 - k5 * h0_4 + h0_5
        res[4 * BLOCK + q] = bias + h1_0 + h1_1 + h1_2 + h1_3 + h1_4
        res[5 * BLOCK + q] = bias + h1_1 - h1_2 + k2 * h1_3 - k3 * h1_4
        res[6 * BLOCK + q] = bias + h1_1 + h1_2 + k1 * h1_3 + k4 * h1_4
        res[7 * BLOCK + q] = bias + h1_1 - h1_2 + k0 * h1_3 - k5 * h1_4 + h1_5
        res[8 * BLOCK + q] = bias + h2_0 + h2_1 + h2_2 + h2_3 + h2_4
        res[9 * BLOCK + q] = bias + h2_1 - h2_2 + k2 * h2_3 - k3 * h2_4
        res[10 * BLOCK + q] = bias + h2_1 + h2_2 + k1 * h2_3 + k4 * h2_4
        res[11 * BLOCK + q] = bias + h2_1 - h2_2 + k0 * h2_3 - k5 * h2_4 + h2_5
        res[12 * BLOCK + q] = bias + h3_0 + h3_1 + h3_2 + h3_3 + h3_4
        res[13 * BLOCK + q] = bias + h3_1 - h3_2 + k2 * h3_3 - k3 * h3_4
        res[14 * BLOCK + q] = bias + h3_1 + h3_2 + k1 * h3_3 + k4 * h3_4
        res[15 * BLOCK + q] = bias + h3_1 - h3_2 + k0 * h3_3 - k5 * h3_4 + h3_5


@njit(cache=True, fastmath=FASTMATH)
def _out_gt2(prod, res, bias, kc):  # pragma: no cover
    """``res[(a*3 + b)*BLOCK + q] = bias + (R M_q R^T)[a, b]`` with ``M_q[u, v] = prod[(u*4 + v)*BLOCK + q]``, R = gt2."""
    k0 = kc[0]
    for q in range(BLOCK):
        h0_0 = prod[q] + k0 * prod[4 * BLOCK + q] + k0 * prod[8 * BLOCK + q]
        h0_1 = prod[1 * BLOCK + q] + k0 * prod[5 * BLOCK + q] + k0 * prod[9 * BLOCK + q]
        h0_2 = prod[2 * BLOCK + q] + k0 * prod[6 * BLOCK + q] + k0 * prod[10 * BLOCK + q]
        h0_3 = prod[3 * BLOCK + q] + k0 * prod[7 * BLOCK + q] + k0 * prod[11 * BLOCK + q]
        h1_0 = k0 * prod[4 * BLOCK + q] - k0 * prod[8 * BLOCK + q]
        h1_1 = k0 * prod[5 * BLOCK + q] - k0 * prod[9 * BLOCK + q]
        h1_2 = k0 * prod[6 * BLOCK + q] - k0 * prod[10 * BLOCK + q]
        h1_3 = k0 * prod[7 * BLOCK + q] - k0 * prod[11 * BLOCK + q]
        h2_0 = k0 * prod[4 * BLOCK + q] + k0 * prod[8 * BLOCK + q] + prod[12 * BLOCK + q]
        h2_1 = k0 * prod[5 * BLOCK + q] + k0 * prod[9 * BLOCK + q] + prod[13 * BLOCK + q]
        h2_2 = k0 * prod[6 * BLOCK + q] + k0 * prod[10 * BLOCK + q] + prod[14 * BLOCK + q]
        h2_3 = k0 * prod[7 * BLOCK + q] + k0 * prod[11 * BLOCK + q] + prod[15 * BLOCK + q]
        res[q] = bias + h0_0 + k0 * h0_1 + k0 * h0_2
        res[1 * BLOCK + q] = bias + k0 * h0_1 - k0 * h0_2
        res[2 * BLOCK + q] = bias + k0 * h0_1 + k0 * h0_2 + h0_3
        res[3 * BLOCK + q] = bias + h1_0 + k0 * h1_1 + k0 * h1_2
        res[4 * BLOCK + q] = bias + k0 * h1_1 - k0 * h1_2
        res[5 * BLOCK + q] = bias + k0 * h1_1 + k0 * h1_2 + h1_3
        res[6 * BLOCK + q] = bias + h2_0 + k0 * h2_1 + k0 * h2_2
        res[7 * BLOCK + q] = bias + k0 * h2_1 - k0 * h2_2
        res[8 * BLOCK + q] = bias + k0 * h2_1 + k0 * h2_2 + h2_3


@njit(cache=True, fastmath=FASTMATH)
def _out_gt4(prod, res, bias, kc):  # pragma: no cover
    """``res[(a*3 + b)*BLOCK + q] = bias + (R M_q R^T)[a, b]`` with ``M_q[u, v] = prod[(u*6 + v)*BLOCK + q]``, R = gt4."""
    k0 = kc[0]
    k1 = kc[1]
    k2 = kc[2]
    k3 = kc[3]
    k4 = kc[4]
    k5 = kc[5]
    for q in range(BLOCK):
        h0_0 = prod[q] + k3 * prod[6 * BLOCK + q] + k3 * prod[12 * BLOCK + q] + k5 * prod[18 * BLOCK + q] + k0 * prod[24 * BLOCK + q]
        h0_1 = prod[1 * BLOCK + q] + k3 * prod[7 * BLOCK + q] + k3 * prod[13 * BLOCK + q] + k5 * prod[19 * BLOCK + q] + k0 * prod[25 * BLOCK + q]
        h0_2 = prod[2 * BLOCK + q] + k3 * prod[8 * BLOCK + q] + k3 * prod[14 * BLOCK + q] + k5 * prod[20 * BLOCK + q] + k0 * prod[26 * BLOCK + q]
        h0_3 = prod[3 * BLOCK + q] + k3 * prod[9 * BLOCK + q] + k3 * prod[15 * BLOCK + q] + k5 * prod[21 * BLOCK + q] + k0 * prod[27 * BLOCK + q]
        h0_4 = prod[4 * BLOCK + q] + k3 * prod[10 * BLOCK + q] + k3 * prod[16 * BLOCK + q] + k5 * prod[22 * BLOCK + q] + k0 * prod[28 * BLOCK + q]
        h0_5 = prod[5 * BLOCK + q] + k3 * prod[11 * BLOCK + q] + k3 * prod[17 * BLOCK + q] + k5 * prod[23 * BLOCK + q] + k0 * prod[29 * BLOCK + q]
        h1_0 = k3 * prod[6 * BLOCK + q] - k3 * prod[12 * BLOCK + q] + k4 * prod[18 * BLOCK + q] - k1 * prod[24 * BLOCK + q]
        h1_1 = k3 * prod[7 * BLOCK + q] - k3 * prod[13 * BLOCK + q] + k4 * prod[19 * BLOCK + q] - k1 * prod[25 * BLOCK + q]
        h1_2 = k3 * prod[8 * BLOCK + q] - k3 * prod[14 * BLOCK + q] + k4 * prod[20 * BLOCK + q] - k1 * prod[26 * BLOCK + q]
        h1_3 = k3 * prod[9 * BLOCK + q] - k3 * prod[15 * BLOCK + q] + k4 * prod[21 * BLOCK + q] - k1 * prod[27 * BLOCK + q]
        h1_4 = k3 * prod[10 * BLOCK + q] - k3 * prod[16 * BLOCK + q] + k4 * prod[22 * BLOCK + q] - k1 * prod[28 * BLOCK + q]
        h1_5 = k3 * prod[11 * BLOCK + q] - k3 * prod[17 * BLOCK + q] + k4 * prod[23 * BLOCK + q] - k1 * prod[29 * BLOCK + q]
        h2_0 = k3 * prod[6 * BLOCK + q] + k3 * prod[12 * BLOCK + q] + k2 * prod[18 * BLOCK + q] + k2 * prod[24 * BLOCK + q] + prod[30 * BLOCK + q]
        h2_1 = k3 * prod[7 * BLOCK + q] + k3 * prod[13 * BLOCK + q] + k2 * prod[19 * BLOCK + q] + k2 * prod[25 * BLOCK + q] + prod[31 * BLOCK + q]
        h2_2 = k3 * prod[8 * BLOCK + q] + k3 * prod[14 * BLOCK + q] + k2 * prod[20 * BLOCK + q] + k2 * prod[26 * BLOCK + q] + prod[32 * BLOCK + q]
        h2_3 = k3 * prod[9 * BLOCK + q] + k3 * prod[15 * BLOCK + q] + k2 * prod[21 * BLOCK + q] + k2 * prod[27 * BLOCK + q] + prod[33 * BLOCK + q]
        h2_4 = k3 * prod[10 * BLOCK + q] + k3 * prod[16 * BLOCK + q] + k2 * prod[22 * BLOCK + q] + k2 * prod[28 * BLOCK + q] + prod[34 * BLOCK + q]
        h2_5 = k3 * prod[11 * BLOCK + q] + k3 * prod[17 * BLOCK + q] + k2 * prod[23 * BLOCK + q] + k2 * prod[29 * BLOCK + q] + prod[35 * BLOCK + q]
        res[q] = bias + h0_0 + k3 * h0_1 + k3 * h0_2 + k5 * h0_3 + k0 * h0_4
        res[1 * BLOCK + q] = bias + k3 * h0_1 - k3 * h0_2 + k4 * h0_3 - k1 * h0_4
        res[2 * BLOCK + q] = bias + k3 * h0_1 + k3 * h0_2 + k2 * h0_3 + k2 * h0_4 + h0_5
        res[3 * BLOCK + q] = bias + h1_0 + k3 * h1_1 + k3 * h1_2 + k5 * h1_3 + k0 * h1_4
        res[4 * BLOCK + q] = bias + k3 * h1_1 - k3 * h1_2 + k4 * h1_3 - k1 * h1_4
        res[5 * BLOCK + q] = bias + k3 * h1_1 + k3 * h1_2 + k2 * h1_3 + k2 * h1_4 + h1_5
        res[6 * BLOCK + q] = bias + h2_0 + k3 * h2_1 + k3 * h2_2 + k5 * h2_3 + k0 * h2_4
        res[7 * BLOCK + q] = bias + k3 * h2_1 - k3 * h2_2 + k4 * h2_3 - k1 * h2_4
        res[8 * BLOCK + q] = bias + k3 * h2_1 + k3 * h2_2 + k2 * h2_3 + k2 * h2_4 + h2_5
