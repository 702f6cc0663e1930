"""Gradients of the general convolution on the stride-phase layout of :mod:`.conv`.

dX of a stride-(sh, sw) convolution splits by the phase of the input cell: padded input
row ``sh*u + a`` only receives from kernel rows ``i`` with ``i*dh % sh == a``, at output
row ``u - (i*dh - a)//sh``. Those rows are every ``m = sh/gcd(sh, dh)``-th one, so each
phase is a stride-1 correlation of dY with a sub-kernel (dilated by ``dh/gcd(sh, dh)``),
turned 180 degrees with its channel axes swapped: a forward convolution on the wide grid
(:func:`.conv._grid_forward`) that writes its result straight into the phase's strided
view of dX. At stride 1 that is the single phase, all of dX.

dW is, per tap, one long dot product of dY laid on the forward's stacked phase grid with
the input's phase layout shifted by the tap's flat offset. The wide grid's extra columns
and rows hold zeros in dY but real input cells, so a tap whose fast sum is not finite is
summed again over the valid cells only: an Inf in the input then reaches exactly the taps
the reference gives Inf or NaN (0 * Inf in a discarded cell would be NaN). A task per
(output channel block, input channel) owns its dW entries, so results are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec

from . import depthwise, depthwise_grad
from .conv import (
    _VECTOR_PAD,
    _grid_forward,
    _phase_grid,
    _tap_offsets,
    grid_shape,
)

#: dW's blocking: each pass sums DW_BLOCK output channels x DW_TAPS taps, 24 running
#: sums that share their loads. On Zen 4 (32 AVX-512 registers) 8 x 3 took 0.66-0.84x the
#: time of the 2 x 3 before it on ResNet-18's 3x3 layers and its stem; 4 x 3 and 6 x 3
#: 0.70-0.83x; 12 x 3, 16 x 2 and 16 x 3 were slower than 8 x 3. The kernel's body spells
#: out these 8 x 3 sums: change it with them.
DW_BLOCK = 8
DW_TAPS = 3


@njit(cache=True)
def _exact_tap(gy, src, start, o, wp, prows):  # pragma: no cover
    """One dW tap summed over dY's valid cells only (see the module docstring)."""
    n_img, _, out_h, out_w = gy.shape
    total = src.dtype.type(0)
    for n in range(n_img):
        for r in range(out_h):
            xs = src[start + (n * prows + r) * wp :]
            gs = gy[n, o, r]
            for c in range(out_w):
                total += gs[c] * xs[c]
    return total


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _grad_w_grid(gyw, gy, xt, offs, dwt, groups, wp, prows, length):  # pragma: no cover
    """dW[o, ci, i, j] = dY(o) . (input phase of tap (i, j) of ci, shifted by its offset).

    ``gyw[o]`` is dY of output channel ``o`` on the stacked phase grid (zeros past OW and
    OH), ``xt`` the input's phase layout (:func:`.conv._phase_grid`) and ``offs[t]`` the
    start of tap t (row-major) in an input channel's row of ``xt``. Eight output channels
    (``g0 .. g7``) and three taps (``x0 .. x2``) per pass share their loads; a missing
    channel or tap repeats the last one and is not stored. A full pass whose 24 sums have
    a finite total stores them straight into the rows ``r0 .. r7`` of dW, with one test: dW
    took 0.83-0.92x the time of testing and storing each sum by its four indices on
    ResNet-18's 3x3 layers (0.99x on its stem), the more the shorter the runs.
    """
    n_out, cin_g, kh, kw = dwt.shape
    out_g = n_out // groups
    blocks = (out_g + DW_BLOCK - 1) // DW_BLOCK
    taps = kh * kw
    flat = dwt.reshape(n_out, cin_g * taps)
    for task in prange(groups * blocks * cin_g):
        ci = task % cin_g
        g = task // (cin_g * blocks)
        o0 = g * out_g + (task // cin_g) % blocks * DW_BLOCK
        n_valid = min(DW_BLOCK, (g + 1) * out_g - o0)
        last = o0 + n_valid - 1
        src = xt[g * cin_g + ci]
        g0, g1 = gyw[o0, :length], gyw[min(o0 + 1, last), :length]
        g2, g3 = gyw[min(o0 + 2, last), :length], gyw[min(o0 + 3, last), :length]
        g4, g5 = gyw[min(o0 + 4, last), :length], gyw[min(o0 + 5, last), :length]
        g6, g7 = gyw[min(o0 + 6, last), :length], gyw[min(o0 + 7, last), :length]
        r0, r1 = flat[o0], flat[min(o0 + 1, last)]
        r2, r3 = flat[min(o0 + 2, last)], flat[min(o0 + 3, last)]
        r4, r5 = flat[min(o0 + 4, last)], flat[min(o0 + 5, last)]
        r6, r7 = flat[min(o0 + 6, last)], flat[min(o0 + 7, last)]
        for t in range(0, taps, DW_TAPS):
            t1, t2 = min(t + 1, taps - 1), min(t + 2, taps - 1)
            s0, s1, s2 = offs[t], offs[t1], offs[t2]
            x0, x1, x2 = src[s0 : s0 + length], src[s1 : s1 + length], src[s2 : s2 + length]
            zero = dwt.dtype.type(0)
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero  # tap t
            b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = zero  # tap t1
            c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = zero  # tap t2
            for q in range(length):
                p0, p1, p2 = x0[q], x1[q], x2[q]
                u = g0[q]
                a0, b0, c0 = a0 + u * p0, b0 + u * p1, c0 + u * p2
                u = g1[q]
                a1, b1, c1 = a1 + u * p0, b1 + u * p1, c1 + u * p2
                u = g2[q]
                a2, b2, c2 = a2 + u * p0, b2 + u * p1, c2 + u * p2
                u = g3[q]
                a3, b3, c3 = a3 + u * p0, b3 + u * p1, c3 + u * p2
                u = g4[q]
                a4, b4, c4 = a4 + u * p0, b4 + u * p1, c4 + u * p2
                u = g5[q]
                a5, b5, c5 = a5 + u * p0, b5 + u * p1, c5 + u * p2
                u = g6[q]
                a6, b6, c6 = a6 + u * p0, b6 + u * p1, c6 + u * p2
                u = g7[q]
                a7, b7, c7 = a7 + u * p0, b7 + u * p1, c7 + u * p2
            # Any NaN or Inf among the sums makes their total NaN or Inf, in any order of
            # addition; a total that merely overflows sends a finite pass the slow way.
            check = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
            check += b0 + b1 + b2 + b3 + b4 + b5 + b6 + b7
            check += c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7
            if n_valid == DW_BLOCK and t + 2 < taps and np.isfinite(check):
                k0 = ci * taps + t
                k1, k2 = k0 + 1, k0 + 2
                r0[k0], r0[k1], r0[k2] = a0, b0, c0
                r1[k0], r1[k1], r1[k2] = a1, b1, c1
                r2[k0], r2[k1], r2[k2] = a2, b2, c2
                r3[k0], r3[k1], r3[k2] = a3, b3, c3
                r4[k0], r4[k1], r4[k2] = a4, b4, c4
                r5[k0], r5[k1], r5[k2] = a5, b5, c5
                r6[k0], r6[k1], r6[k2] = a6, b6, c6
                r7[k0], r7[k1], r7[k2] = a7, b7, c7
                continue
            sums = (
                (t, s0, (a0, a1, a2, a3, a4, a5, a6, a7)),
                (t1, s1, (b0, b1, b2, b3, b4, b5, b6, b7)),
                (t2, s2, (c0, c1, c2, c3, c4, c5, c6, c7)),
            )
            for k, s, by_channel in sums:
                i, j = divmod(k, kw)
                for m in range(n_valid):
                    total = by_channel[m]
                    if not np.isfinite(total):
                        total = _exact_tap(gy, src, s, o0 + m, wp, prows)
                    dwt[o0 + m, ci, i, j] = total


def grad_weight(grad_y: np.ndarray, x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dW on the forward's phase layout of the whole input (any stride and dilation)."""
    if depthwise.applies(spec):
        return depthwise_grad.grad_weight(grad_y, x, spec)
    n_img, _, out_h, out_w = spec.y_shape
    wp, prows = grid_shape(out_h, out_w, spec.kernel, spec.stride, spec.dilation)
    (sh, sw), groups = spec.stride, spec.groups
    grid_h = n_img * prows - (prows - out_h)
    length = -(-grid_h * wp // _VECTOR_PAD) * _VECTOR_PAD
    plane = n_img * prows * wp + wp + _VECTOR_PAD
    xt = scratch("numba.grad_phases", (spec.in_channels, sh * sw * plane), spec.dtype)
    top, left = spec.padding[0], spec.padding[2]
    launch(_phase_grid, readonly(x), xt, sh, sw, top, left, groups, 0, wp, prows, plane)
    extra = -(-_VECTOR_PAD // wp)  # zero rows for the last vector of a run
    gyw = scratch("numba.grad_grid", (spec.out_channels, n_img * prows + extra, wp), spec.dtype)
    gyw.fill(0)
    grid = gyw[:, : n_img * prows].reshape(spec.out_channels, n_img, prows, wp)  # a view
    grid[:, :, :out_h, :out_w] = grad_y.transpose(1, 0, 2, 3)
    grad_w = np.empty(spec.w_shape, dtype=spec.dtype)
    launch(
        _grad_w_grid,
        readonly(gyw.reshape(spec.out_channels, -1)),
        readonly(grad_y),
        readonly(xt),
        _tap_offsets(1, spec.kernel, spec.stride, spec.dilation, 0, plane, wp),
        grad_w,
        groups,
        wp,
        prows,
        length,
    )
    return grad_w


def _phase_taps(k: int, s: int, d: int, a: int) -> tuple[int, int, int, int]:
    """First tap, tap step, tap count and first offset of padded-input phase ``a``.

    Taps ``i`` with ``i*d % s == a`` are ``i0, i0 + m, ...`` (``m = s/gcd(s, d)``); tap
    ``i`` reaches phase row ``u`` from output row ``u - (i*d - a)//s``.
    """
    m = s // math.gcd(s, d)
    starts = [i for i in range(min(k, m)) if i * d % s == a]
    if not starts:
        return 0, m, 0, 0
    i0 = starts[0]
    return i0, m, len(range(i0, k, m)), (i0 * d - a) // s


def _phase_rows(size: int, pad: int, s: int, a: int) -> tuple[int, int, int]:
    """First phase index ``u0``, first input row and row count of phase ``a``."""
    u0 = -((a - pad) // s)
    first = u0 * s + a - pad
    return u0, first, len(range(first, size, s))


def grad_input(grad_y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dX as one stride-1 forward convolution of dY per stride phase of the input."""
    if depthwise.applies(spec):
        return depthwise_grad.grad_input(grad_y, w, spec)
    (sh, sw), (dh, dw), (kh, kw) = spec.stride, spec.dilation, spec.kernel
    top, left = spec.padding[0], spec.padding[2]
    grad_x = np.empty(spec.x_shape, dtype=spec.dtype)
    zero_bias = readonly(np.zeros(spec.in_channels, dtype=spec.dtype))
    gy, w = readonly(grad_y), readonly(w)
    for a in range(sh):
        i0, mi, ki, qi = _phase_taps(kh, sh, dh, a)
        u0, r0, rows = _phase_rows(spec.height, top, sh, a)
        for b in range(sw):
            j0, mj, kj, qj = _phase_taps(kw, sw, dw, b)
            v0, c0, cols = _phase_rows(spec.width, left, sw, b)
            if rows == 0 or cols == 0:
                continue
            target = grad_x[:, :, r0::sh, c0::sw]
            if ki == 0 or kj == 0:
                target[...] = 0  # cells no window reads
                continue
            dil = (dh // math.gcd(sh, dh), dw // math.gcd(sw, dw))
            # Phase row u = u0 + v gets dY row u - qi - k*dil for sub-tap k: a forward
            # convolution (kernel turned) with this top padding.
            pad_top = qi + (ki - 1) * dil[0] - u0
            pad_left = qj + (kj - 1) * dil[1] - v0
            # The phase is written straight into its strided view of dX.
            turn = (True, i0, mi, j0, mj, ki, kj)
            _grid_forward(
                gy, w, zero_bias, target, (1, 1), dil, pad_top, pad_left, spec.groups, turn
            )
    return grad_x
