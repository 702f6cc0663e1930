"""Gradients of the general convolution on the stride-phase layout of :mod:`.conv`.

dX of a stride-(sh, sw) convolution splits by the phase of the input cell: padded input
row ``sh*u + a`` only receives from kernel rows ``i`` with ``i*dh % sh == a``, at output
row ``u - (i*dh - a)//sh``. Those rows are every ``m = sh/gcd(sh, dh)``-th one, so each
phase is a stride-1 correlation of dY with a sub-kernel (dilated by ``dh/gcd(sh, dh)``),
turned 180 degrees with its channel axes swapped: a forward convolution on the wide grid
(:func:`.conv._grid_forward`), whose result is interleaved back into dX. At stride 1 that
is the single phase, written into dX in place.

dW is, per tap, one long dot product of dY laid on the forward's stacked phase grid with
the input's phase layout shifted by the tap's flat offset. The wide grid's extra columns
and rows hold zeros in dY but real input cells, so a tap whose fast sum is not finite is
summed again over the valid cells only: an Inf in the input then reaches exactly the taps
the reference gives Inf or NaN (0 * Inf in a discarded cell would be NaN). A task per
(output channel pair, input channel) owns its dW entries, so results are deterministic.
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

#: Output channels per dW pass: 2 channels x 3 taps = 6 running sums, the most that LLVM
#: keeps in vector registers (with more, the loop stays scalar).
_DW_PAIR = 2


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
    start of tap t (row-major) in an input channel's row of ``xt``. Two output
    channels and three taps per pass share their loads; a missing channel or tap repeats
    the last one and is not stored.
    """
    n_out, cin_g, kh, kw = dwt.shape
    out_g = n_out // groups
    pairs = (out_g + _DW_PAIR - 1) // _DW_PAIR
    taps = kh * kw
    for task in prange(groups * pairs * cin_g):
        ci = task % cin_g
        g = task // (cin_g * pairs)
        o0 = g * out_g + (task // cin_g) % pairs * _DW_PAIR
        o1 = min(o0 + 1, (g + 1) * out_g - 1)
        src = xt[g * cin_g + ci]
        ga, gb = gyw[o0, :length], gyw[o1, :length]
        for t in range(0, taps, 3):
            t1, t2 = min(t + 1, taps - 1), min(t + 2, taps - 1)
            s0, s1, s2 = offs[t], offs[t1], offs[t2]
            x0, x1, x2 = src[s0 : s0 + length], src[s1 : s1 + length], src[s2 : s2 + length]
            zero = dwt.dtype.type(0)
            a0 = a1 = a2 = b0 = b1 = b2 = zero
            for q in range(length):
                u, v = ga[q], gb[q]
                p0, p1, p2 = x0[q], x1[q], x2[q]
                a0 += u * p0
                a1 += u * p1
                a2 += u * p2
                b0 += v * p0
                b1 += v * p1
                b2 += v * p2
            for k, s, ta, tb in ((t, s0, a0, b0), (t1, s1, a1, b1), (t2, s2, a2, b2)):
                i, j = divmod(k, kw)
                if not np.isfinite(ta):
                    ta = _exact_tap(gy, src, s, o0, wp, prows)
                dwt[o0, ci, i, j] = ta
                if o1 > o0:
                    if not np.isfinite(tb):
                        tb = _exact_tap(gy, src, s, o1, wp, prows)
                    dwt[o1, ci, i, j] = tb


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
            out = grad_x if sh == sw == 1 else np.empty((*grad_x.shape[:2], rows, cols), spec.dtype)
            turn = (True, i0, mi, j0, mj, ki, kj)
            _grid_forward(gy, w, zero_bias, out, (1, 1), dil, pad_top, pad_left, spec.groups, turn)
            if out is not grad_x:
                target[...] = out
    return grad_x
