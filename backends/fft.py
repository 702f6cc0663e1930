"""Frequency-domain convolution with scipy.fft: wins for large kernels.

The padded input and the (dilated) kernel are transformed with ``rfft2`` at a fast length
(``scipy.fft.next_fast_len``) at least the padded input's size, so the circular products
equal the linear ones over every cell we keep. The sum over input channels becomes, per
frequency, a batched complex GEMM (frequency as the batch axis); ``irfft2`` and a crop
finish the job, and stride subsamples the stride-1 result. The backward pass uses the
same machinery: dX is the full convolution of the zero-stuffed dY with the kernel, dW the
correlation of the input with dY. Kernel transforms are computed once per call.

An FFT spreads one NaN or Inf over the whole output, so this backend declares
``keeps_nonfinite_local = False``: named explicitly on such input it is refused, and
``backend="auto"`` never picks it then. Max/min pooling are not convolutions.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from fastcnn.config import get_num_threads, get_workspace_limit
from fastcnn.registry import BackendBase, ConvGrads, ErrorModel, GradNeed, bias_gradient
from fastcnn.spec import ConvSpec, PoolSpec

# Cost model for backend="auto": seconds = the coefficients below . the features of
# FftBackend.cost_features: an intercept, cells x log2(cells) of the input and output
# transforms and of the kernel transforms, and the per-frequency complex GEMM's real
# FLOPs. Fitted by non-negative least squares on relative error to `fastcnn bench`
# timings (benchmarks/fit_cost_models.py; the runs of fastcnn.backends.numba.cost's note).
# float64 doubles all but the intercept.
_COST = {
    "conv2d": (8.58e-05, 2.31e-10, 7.99e-11, 6.25e-11),
    "conv2d_backward": (0.0, 3.84e-10, 3.72e-10, 7.12e-11),
}

_COMPLEX = {"float32": np.complex64, "float64": np.complex128}


def _dilated(w: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    """The kernel with ``dilation - 1`` zeros between taps."""
    if dilation == (1, 1):
        return w
    (dh, dw), (kh, kw) = dilation, w.shape[2:]
    out = np.zeros((*w.shape[:2], dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=w.dtype)
    out[:, :, ::dh, ::dw] = w
    return out


def _to_freq(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """2-D real FFT over the two leading (spatial) axes, zero-padded to ``shape``.

    Arrays here keep the spatial axes first, so every transform comes out frequency-major
    and each frequency's channel matrix is contiguous for the batched GEMM, with no complex
    transposes (those cost more than the transforms). Columns are transformed first: for a
    kernel that touches only its own few rows, not the padded ones.
    """
    workers = get_num_threads()
    cols = scipy.fft.rfft(a, n=shape[1], axis=1, workers=workers)
    return scipy.fft.fft(cols, n=shape[0], axis=0, workers=workers, overwrite_x=True)


def _to_space(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`_to_freq`: real arrays of ``shape`` on the leading axes."""
    return scipy.fft.irfft2(a, s=shape, axes=(0, 1), workers=get_num_threads())


def _spatial_major(
    x: np.ndarray, padding: tuple[int, int, int, int], shape: tuple[int, int]
) -> np.ndarray:
    """``(N, C, H, W)`` -> ``(Fh, Fw, N, C)``: padded, and zero-filled up to the FFT size."""
    top, _, left, _ = padding
    out = np.zeros((*shape, x.shape[0], x.shape[1]), dtype=x.dtype)
    out[top : top + x.shape[2], left : left + x.shape[3]] = x.transpose(2, 3, 0, 1)
    return out


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stacked matrix product; an outer product (inner size 1: depthwise) by broadcasting."""
    return a * b if a.shape[-1] == 1 else np.matmul(a, b)


class FFTBackend(BackendBase):
    """Convolution as pointwise products in the frequency domain."""

    name = "fft"
    summary = "rfft2 (scipy.fft), per-frequency complex GEMM over channels, irfft2"
    ops = frozenset({"conv2d", "conv2d_backward"})
    keeps_nonfinite_local = False
    # Transforms round every output against the whole plane's norm, not its window's:
    # the audit holds this backend to the FFT's normwise bound per output plane.
    error_model = ErrorModel("fft")
    # The per-frequency channel GEMMs go through OpenBLAS, whose blocking (and so its
    # rounding) changes with its thread count once a GEMM is large (measured: complex
    # (64 x 256) @ (256 x 256) products differ between 1, 2 and 3 threads).
    thread_invariant = False

    # --- sizes and cost ---------------------------------------------------------------------

    @staticmethod
    def _fft_shape(spec: ConvSpec) -> tuple[int, int]:
        hp, wp = spec.padded_shape
        return scipy.fft.next_fast_len(hp, real=True), scipy.fft.next_fast_len(wp, real=True)

    def _bytes_per_image(self, spec: ConvSpec) -> int:
        fh, fw = self._fft_shape(spec)
        cells = fh * (fw // 2 + 1)
        complex_size = np.dtype(_COMPLEX[spec.dtype]).itemsize
        # Transformed input, the GEMM's transposed copies and output, per image.
        return 3 * (spec.in_channels + spec.out_channels) * cells * complex_size

    def workspace_bytes(self, op: str, spec: ConvSpec | PoolSpec) -> int:
        if isinstance(spec, PoolSpec):
            return 0
        return min(spec.batch, self._images_per_chunk(spec)) * self._bytes_per_image(spec)

    def _images_per_chunk(self, spec: ConvSpec) -> int:
        return max(1, get_workspace_limit() // self._bytes_per_image(spec))

    def estimate_seconds(self, op: str, spec: ConvSpec | PoolSpec) -> float:
        """Predicted seconds for ``op`` on ``spec`` (the fitted model above)."""
        if isinstance(spec, PoolSpec):
            return math.inf
        return float(np.dot(_COST[op], self.cost_features(op, spec)))

    def cost_features(self, op: str, spec: ConvSpec) -> tuple[float, ...]:
        """The cost model's features for ``op`` on ``spec`` (see ``_COST``)."""
        fh, fw = self._fft_shape(spec)
        cell_log = fh * fw * math.log2(fh * fw)
        cin_g = spec.in_channels // spec.groups
        scale = np.dtype(spec.dtype).itemsize / 4
        data = spec.batch * (spec.in_channels + spec.out_channels) * cell_log
        kernels = spec.out_channels * cin_g * cell_log
        gemm_flops = 8 * spec.batch * spec.out_channels * cin_g * fh * (fw // 2 + 1)
        return (1.0, scale * data, scale * kernels, scale * gemm_flops)

    # --- convolution ----------------------------------------------------------------------

    @staticmethod
    def _kernel_freq(w: np.ndarray, spec: ConvSpec, shape: tuple[int, int]) -> np.ndarray:
        """Transform of the dilated kernel as ``(Fh, Fw, G, Og, Cg)``."""
        wd = _dilated(w, spec.dilation)
        out_c, cin_g = wd.shape[:2]
        per_group = wd.reshape(spec.groups, out_c // spec.groups, cin_g, *wd.shape[2:])
        return _to_freq(per_group.transpose(3, 4, 0, 1, 2), shape)

    def conv2d(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, spec: ConvSpec
    ) -> np.ndarray:
        shape = self._fft_shape(spec)
        groups, cin_g = spec.groups, spec.in_channels // spec.groups
        out_g = spec.out_channels // groups
        # Correlation is convolution with the kernel rotated 180 degrees, read at an offset
        # of (span - 1); cheaper than conjugating the whole transform. Per group the
        # GEMM is (images x Cg) @ (Cg x Og).
        k_f = self._kernel_freq(w[:, :, ::-1, ::-1], spec, shape).swapaxes(-1, -2)
        off_h = spec.dilation[0] * (spec.kernel[0] - 1)
        off_w = spec.dilation[1] * (spec.kernel[1] - 1)
        y = np.empty(spec.y_shape, dtype=spec.dtype)
        (sh, sw), oh, ow = spec.stride, spec.out_height, spec.out_width
        step = self._images_per_chunk(spec)
        for n0 in range(0, spec.batch, step):
            chunk = x[n0 : n0 + step]
            n = chunk.shape[0]
            x_f = _to_freq(_spatial_major(chunk, spec.padding, shape), shape)  # Fh, Fw, n, C
            x_f = x_f.reshape(*x_f.shape[:2], n, groups, cin_g).swapaxes(2, 3)
            y_f = _product(x_f, k_f)  # Fh, Fw, G, n, Og
            del x_f
            full = _to_space(y_f, shape)
            del y_f
            rows = slice(off_h, off_h + (oh - 1) * sh + 1, sh)
            cropped = full[rows, off_w : off_w + (ow - 1) * sw + 1 : sw]  # OH, OW, G, n, Og
            y[n0 : n0 + n] = cropped.transpose(3, 2, 4, 0, 1).reshape(n, groups * out_g, oh, ow)
        if b is not None:
            y += b[np.newaxis, :, np.newaxis, np.newaxis]
        return y

    def _stuffed(self, grad_y: np.ndarray, spec: ConvSpec) -> np.ndarray:
        """dY as ``(OH', OW', N, O)`` on the stride-1 output grid: zeros between strides."""
        if spec.stride == (1, 1):
            return grad_y.transpose(2, 3, 0, 1)
        hp, wp = spec.padded_shape
        kh = spec.dilation[0] * (spec.kernel[0] - 1) + 1
        kw = spec.dilation[1] * (spec.kernel[1] - 1) + 1
        out = np.zeros((hp - kh + 1, wp - kw + 1, *grad_y.shape[:2]), dtype=grad_y.dtype)
        out[:: spec.stride[0], :: spec.stride[1]] = grad_y.transpose(2, 3, 0, 1)
        return out

    def conv2d_backward(
        self,
        grad_y: np.ndarray,
        x: np.ndarray,
        w: np.ndarray,
        spec: ConvSpec,
        need: GradNeed,
    ) -> ConvGrads:
        shape = self._fft_shape(spec)
        groups = spec.groups
        cin_g, out_g = spec.in_channels // groups, spec.out_channels // groups
        top, _, left, _ = spec.padding
        grad_x = np.empty(spec.x_shape, dtype=spec.dtype) if need.x else None
        k_f = self._kernel_freq(w, spec, shape) if need.x else None  # Fh, Fw, G, Og, Cg
        grad_w_f = None
        step = self._images_per_chunk(spec)
        for n0 in range(0, spec.batch, step):
            n = min(step, spec.batch - n0)
            gy_f = _to_freq(self._stuffed(grad_y[n0 : n0 + n], spec), shape)  # Fh, Fw, n, O
            gy_f = gy_f.reshape(*gy_f.shape[:2], n, groups, out_g).swapaxes(2, 3)  # G, n, Og
            if need.x:
                # The full convolution of dY with the kernel is dL/d(padded x).
                full = _to_space(_product(gy_f, k_f), shape)  # H', W', G, n, Cg
                crop = full[top : top + spec.height, left : left + spec.width]
                grad_x[n0 : n0 + n] = crop.transpose(3, 2, 4, 0, 1).reshape(
                    n, spec.in_channels, spec.height, spec.width
                )
                del full, crop
            if need.w:
                # The correlation of x with dY, contracted over the images of the chunk.
                x_f = _to_freq(_spatial_major(x[n0 : n0 + n], spec.padding, shape), shape)
                x_f = x_f.reshape(*x_f.shape[:2], n, groups, cin_g).swapaxes(2, 3)
                part = _product(np.conj(gy_f).swapaxes(-1, -2), x_f)  # Fh, Fw, G, Og, Cg
                grad_w_f = part if grad_w_f is None else grad_w_f + part
                del x_f, part
        grad_w = None
        if need.w:
            (kh, kw), (dh, dw) = spec.kernel, spec.dilation
            corr = _to_space(grad_w_f, shape)[: dh * (kh - 1) + 1 : dh, : dw * (kw - 1) + 1 : dw]
            grad_w = np.ascontiguousarray(corr.transpose(2, 3, 4, 0, 1)).reshape(spec.w_shape)
        grad_b = bias_gradient(grad_y, spec) if need.b else None
        return ConvGrads(grad_x, grad_w, grad_b)


backend = FFTBackend()
