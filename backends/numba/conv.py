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
from numba import njit, prange, types
from numba.extending import overload

from fastcnn.jit import FASTMATH, launch, readonly
from fastcnn.scratch import scratch
from fastcnn.spec import ConvSpec

from . import depthwise

# OUT_BLOCK, TAPS_PER_PASS and TILE_CELLS shape the work of _conv_forward_grid; the cost model
# (cost.py) imports them to count that kernel's tiles, blocks and passes.
#: Output channels computed together, so each input value loaded is used this many times.
#: _pack_weights spells out four channels: change it with this.
OUT_BLOCK = 4
#: Taps per pass over a tile: 4 taps x 4 channels took 0.84-0.95x the time of 3 x 4 on
#: ResNet-18's 3x3 layers and its stem (Zen 4, AVX-512); 5, 6 or 8 taps, or 8 channels
#: of 4 taps, were no faster overall.
TAPS_PER_PASS = 4
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
                # At unit column stride a row is a contiguous run between the padding:
                # columns lo .. hi of the phase row, the same for every row.
                lo = min(wp, max(0, -off))
                hi = max(lo, min(wp, width - off))
                for s in range(n_img * prows):
                    n = s // prows
                    r = (s % prows) * sh + a - top
                    at = base + s * wp
                    if r < 0 or r >= height:
                        for t in range(wp):
                            out[at + t] = 0
                        continue
                    if sw == 1:
                        for t in range(lo):
                            out[at + t] = 0
                        run, part = out[at + lo : at + hi], x[n, c, r, lo + off : hi + off]
                        for t in range(hi - lo):
                            run[t] = part[t]
                        for t in range(hi, wp):
                            out[at + t] = 0
                        continue
                    src = x[n, c, r]
                    dst = out[at : at + wp]
                    for t in range(wp):
                        col = t * sw + off
                        dst[t] = src[col] if 0 <= col < width else 0
                out[base + n_img * prows * wp : base + plane] = 0


# The kernel's weights come in two forms, and Numba compiles it once for each: an array
# packed ``[group, block, tap, k]`` (:func:`_packed_weights`), or for a dX phase that is one
# tile of the kernel, a map into the convolution's own ``w`` (:func:`_turned_in_place`),
# whose values each task then reads once, unpacked. These three functions are all the
# kernel asks of its weights; the packed form compiles to the code the kernel had when
# it indexed the array itself (its hot loops the same instructions, with registers and
# stack slots named differently).


def _block_count(wsrc):  # pragma: no cover
    """Blocks of OUT_BLOCK output channels per group."""


def _task_weights(wsrc, g, blk):  # pragma: no cover
    """Block ``blk`` of group ``g``: what :func:`_weight` reads."""


def _weight(wb, t, k):  # pragma: no cover
    """Weight of tap ``t`` for output channel ``k`` of a block (the group's last channel
    repeated past its end)."""


@overload(_block_count)
def _block_count_impl(wsrc):  # pragma: no cover
    if isinstance(wsrc, types.Array):
        return lambda wsrc: wsrc.shape[1]
    return lambda wsrc: (wsrc[4] + OUT_BLOCK - 1) // OUT_BLOCK


@overload(_task_weights)
def _task_weights_impl(wsrc, g, blk):  # pragma: no cover
    if isinstance(wsrc, types.Array):
        return lambda wsrc, g, blk: wsrc[g, blk]

    def in_place(wsrc, g, blk):
        w, starts, group_step, channel_step, out_g = wsrc
        o0 = blk * OUT_BLOCK
        last = min(OUT_BLOCK, out_g - o0) - 1
        return w, starts, g * group_step + o0 * channel_step, channel_step, last

    return in_place


@overload(_weight)
def _weight_impl(wb, t, k):  # pragma: no cover
    if isinstance(wb, types.Array):
        return lambda wb, t, k: wb[t, k]

    def in_place(wb, t, k):
        w, starts, offset, channel_step, last = wb
        return w[starts[t] + offset + min(k, last) * channel_step]

    return in_place


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_forward_grid(xf, wpk, offs, b, y, groups, wp, prows, accumulate):  # pragma: no cover
    """Convolution on the "wide grid" of :func:`_phase_grid`: every tap is a flat offset.

    With the input split into stride phases on rows of ``wp = OW + dw*(kw-1)//sw`` cells,
    kernel tap (i, j) of output cell (r, c) reads phase ``(i*dh % sh, j*dw % sw)`` at row
    ``r + i*dh//sh`` and column ``c + j*dw//sw``: the same flat offset for every output cell
    of a tile, so each tap is one long contiguous run that LLVM vectorises. The extra
    ``wp - OW`` columns, and the ``prows - OH`` rows between stacked images, are computed
    and discarded. ``offs[t]`` is tap t's offset in the flattened layout ``xf`` of one
    group (taps in (channel, row, column) order) and ``wpk`` its weights (see
    :func:`_weight`) for each block of four output channels. The
    taps are taken four at a time with four output channels per pass (16 FMAs per 4
    stores), whatever the kernel's width: a one-tap pass is bound by its stores. With
    ``accumulate`` the sums are added to what ``y`` holds instead of to the bias.
    """
    n_out = y.shape[1]
    taps = offs.shape[0]
    group_len = xf.shape[0] // groups
    out_h, out_w = y.shape[2], y.shape[3]
    grid_h = y.shape[0] * prows - (prows - out_h)  # stacked rows, the last image's tail cut
    out_g = n_out // groups
    blocks = _block_count(wpk)
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
        base = g * group_len + r_lo * wp
        wb = _task_weights(wpk, g, blk)
        a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
        full = taps // TAPS_PER_PASS * TAPS_PER_PASS
        for t in range(0, full, TAPS_PER_PASS):
            s0, s1, s2, s3 = (
                base + offs[t],
                base + offs[t + 1],
                base + offs[t + 2],
                base + offs[t + 3],
            )
            x0, x1 = xf[s0 : s0 + length], xf[s1 : s1 + length]
            x2, x3 = xf[s2 : s2 + length], xf[s3 : s3 + length]
            w00, w01 = _weight(wb, t, 0), _weight(wb, t + 1, 0)
            w02, w03 = _weight(wb, t + 2, 0), _weight(wb, t + 3, 0)
            w10, w11 = _weight(wb, t, 1), _weight(wb, t + 1, 1)
            w12, w13 = _weight(wb, t + 2, 1), _weight(wb, t + 3, 1)
            w20, w21 = _weight(wb, t, 2), _weight(wb, t + 1, 2)
            w22, w23 = _weight(wb, t + 2, 2), _weight(wb, t + 3, 2)
            w30, w31 = _weight(wb, t, 3), _weight(wb, t + 1, 3)
            w32, w33 = _weight(wb, t + 2, 3), _weight(wb, t + 3, 3)
            for q in range(length):
                p0, p1, p2, p3 = x0[q], x1[q], x2[q], x3[q]
                a0[q] += w00 * p0 + w01 * p1 + w02 * p2 + w03 * p3
                a1[q] += w10 * p0 + w11 * p1 + w12 * p2 + w13 * p3
                a2[q] += w20 * p0 + w21 * p1 + w22 * p2 + w23 * p3
                a3[q] += w30 * p0 + w31 * p1 + w32 * p2 + w33 * p3
        for t in range(full, taps):
            s0 = base + offs[t]
            xs = xf[s0 : s0 + length]
            for k in range(nb):
                a = acc[k]
                wv = _weight(wb, t, k)
                for q in range(length):
                    a[q] += wv * xs[q]
        for rr in range(nr):
            n, r = divmod(r_lo + rr, prows)
            if r < out_h:
                for k in range(nb):
                    y[n, o0 + k, r, :] = acc[k, rr * wp : rr * wp + out_w]


@njit(parallel=True, cache=True)
def _pack_weights(w, wpk, groups, c0, kh, kw):  # pragma: no cover
    """``wpk[g, block, tap, k]`` of a forward convolution: see :func:`_packed_weights`.

    A block interleaves its channels' runs of ``w`` (taps of channels ``c0 ..`` in
    order, contiguous in ``w``), four flat reads and stores per tap: 0.36-0.37x the time
    of a loop over (channel, row, column, k) on ResNet-18's 512-channel layers.
    """
    out_g = w.shape[0] // groups
    blocks = wpk.shape[1]
    n = wpk.shape[2]  # taps of the chunk's channels, per output channel
    start = c0 * kh * kw
    for gb in prange(groups * blocks):
        g, blk = gb // blocks, gb % blocks
        o0 = g * out_g + blk * OUT_BLOCK
        last = min(OUT_BLOCK, (g + 1) * out_g - o0) - 1
        dst = wpk[g, blk].reshape(-1)
        s0 = w[o0].reshape(-1)[start : start + n]
        s1 = w[o0 + min(1, last)].reshape(-1)[start : start + n]
        s2 = w[o0 + min(2, last)].reshape(-1)[start : start + n]
        s3 = w[o0 + min(3, last)].reshape(-1)[start : start + n]
        for t in range(n):
            dst[4 * t] = s0[t]
            dst[4 * t + 1] = s1[t]
            dst[4 * t + 2] = s2[t]
            dst[4 * t + 3] = s3[t]


@njit(parallel=True, cache=True)
def _pack_turned(w, wpk, groups, c0, kh, kw, i0, mi, j0, mj):  # pragma: no cover
    """``wpk[g, block, tap, k]`` of one stride phase of dX: see :func:`_packed_weights`.

    Apart from the forward's kernel: with one kernel for both (a flag tested per value)
    packing the phases of ResNet-18's 512@14 dX took 1.26-1.35x the time.
    """
    out_g = w.shape[1]
    in_g = w.shape[0] // groups
    blocks, size = wpk.shape[1], wpk.shape[2] // (kh * kw)
    for gb in prange(groups * blocks):
        g, blk = gb // blocks, gb % blocks
        o0 = blk * OUT_BLOCK
        last = min(OUT_BLOCK, out_g - o0) - 1
        dst = wpk[g, blk]
        for ci in range(size):
            src = w[g * in_g + c0 + ci]
            for i in range(kh):
                for j in range(kw):
                    row = dst[(ci * kh + i) * kw + j]
                    for k in range(OUT_BLOCK):
                        row[k] = src[
                            o0 + min(k, last), i0 + (kh - 1 - i) * mi, j0 + (kw - 1 - j) * mj
                        ]


def _packed_weights(
    w: np.ndarray, groups: int, c0: int, size: int, kernel: tuple[int, int], turn: tuple
) -> np.ndarray:
    """In-group input channels ``c0 .. c0+size`` of the kernel as ``[group, block, tap, k]``.

    Output channel ``k`` of a block of OUT_BLOCK; past the group's end the group's last
    channel is repeated (its sums are computed and discarded, never stored). With
    ``turn = (True, i0, mi, j0, mj)`` the kernel is ``w``'s taps ``i0 + a*mi, j0 + b*mj``
    turned 180 degrees with its channel axes swapped (dX of one stride phase).
    """
    out_g = w.shape[1] if turn[0] else w.shape[0] // groups
    blocks = -(-out_g // OUT_BLOCK)
    shape = (groups, blocks, size * kernel[0] * kernel[1], OUT_BLOCK)
    wpk = scratch("numba.packed", shape, w.dtype)
    if turn[0]:
        launch(_pack_turned, w, wpk, groups, c0, *kernel, *turn[1:])
    else:
        launch(_pack_weights, w, wpk, groups, c0, *kernel)
    return readonly(wpk)


def _turned_in_place(
    w: np.ndarray, groups: int, c0: int, size: int, kernel: tuple[int, int], turn: tuple
) -> tuple:
    """What :func:`_packed_weights` packs for a dX phase (``turn``), as a map into ``w``
    itself: ``(w flat, each tap's start, group step, channel step, channels per group)``.

    dX's input channel ``c0 + c`` is ``w``'s output channel (in its group), its output
    channel ``o`` is ``w``'s input channel, and sub-kernel tap (i, j) is ``w``'s tap
    ``(i0 + (kh-1-i)*mi, j0 + (kw-1-j)*mj)`` (turned 180 degrees).
    """
    _, i0, mi, j0, mj = turn
    n_out, out_g, big_h, big_w = w.shape
    kh, kw = kernel
    c, i, j = np.meshgrid(np.arange(size), np.arange(kh), np.arange(kw), indexing="ij")
    tap = (i0 + (kh - 1 - i) * mi) * big_w + j0 + (kw - 1 - j) * mj
    starts = ((c0 + c) * out_g * big_h * big_w + tap).reshape(-1).astype(np.int64)
    group_step = n_out // groups * out_g * big_h * big_w
    return readonly(w.reshape(-1)), readonly(starts), group_step, big_h * big_w, out_g


def _tap_offsets(
    size: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    row_len: int,
    plane: int,
    wp: int,
) -> np.ndarray:
    """Each tap's offset (channel, phase, row, column) in a group's flattened phase layout."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    ci, i, j = np.meshgrid(np.arange(size), np.arange(kh), np.arange(kw), indexing="ij")
    phase = ((i * dh) % sh * sw + (j * dw) % sw) * plane
    offs = ci * row_len + phase + (i * dh) // sh * wp + (j * dw) // sw
    return offs.reshape(-1).astype(np.int64)


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
    turn: tuple = (False, 0, 1, 0, 1),
) -> None:
    """Convolve through :func:`_phase_grid` and :func:`_conv_forward_grid`.

    ``turn``: see :func:`_packed_weights` (then ``w`` is the convolution's kernel whose
    dX phase this computes, the sub-kernel ``ki x kj`` given as ``turn[5:]``).

    The phase layout is a padded copy of the input; it is built in chunks of images and of
    in-group input channels (later channel chunks add to ``y``) so that it never takes
    more memory than the output or :data:`LAYOUT_FLOOR` does, unless a single image and
    channel needs more.
    """
    sh, sw = stride
    n_img, _, out_h, out_w = y.shape
    if turn[0]:
        cin_g, (kh, kw) = w.shape[0] // groups, turn[5:]
    else:
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
            # A dX phase that is one tile of the kernel reads each weight once: packing
            # it would cost more than it saves (dX 0.84x the time on ResNet-18's stride-2
            # 512@14 without). Over several tiles each task rereads its weights, and
            # reading them unpacked was slower (1.05-1.08x on the stem's dX).
            one_tile = ((n1 - n0) * prows - (prows - out_h)) * wp <= TILE_CELLS
            weights = _turned_in_place if turn[0] and one_tile else _packed_weights
            wpk = weights(w, groups, c0, size, (kh, kw), turn[:5])
            offs = _tap_offsets(size, (kh, kw), stride, dilation, xt.shape[1], plane, wp)
            xf = xt.reshape(-1)
            args = (readonly(xf), wpk, readonly(offs), b, y[n0:n1], groups, wp, prows)
            launch(_conv_forward_grid, *args, c0 > 0)


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
