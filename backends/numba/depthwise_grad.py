"""Gradients of the depthwise 3x3 convolution (see :mod:`.depthwise` for the layouts).

dX at stride 1 is the forward kernel run on dY with the kernel turned 180 degrees; at
stride 2 it is assembled from the input's four parity phases. dW is a task per channel
summing, in a fixed order, over images and rows. MobileNet's layouts take the flat
kernels of :mod:`.depthwise_flat` (dX at stride 1 and dW; at stride 2, dW on outputs at
least 20 wide). The rest of stride 2 on rows of twice the output's width (dX, and
narrower outputs' dW) takes the whole-plane kernels of :mod:`.depthwise_grad_s2`, and
where those decline (values that are not finite), these run. Numba's on-disk cache
checks only the file holding a kernel: after editing the helpers in :mod:`.depthwise`
that these kernels inline, clear the package's ``__pycache__``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.spec import ConvSpec

from . import depthwise_flat, depthwise_grad_s2
from .depthwise import _dw_forward, _fill_block, _flat, _planes, block_rows, halves
from .geometry import MAX_TASKS


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_grad_w(gy, x, dwt, out_w, stride, top, left, rows):  # pragma: no cover
    """dW of the depthwise convolution: a task per channel sums over images and rows."""
    planes = x.shape[0]
    n_ch = dwt.shape[0]
    n_img = planes // n_ch
    out_h = gy.shape[1] // out_w
    blocks = (out_h + rows - 1) // rows
    for c in prange(n_ch):
        taps = np.empty((3 * stride, (rows + 2) * out_w + 1), dtype=dwt.dtype)
        zero = dwt.dtype.type(0)
        a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = zero
        for n in range(n_img):
            p = n * n_ch + c
            for blk in range(blocks):
                oh0 = blk * rows
                nr = min(rows, out_h - oh0)
                _fill_block(x, p, oh0, nr, stride, top, left, out_w, taps)
                g = gy[p, oh0 * out_w : (oh0 + nr) * out_w]
                # Kernel row 1 reads the next input row at stride 1, the odd phase's same
                # row at stride 2; row 2 the row after that / the next even one.
                n = nr * out_w
                odd = 3 * (stride - 1)
                m = out_w if stride == 1 else 0
                t0, t1, t2 = taps[0, :n], taps[1, :n], taps[2, :n]
                u0, u1, u2 = (
                    taps[odd, m : m + n],
                    taps[odd + 1, m : m + n],
                    taps[odd + 2, m : m + n],
                )
                s2 = m + out_w
                v0, v1, v2 = taps[0, s2 : s2 + n], taps[1, s2 : s2 + n], taps[2, s2 : s2 + n]
                # LLVM vectorises a loop of at most six sums (nine stay scalar).
                for q in range(n):
                    gv = g[q]
                    a00 += gv * t0[q]
                    a01 += gv * t1[q]
                    a02 += gv * t2[q]
                    a10 += gv * u0[q]
                    a11 += gv * u1[q]
                    a12 += gv * u2[q]
                for q in range(n):
                    gv = g[q]
                    a20 += gv * v0[q]
                    a21 += gv * v1[q]
                    a22 += gv * v2[q]
        dwt[c, 0, 0, 0], dwt[c, 0, 0, 1], dwt[c, 0, 0, 2] = a00, a01, a02
        dwt[c, 0, 1, 0], dwt[c, 0, 1, 1], dwt[c, 0, 1, 2] = a10, a11, a12
        dwt[c, 0, 2, 0], dwt[c, 0, 2, 1], dwt[c, 0, 2, 2] = a20, a21, a22


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_grad_x_s2(gy, w, dx, out_w, top, left, rows):  # pragma: no cover
    """dX of the stride-2 depthwise convolution, by the four parity phases of the input.

    Padded input cell (2u + a, 2v + b) receives ``w[i, j] * dY[u - i//2, v - j//2]`` over
    the taps with ``i % 2 == a`` and ``j % 2 == b``: per phase a stride-1 correlation of
    dY with a 2x2, 2x1, 1x2 or 1x1 sub-kernel. dY is laid out on rows of ``wv = OW + 1``
    cells (and once more shifted by a column), each phase computed flat on that grid, and
    the phases interleaved back into dX's rows. Items are blocks of phase rows ``u``.
    """
    planes, height, width = dx.shape
    n_ch = w.shape[0]
    out_h = gy.shape[1] // out_w
    wv = out_w + 1
    prow = out_h + 1  # phase rows that any forward window reaches
    blocks = (prow + rows - 1) // rows
    items = planes * blocks
    tasks = min(items, MAX_TASKS)
    for task in prange(tasks):
        shifted = np.empty((2, (rows + 1) * wv + 1), dtype=dx.dtype)
        phases = np.empty((4, rows * wv), dtype=dx.dtype)
        for item in range(task * items // tasks, (task + 1) * items // tasks):
            p, blk = item // blocks, item % blocks
            c = p % n_ch
            u0 = blk * rows
            nu = min(rows, prow - u0)
            # shifted[jj] row k holds dY row u0 + k - 1 at columns jj .. jj + OW.
            g0, g1 = shifted[0], shifted[1]
            for k in range(nu + 1):
                oh = u0 + k - 1
                r0 = g0[k * wv : (k + 1) * wv]
                r1 = g1[k * wv : (k + 1) * wv]
                if 0 <= oh < out_h:
                    src = gy[p, oh * out_w : (oh + 1) * out_w]
                    r1s = r1[1:]
                    for t in range(out_w):
                        r0[t] = src[t]
                        r1s[t] = src[t]
                    r0[out_w] = 0
                    r1[0] = 0
                else:
                    r0[:] = 0
                    r1[:] = 0
            w00, w01, w02 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
            w10, w11, w12 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
            w20, w21, w22 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
            n = nu * wv
            p00, p01, p10, p11 = phases[0, :n], phases[1, :n], phases[2, :n], phases[3, :n]
            h0, h1 = g0[wv : wv + n], g1[wv : wv + n]  # taps i = 0, 1 read dY row u
            l0, l1 = g0[:n], g1[:n]  # taps i = 2 read dY row u - 1
            # One loop per phase: each then writes one array and needs few overlap checks.
            for q in range(n):
                p00[q] = (w00 * h0[q] + w02 * h1[q]) + (w20 * l0[q] + w22 * l1[q])
            for q in range(n):
                p01[q] = w01 * h0[q] + w21 * l0[q]
            for q in range(n):
                p10[q] = w10 * h0[q] + w12 * h1[q]
            for q in range(n):
                p11[q] = w11 * h0[q]
            # Padded rows 2*u0 .. 2*(u0+nu) (and, for the last block, all below) -> dX.
            r_lo = max(0, 2 * u0 - top)
            r_hi = height if blk == blocks - 1 else min(height, 2 * (u0 + nu) - top)
            for r in range(r_lo, r_hi):
                pr = r + top
                dst = dx[p, r]
                u = pr // 2 - u0
                if u >= nu:
                    dst[:] = 0
                    continue
                a = pr % 2
                even = phases[2 * a, u * wv : (u + 1) * wv]
                odd = phases[2 * a + 1, u * wv : (u + 1) * wv]
                # Column col takes phase (col + left) % 2 at v = (col + left) // 2.
                v_lo = min(wv, (left + 1) // 2)
                v_hi = max(v_lo, min(wv, (width + left) // 2))
                c_lo, c_hi = 2 * v_lo - left, 2 * v_hi - left
                run, ev, od = dst[c_lo:c_hi], even[v_lo:v_hi], odd[v_lo:v_hi]
                for v in range(v_hi - v_lo):
                    run[2 * v] = ev[v]
                    run[2 * v + 1] = od[v]
                for col in range(width - c_hi + c_lo):
                    col = col if col < c_lo else col - c_lo + c_hi
                    pc = col + left
                    v = pc // 2
                    if v >= wv:
                        dst[col] = 0
                    else:
                        dst[col] = odd[v] if pc % 2 else even[v]


def grad_input(grad_y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dX: at stride 1 the correlation of dY with the kernel turned 180 degrees."""
    if halves(spec):
        grad_x = depthwise_grad_s2.grad_input(grad_y, w, spec)
        if grad_x is not None:
            return grad_x
    grad_x = np.empty(spec.x_shape, dtype=spec.dtype)
    top, left = spec.padding[0], spec.padding[2]
    if spec.stride == (1, 1):
        rotated = np.ascontiguousarray(w[:, :, ::-1, ::-1])
        zero_bias = np.zeros(spec.in_channels, dtype=spec.dtype)
        if depthwise_flat.same_size(spec):  # then dX is padded by one cell on every side too
            depthwise_flat.correlate_same(
                _flat(grad_y), rotated, zero_bias, _flat(grad_x), spec.width
            )
            return grad_x
        launch(
            _dw_forward,
            readonly(_planes(grad_y)),
            readonly(rotated),
            readonly(zero_bias),
            _flat(grad_x),
            spec.width,
            1,
            2 - top,
            2 - left,
            block_rows(spec.height, spec.width),
        )
    else:
        rows = block_rows(spec.out_height + 1, spec.out_width + 1)
        launch(
            _dw_grad_x_s2,
            readonly(_flat(grad_y)),
            readonly(w),
            _planes(grad_x),
            spec.out_width,
            top,
            left,
            rows,
        )
    return grad_x


def grad_weight(grad_y: np.ndarray, x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dW: per channel, nine dot products of dY with the column-tap rows of the input."""
    if halves(spec) and not depthwise_flat.grad_weight_by_parity(spec):
        grad_w = depthwise_grad_s2.grad_weight(grad_y, x, spec)
        if grad_w is not None:
            return grad_w
    grad_w = np.empty(spec.w_shape, dtype=spec.dtype)
    if depthwise_flat.same_size(spec):
        depthwise_flat.grad_weight_same(_flat(grad_y), _flat(x), grad_w, spec.width)
        return grad_w
    if depthwise_flat.grad_weight_by_parity(spec):
        depthwise_flat.grad_weight_parity(_flat(grad_y), _flat(x), grad_w, spec.out_width)
        return grad_w
    rows = block_rows(spec.out_height, spec.out_width)
    top, left = spec.padding[0], spec.padding[2]
    launch(
        _dw_grad_w,
        readonly(_flat(grad_y)),
        readonly(_planes(x)),
        grad_w,
        spec.out_width,
        spec.stride[0],
        top,
        left,
        rows,
    )
    return grad_w
