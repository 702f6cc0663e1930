"""Direct convolution on a "wide grid", and its gradients (Numba kernels and their hosts).

No lowered matrix. The forward convolution (and dX at stride 1, which is one) first lays
the zero-padded input out by stride phase on rows just wider than the output, so that every
kernel tap becomes one contiguous, vectorised run; that copy is made in chunks of images
and channels no larger than the output. The strided backward reads the input in place,
clipping each tap's range of columns at the padding. Work is split over output tiles and
channel blocks, so both cores are busy even at batch 1; dX is owned per (image, channel)
and dW per (output channel, input channel), so the backward pass has no races.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec

from . import depthwise, depthwise_grad
from .geometry import column_range_jit, geometry

# OUT_BLOCK and TILE_CELLS shape the work of _conv_forward_grid; the cost model
# (cost.py) imports them to count that kernel's tiles, blocks and passes.
#: Output channels computed together, so each input value loaded is used this many times.
OUT_BLOCK = 4
#: Wide-grid cells per convolution tile: 4 accumulator rows of this many float32 (16 KiB)
#: leave room in a 32 KiB L1 data cache for the input runs they read.
TILE_CELLS = 1024
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
                    for t in range(wp):
                        col = t * sw + off
                        dst[t] = src[col] if 0 <= col < width else 0
                out[base + n_img * prows * wp : base + plane] = 0


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
    and discarded. Three taps of a kernel row and four output channels are fused per pass
    (12 FMAs per 4 stores) for 3-wide kernels, the common case. ``xt`` holds in-group input
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
        for ci in range(chunk):
            src = xt[g * chunk + ci]
            wc = c0 + ci
            for i in range(kh):
                row0 = (i * dh) % sh * sw * plane + (r_lo + (i * dh) // sh) * wp
                if kw == 3 and nb == OUT_BLOCK:
                    s1 = row0 + dw % sw * plane + dw // sw
                    s2 = row0 + (2 * dw) % sw * plane + (2 * dw) // sw
                    x0 = src[row0 : row0 + length]
                    x1 = src[s1 : s1 + length]
                    x2 = src[s2 : s2 + length]
                    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
                    w00, w01, w02 = w[o0, wc, i, 0], w[o0, wc, i, 1], w[o0, wc, i, 2]
                    w10, w11, w12 = w[o0 + 1, wc, i, 0], w[o0 + 1, wc, i, 1], w[o0 + 1, wc, i, 2]
                    w20, w21, w22 = w[o0 + 2, wc, i, 0], w[o0 + 2, wc, i, 1], w[o0 + 2, wc, i, 2]
                    w30, w31, w32 = w[o0 + 3, wc, i, 0], w[o0 + 3, wc, i, 1], w[o0 + 3, wc, i, 2]
                    for q in range(length):
                        p, u, v = x0[q], x1[q], x2[q]
                        a0[q] += w00 * p + w01 * u + w02 * v
                        a1[q] += w10 * p + w11 * u + w12 * v
                        a2[q] += w20 * p + w21 * u + w22 * v
                        a3[q] += w30 * p + w31 * u + w32 * v
                else:
                    for k in range(nb):
                        a = acc[k]
                        for j in range(kw):
                            wv = w[o0 + k, wc, i, j]
                            start = row0 + (j * dw) % sw * plane + (j * dw) // sw
                            xs = src[start : start + length]
                            for q in range(length):
                                a[q] += wv * xs[q]
        for rr in range(nr):
            n, r = divmod(r_lo + rr, prows)
            if r < out_h:
                for k in range(nb):
                    y[n, o0 + k, r, :] = acc[k, rr * wp : rr * wp + out_w]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_grad_x(gy, w, dx, sh, sw, dh, dw, top, left, groups):  # pragma: no cover
    """dX by scattering each output's gradient through its window (any stride).

    Each task owns one (image, input channel) plane, so there are no races.
    """
    n_img, n_in, height, width = dx.shape
    n_out, cin_g, kh, kw = w.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    out_g = n_out // groups
    for task in prange(n_img * n_in):
        n = task // n_in
        c = task % n_in
        g = c // cin_g
        ci = c % cin_g
        plane = dx[n, c]
        plane[:, :] = 0
        for o in range(g * out_g, (g + 1) * out_g):
            for oh in range(out_h):
                grow = gy[n, o, oh]
                for i in range(kh):
                    r = oh * sh + i * dh - top
                    if r < 0 or r >= height:
                        continue
                    for j in range(kw):
                        off = j * dw - left
                        lo, hi = column_range_jit(off, sw, width, out_w)
                        if hi <= lo:
                            continue
                        wv = w[o, ci, i, j]
                        dst = plane[r, lo * sw + off : (hi - 1) * sw + off + 1 : sw]
                        gs = grow[lo:hi]
                        for t in range(hi - lo):
                            dst[t] += wv * gs[t]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_grad_w(gy, x, dwt, sh, sw, dh, dw, top, left, groups):  # pragma: no cover
    """dW as dot products of output-gradient rows with input rows; a task per (o, ci)."""
    n_img, _, height, width = x.shape
    n_out, cin_g, kh, kw = dwt.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    out_g = n_out // groups
    for task in prange(n_out * cin_g):
        o = task // cin_g
        ci = task % cin_g
        c = (o // out_g) * cin_g + ci
        for i in range(kh):
            for j in range(kw):
                off = j * dw - left
                lo, hi = column_range_jit(off, sw, width, out_w)
                total = dwt.dtype.type(0)
                if hi > lo:
                    for n in range(n_img):
                        for oh in range(out_h):
                            r = oh * sh + i * dh - top
                            if r < 0 or r >= height:
                                continue
                            xs = x[n, c, r, lo * sw + off : (hi - 1) * sw + off + 1 : sw]
                            gs = gy[n, o, oh, lo:hi]
                            for t in range(hi - lo):
                                total += gs[t] * xs[t]
                dwt[o, ci, i, j] = total


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_grad_w_unit(gyw, xpw, dwt, wp, dh, dw, groups):  # pragma: no cover
    """Stride-1 dW as long dot products on the wide grid (see :func:`_conv_forward_grid`).

    ``gyw`` is dY laid on rows of width ``wp`` (zeros past OW) and ``xpw`` the padded
    input on the same grid, so tap (i, j) of dW is the dot product of dY's plane with the
    input plane shifted by ``i*dh*wp + j*dw``: one contiguous, vectorised run per image.
    Three taps of a kernel row share each load of dY. A task per (o, ci) owns its dW.
    """
    n_img = gyw.shape[0]
    n_out, cin_g, kh, kw = dwt.shape
    out_g = n_out // groups
    length = gyw.shape[2]
    for task in prange(n_out * cin_g):
        o = task // cin_g
        ci = task % cin_g
        c = (o // out_g) * cin_g + ci
        for i in range(kh):
            base = i * dh * wp
            if kw == 3:
                s0 = s1 = s2 = dwt.dtype.type(0)
                for n in range(n_img):
                    g = gyw[n, o]
                    x0 = xpw[n, c, base : base + length]
                    x1 = xpw[n, c, base + dw : base + dw + length]
                    x2 = xpw[n, c, base + 2 * dw : base + 2 * dw + length]
                    for q in range(length):
                        gv = g[q]
                        s0 += gv * x0[q]
                        s1 += gv * x1[q]
                        s2 += gv * x2[q]
                dwt[o, ci, i, 0] = s0
                dwt[o, ci, i, 1] = s1
                dwt[o, ci, i, 2] = s2
                continue
            for j in range(kw):
                total = dwt.dtype.type(0)
                for n in range(n_img):
                    g = gyw[n, o]
                    xs = xpw[n, c, base + j * dw : base + j * dw + length]
                    for q in range(length):
                        total += g[q] * xs[q]
                dwt[o, ci, i, j] = total


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
    more memory than the output does, unless a single image and channel needs more.
    """
    (sh, sw), (dh, dw) = stride, dilation
    n_img, _, out_h, out_w = y.shape
    _, cin_g, kh, kw = w.shape
    wp, prows = grid_shape(out_h, out_w, (kh, kw), stride, dilation)
    # Bytes of the phase layout per image and in-group channel (all groups, all phases).
    per_channel = groups * sh * sw * prows * wp * y.itemsize
    chunk = min(cin_g, max(1, y.nbytes // (per_channel * n_img)))
    images = min(n_img, max(1, y.nbytes // (per_channel * chunk)))
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


def _wide_grid(
    grad_y: np.ndarray, x: np.ndarray, spec: ConvSpec
) -> tuple[np.ndarray, np.ndarray, int]:
    """dY and the padded input laid on rows of ``wp = OW + dw*(kw-1)`` cells.

    Costs one copy of the input and of dY (in this thread's scratch buffers), in exchange
    for dW's inner loops running over whole planes without bounds checks.
    """
    kw, dw = spec.kernel[1], spec.dilation[1]
    top, _, left, _ = spec.padding
    oh, ow = spec.out_height, spec.out_width
    wp, rows = grid_shape(oh, ow, spec.kernel, (1, 1), spec.dilation)
    gyw = scratch("numba.grad_grid", (spec.batch, spec.out_channels, oh, wp), spec.dtype)
    gyw[:, :, :, :ow] = grad_y
    gyw[:, :, :, ow:] = 0
    # The last taps' runs reach dw*(kw-1) cells past the grid (multiplying dY's zeros).
    tail = dw * (kw - 1)
    xpw = scratch("numba.input_grid", (spec.batch, spec.in_channels, rows * wp + tail), spec.dtype)
    xpw.fill(0)
    grid = xpw[:, :, : rows * wp].reshape(spec.batch, spec.in_channels, rows, wp)
    r0, r1 = max(0, top), min(rows, top + spec.height)
    c0, c1 = max(0, left), min(wp, left + spec.width)
    if r1 > r0 and c1 > c0:
        grid[:, :, r0:r1, c0:c1] = x[:, :, r0 - top : r1 - top, c0 - left : c1 - left]
    return gyw.reshape(spec.batch, spec.out_channels, oh * wp), xpw, wp


def transposed_padding(spec: ConvSpec) -> tuple[int, int, int, int]:
    """Padding of dY that turns dX into a stride-1 correlation (negative: not possible)."""
    top, bottom, left, right = spec.padding
    (kh, kw), (dh, dw) = spec.kernel, spec.dilation
    return (
        dh * (kh - 1) - top,
        dh * (kh - 1) - bottom,
        dw * (kw - 1) - left,
        dw * (kw - 1) - right,
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


def dx_on_grid(spec: ConvSpec) -> bool:
    """Whether dX runs as a forward convolution on the wide grid (else by scattering)."""
    return spec.stride == (1, 1) and min(transposed_padding(spec)) >= 0


def grad_input(grad_y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dX: a forward convolution of dY where :func:`dx_on_grid`, else a scatter."""
    if depthwise.applies(spec):
        return depthwise_grad.grad_input(grad_y, w, spec)
    grad_x = np.empty(spec.x_shape, dtype=spec.dtype)
    gy = readonly(grad_y)
    if dx_on_grid(spec):
        # With stride 1, dX is the "full" correlation of dY with the kernel
        # rotated 180 degrees and its channel axes swapped: a forward conv.
        pads = transposed_padding(spec)
        rotated = _rotated_kernel(w, spec.groups)
        zero_bias = np.zeros(spec.in_channels, dtype=spec.dtype)
        _grid_forward(
            gy,
            readonly(rotated),
            readonly(zero_bias),
            grad_x,
            (1, 1),
            spec.dilation,
            pads[0],
            pads[2],
            spec.groups,
        )
    else:
        launch(_conv_grad_x, gy, readonly(w), grad_x, *geometry(spec), spec.groups)
    return grad_x


def grad_weight(grad_y: np.ndarray, x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dW: long dot products on the wide grid at stride 1, clipped rows otherwise."""
    if depthwise.applies(spec):
        return depthwise_grad.grad_weight(grad_y, x, spec)
    grad_w = np.empty(spec.w_shape, dtype=spec.dtype)
    if spec.stride == (1, 1):
        gyw, xpw, wp = _wide_grid(grad_y, x, spec)
        launch(_conv_grad_w_unit, gyw, xpw, grad_w, wp, *spec.dilation, spec.groups)
    else:
        launch(_conv_grad_w, readonly(grad_y), readonly(x), grad_w, *geometry(spec), spec.groups)
    return grad_w
