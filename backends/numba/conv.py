"""Direct convolution on a "wide grid" (Numba kernels and their hosts); gradients in
:mod:`.conv_grad`.

No lowered matrix. The forward convolution first lays the zero-padded input out by stride
phase on rows just wider than the output, so that every kernel tap becomes one contiguous,
vectorised run; that copy is made in chunks of images and channels no larger than the
output. Work is split over output tiles and channel blocks, so both cores are busy even
at batch 1, and every output cell is written by one task in a fixed order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec

from . import depthwise

# OUT_BLOCK and TILE_CELLS shape the work of _conv_forward_grid; the cost model
# (cost.py) imports them to count that kernel's tiles, blocks and passes.
#: Output channels computed together, so each input value loaded is used this many times.
OUT_BLOCK = 4
#: Wide-grid cells per convolution tile: 4 accumulator rows of this many float32 (16 KiB)
#: leave room in a 32 KiB L1 data cache for the input runs they read.
TILE_CELLS = 1024
#: The phase layout may take this many bytes even where the output is smaller: with few
#: output channels (dX of a stem) the output-sized chunks were a launch per few channels.
LAYOUT_FLOOR = 4 << 20
#: Accumulator rows are this many bytes past a multiple of 4 KiB apart: rows a multiple of
#: 4 KiB apart alias in the store buffer.
_ROW_SKEW = 1088
#: Inner loops are rounded up to a multiple of this many elements (two AVX2 vectors of
#: float32) so that no scalar remainder loop runs.
_VECTOR_PAD = 16


@njit(parallel=True, cache=True)
def _phase_grid(x, xt, sh, sw, top, left, groups, c0, wp, prows, plane):  # pragma: no cover
    """Lay out in-group input channels ``c0 ..`` of each group as padded stride phases.

    Row ``s`` of phase (a, b) in ``xt[g*chunk + k]`` is row ``s % prows`` of
    ``xpad[a::sh, b::sw]`` (the zero-padded input, cut to ``wp`` columns) for image
    ``s // prows`` and channel ``g*cin_g + c0 + k``: the images are stacked, so a tile of
    output rows may span several small images. A zeroed tail follows each phase, for the
    last vector of a run to read.
    """
    n_img, n_ch, height, width = x.shape
    chunk = xt.shape[0] // groups
    cin_g = n_ch // groups
    for j in prange(xt.shape[0]):
        c = (j // chunk) * cin_g + c0 + j % chunk
        out = xt[j]
        for a in range(sh):
            for bb in range(sw):
                base = (a * sw + bb) * plane
                off = bb - left
                for s in range(n_img * prows):
                    n = s // prows
                    r = (s % prows) * sh + a - top
                    dst = out[base + s * wp : base + (s + 1) * wp]
                    if r < 0 or r >= height:
                        dst[:] = 0
                        continue
                    src = x[n, c, r]
                    if sw == 1:
                        # A contiguous run between the padding: a vectorised copy.
                        lo, hi = min(wp, max(0, -off)), max(0, min(wp, width - off))
                        hi = max(lo, hi)
                        dst[:lo] = 0
                        dst[hi:] = 0
                        run, part = dst[lo:hi], src[lo + off : hi + off]
                        for t in range(hi - lo):
                            run[t] = part[t]
                        continue
                    for t in range(wp):
                        col = t * sw + off
                        dst[t] = src[col] if 0 <= col < width else 0
                out[base + n_img * prows * wp : base + plane] = 0


@njit(inline="always", cache=True)
def _tap(t, kh, kw, sh, sw, dh, dw, plane, wp, r_lo):  # pragma: no cover
    """In-chunk channel and flat start in the phase layout of flat tap ``t`` (c, i, j)."""
    ci, rem = divmod(t, kh * kw)
    i, j = divmod(rem, kw)
    phase = ((i * dh) % sh * sw + (j * dw) % sw) * plane
    return ci, phase + (r_lo + (i * dh) // sh) * wp + (j * dw) // sw


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_forward_grid(
    xt, w, b, y, sh, sw, dh, dw, groups, c0, wp, prows, plane, accumulate
):  # pragma: no cover
    """Convolution on the "wide grid" of :func:`_phase_grid`: every tap is a flat offset.

    With the input split into stride phases on rows of ``wp = OW + dw*(kw-1)//sw`` cells,
    kernel tap (i, j) of output cell (r, c) reads phase ``(i*dh % sh, j*dw % sw)`` at row
    ``r + i*dh//sh`` and column ``c + j*dw//sw``: the same flat offset for every output cell
    of a tile, so each tap is one long contiguous run that LLVM vectorises. The extra
    ``wp - OW`` columns, and the ``prows - OH`` rows between stacked images, are computed
    and discarded. The taps, listed in (channel, row, column) order, are taken three at a
    time with four output channels per pass (12 FMAs per 4 stores), whatever the kernel's
    width: a one-tap pass is bound by its stores. ``xt`` holds in-group input
    channels ``c0 ..`` of each group; with ``accumulate`` the sums are added to what ``y``
    holds instead of to the bias.
    """
    n_out, _, kh, kw = w.shape
    chunk = xt.shape[0] // groups
    out_h, out_w = y.shape[2], y.shape[3]
    grid_h = y.shape[0] * prows - (prows - out_h)  # stacked rows, the last image's tail cut
    out_g = n_out // groups
    blocks = (out_g + OUT_BLOCK - 1) // OUT_BLOCK
    rows = max(1, min(grid_h, TILE_CELLS // wp))
    tiles = (grid_h + rows - 1) // rows
    padded_len = (rows * wp + _VECTOR_PAD - 1) // _VECTOR_PAD * _VECTOR_PAD
    row_bytes = (padded_len * y.itemsize + 4095) // 4096 * 4096 + _ROW_SKEW
    for task in prange(groups * tiles * blocks):
        # Output blocks vary fastest, so consecutive tasks read the same input tile.
        blk = task % blocks
        tile = (task // blocks) % tiles
        g = task // (blocks * tiles)
        o0 = g * out_g + blk * OUT_BLOCK
        nb = min(OUT_BLOCK, (g + 1) * out_g - o0)
        r_lo = tile * rows
        nr = min(rows, grid_h - r_lo)
        # Rounded up to whole vectors: the tail computes discarded cells instead of
        # falling back to scalar code.
        length = (nr * wp + _VECTOR_PAD - 1) // _VECTOR_PAD * _VECTOR_PAD
        acc = np.empty((OUT_BLOCK, row_bytes // y.itemsize), dtype=y.dtype)
        for k in range(nb):
            if accumulate:
                for rr in range(nr):
                    n, r = divmod(r_lo + rr, prows)
                    if r < out_h:
                        acc[k, rr * wp : rr * wp + out_w] = y[n, o0 + k, r, :]
            else:
                acc[k, :] = b[o0 + k]
        for k in range(nb, OUT_BLOCK):
            acc[k, :] = 0  # rows the fused pass computes and discards: no stale NaN
        taps = chunk * kh * kw
        full = taps // 3 * 3
        o_end = o0 + nb - 1
        for t in range(0, full, 3):
            # Three taps (in (channel, row, column) order) and four output channels per
            # pass: 12 FMAs per 3 input loads and 4 accumulator loads and stores.
            c0_, s0 = _tap(t, kh, kw, sh, sw, dh, dw, plane, wp, r_lo)
            c1_, s1 = _tap(t + 1, kh, kw, sh, sw, dh, dw, plane, wp, r_lo)
            c2_, s2 = _tap(t + 2, kh, kw, sh, sw, dh, dw, plane, wp, r_lo)
            x0 = xt[g * chunk + c0_, s0 : s0 + length]
            x1 = xt[g * chunk + c1_, s1 : s1 + length]
            x2 = xt[g * chunk + c2_, s2 : s2 + length]
            i0, j0 = (t % (kh * kw)) // kw, t % kw
            i1, j1 = ((t + 1) % (kh * kw)) // kw, (t + 1) % kw
            i2, j2 = ((t + 2) % (kh * kw)) // kw, (t + 2) % kw
            a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
            # Past the group's last output channel the last one is repeated; its rows of
            # ``acc`` are not stored.
            o1, o2, o3 = min(o0 + 1, o_end), min(o0 + 2, o_end), min(o0 + 3, o_end)
            ca, cb, cc = c0 + c0_, c0 + c1_, c0 + c2_
            w00, w01, w02 = w[o0, ca, i0, j0], w[o0, cb, i1, j1], w[o0, cc, i2, j2]
            w10, w11, w12 = w[o1, ca, i0, j0], w[o1, cb, i1, j1], w[o1, cc, i2, j2]
            w20, w21, w22 = w[o2, ca, i0, j0], w[o2, cb, i1, j1], w[o2, cc, i2, j2]
            w30, w31, w32 = w[o3, ca, i0, j0], w[o3, cb, i1, j1], w[o3, cc, i2, j2]
            for q in range(length):
                p, u, v = x0[q], x1[q], x2[q]
                a0[q] += w00 * p + w01 * u + w02 * v
                a1[q] += w10 * p + w11 * u + w12 * v
                a2[q] += w20 * p + w21 * u + w22 * v
                a3[q] += w30 * p + w31 * u + w32 * v
        for t in range(full, taps):
            ci, start = _tap(t, kh, kw, sh, sw, dh, dw, plane, wp, r_lo)
            i, j = (t % (kh * kw)) // kw, t % kw
            xs = xt[g * chunk + ci, start : start + length]
            for k in range(nb):
                a = acc[k]
                wv = w[o0 + k, c0 + ci, i, j]
                for q in range(length):
                    a[q] += wv * xs[q]
        for rr in range(nr):
            n, r = divmod(r_lo + rr, prows)
            if r < out_h:
                for k in range(nb):
                    y[n, o0 + k, r, :] = acc[k, rr * wp : rr * wp + out_w]


def grid_shape(
    out_h: int,
    out_w: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """Wide-grid row length ``wp`` and rows per image ``prows`` of each stride phase."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    return out_w + dw * (kw - 1) // sw, out_h + dh * (kh - 1) // sh


def _grid_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    top: int,
    left: int,
    groups: int,
) -> None:
    """Convolve through :func:`_phase_grid` and :func:`_conv_forward_grid`.

    The phase layout is a padded copy of the input; it is built in chunks of images and of
    in-group input channels (later channel chunks add to ``y``) so that it never takes
    more memory than the output or :data:`LAYOUT_FLOOR` does, unless a single image and
    channel needs more.
    """
    (sh, sw), (dh, dw) = stride, dilation
    n_img, _, out_h, out_w = y.shape
    _, cin_g, kh, kw = w.shape
    wp, prows = grid_shape(out_h, out_w, (kh, kw), stride, dilation)
    # Bytes of the phase layout per image and in-group channel (all groups, all phases).
    per_channel = groups * sh * sw * prows * wp * y.itemsize
    budget = max(y.nbytes, LAYOUT_FLOOR)
    chunk = min(cin_g, max(1, budget // (per_channel * n_img)))
    images = min(n_img, max(1, budget // (per_channel * chunk)))
    for n0 in range(0, n_img, images):
        n1 = min(n_img, n0 + images)
        plane = (n1 - n0) * prows * wp + wp + _VECTOR_PAD
        for c0 in range(0, cin_g, chunk):
            size = min(chunk, cin_g - c0)
            xt = scratch("numba.phases", (groups * size, sh * sw * plane), y.dtype)
            launch(_phase_grid, x[n0:n1], xt, sh, sw, top, left, groups, c0, wp, prows, plane)
            launch(
                _conv_forward_grid,
                readonly(xt),
                w,
                b,
                y[n0:n1],
                sh,
                sw,
                dh,
                dw,
                groups,
                c0,
                wp,
                prows,
                plane,
                c0 > 0,
            )


def _rotated_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """``w`` rotated 180 degrees with in/out channels swapped within each group."""
    out_c, cin_g, kh, kw = w.shape
    per_group = w.reshape(groups, out_c // groups, cin_g, kh, kw)
    swapped = per_group.transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(swapped).reshape(groups * cin_g, out_c // groups, kh, kw)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """The forward convolution of ``x`` with ``w`` (plus ``b``) on the wide grid."""
    bias = b if b is not None else np.zeros(spec.out_channels, dtype=spec.dtype)
    if depthwise.applies(spec):
        return depthwise.forward(x, w, bias, spec)
    y = np.empty(spec.y_shape, dtype=spec.dtype)
    top, left = spec.padding[0], spec.padding[2]
    _grid_forward(
        readonly(x),
        readonly(w),
        readonly(bias),
        y,
        spec.stride,
        spec.dilation,
        top,
        left,
        spec.groups,
    )
    return y
