"""Parameter normalisation, output-size rules and validation.

Every public call is turned into a frozen, hashable spec before any backend runs. The spec
holds each parameter in one canonical form (pairs for stride and dilation, four sides for
padding), the input and output shapes, the compute dtype and the FLOP count, so backends
never re-parse user arguments. All user-facing validation lives here: every error names
the parameter, the value and the rule, in the style "groups=3 must divide in_channels=64".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastcnn.ops import POOL_MODES

Pair = tuple[int, int]
Quad = tuple[int, int, int, int]


@dataclass(frozen=True)
class ConvSpec:
    """A fully normalised 2-D convolution (cross-correlation, NCHW).

    Attributes
    ----------
    batch, in_channels, height, width : int
        Input shape ``(N, C_in, H, W)``.
    out_channels, kernel : int, (int, int)
        Weight shape ``(C_out, C_in // groups, kh, kw)``.
    stride, dilation : (int, int)
        Per axis ``(rows, cols)``.
    padding : (int, int, int, int)
        ``(top, bottom, left, right)`` zeros added to the input.
    groups : int
        Channel groups; ``groups == in_channels`` is depthwise.
    out_height, out_width : int
        Output spatial size (PyTorch's rule).
    dtype : str
        Compute dtype, ``"float32"`` or ``"float64"``.
    bias : bool
        Whether a bias is added (forward) or its gradient wanted (backward).
    """

    batch: int
    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel: Pair
    stride: Pair
    padding: Quad
    dilation: Pair
    groups: int
    out_height: int
    out_width: int
    dtype: str
    bias: bool

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.out_channels, self.out_height, self.out_width)

    @property
    def flops(self) -> int:
        """Multiply-adds counted as two FLOPs, bias excluded (the usual convention)."""
        kh, kw = self.kernel
        per_output = 2 * (self.in_channels // self.groups) * kh * kw
        return per_output * self.batch * self.out_channels * self.out_height * self.out_width

    @property
    def padded_shape(self) -> Pair:
        top, bottom, left, right = self.padding
        return (self.height + top + bottom, self.width + left + right)


@dataclass(frozen=True)
class PoolSpec:
    """A fully normalised 2-D pooling (NCHW).

    Attributes
    ----------
    mode : {"max", "mean", "min"}
        Reduction over each window.
    batch, channels, height, width : int
        Input shape; the output keeps the channel count.
    kernel, stride, dilation : (int, int)
        Window size, step and spacing per axis.
    padding : (int, int, int, int)
        ``(top, bottom, left, right)``; pooling padding is symmetric, so
        ``top == bottom`` and ``left == right``. Padded cells hold -inf (max),
        +inf (min) or zeros (mean, counted in the divisor iff ``count_include_pad``).
    ceil_mode : bool
        Round the output size up, as PyTorch does (a last window must start inside
        the input or its left padding).
    count_include_pad : bool
        Mean only: divide by the window size clipped to the padded input, else by the
        number of real input cells in the window.
    out_height, out_width : int
        Output spatial size.
    dtype : str
        Compute dtype, ``"float32"`` or ``"float64"``.
    """

    mode: str
    batch: int
    channels: int
    height: int
    width: int
    kernel: Pair
    stride: Pair
    padding: Quad
    dilation: Pair
    ceil_mode: bool
    count_include_pad: bool
    out_height: int
    out_width: int
    dtype: str

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.channels, self.height, self.width)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.channels, self.out_height, self.out_width)

    @property
    def pad_value(self) -> float:
        """What a padded cell holds: -inf (max), +inf (min) or 0 (mean)."""
        return {"max": -np.inf, "min": np.inf, "mean": 0.0}[self.mode]

    @property
    def flops(self) -> int:
        """One comparison or addition per window element."""
        kh, kw = self.kernel
        return self.batch * self.channels * self.out_height * self.out_width * kh * kw


# --- dtype policy -------------------------------------------------------------------------


def result_dtype(name: str, *arrays: np.ndarray) -> np.dtype:
    """The compute dtype: ``np.result_type(*arrays, float32)``, float32 or float64.

    Integers and bools promote to float64, float16 to float32, as DESIGN.md §2 says.
    Complex and non-numeric dtypes are refused with a TypeError naming ``name``.
    """
    for array in arrays:
        kind = array.dtype.kind
        if kind == "c":
            raise TypeError(
                f"{name} has complex dtype {array.dtype}; only real inputs are supported"
            )
        if kind not in "biuf":
            raise TypeError(f"{name} has dtype {array.dtype}; expected a real numeric array")
    dtype = np.result_type(*arrays, np.float32)
    if dtype not in (np.float32, np.float64):
        # longdouble and friends: compute in float64 rather than pretending to more precision.
        dtype = np.dtype(np.float64)
    return np.dtype(dtype)


#: The compute dtypes' names: ``np.dtype.name`` is computed in Python on each access (1.5 us,
#: a tenth of the front end's time on a call).
_DTYPE_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def _dtype_name(dtype: np.dtype) -> str:
    name = _DTYPE_NAMES.get(dtype)
    return name if name is not None else np.dtype(dtype).name


# --- argument normalisation -----------------------------------------------------------------


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r} must be an int")
    return int(value)


def as_pair(name: str, value: object, *, minimum: int) -> Pair:
    """Normalise an int or a pair of ints, each at least ``minimum``."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name}={value!r} must be an int or a pair of ints")
        pair = (_int(name, value[0]), _int(name, value[1]))
    else:
        n = _int(name, value)
        pair = (n, n)
    if min(pair) < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")
    return pair


def conv_padding(value: object, kernel: Pair, dilation: Pair, stride: Pair) -> Quad:
    """Normalise conv padding to ``(top, bottom, left, right)``.

    Accepts an int, a pair ``(rows, cols)``, a quad ``(top, bottom, left, right)``,
    ``"valid"`` (no padding) or ``"same"`` (output size equals input size; stride 1 only,
    the odd extra cell going to the bottom/right as in PyTorch).
    """
    if isinstance(value, str):
        if value == "valid":
            return (0, 0, 0, 0)
        if value == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' requires stride=1, got stride={stride}")
            sides = []
            for k, d in zip(kernel, dilation, strict=True):
                total = d * (k - 1)
                sides += [total // 2, total - total // 2]
            return (sides[0], sides[1], sides[2], sides[3])
        raise ValueError(f"padding={value!r} must be 'valid', 'same', an int, a pair or a quad")
    if isinstance(value, tuple | list) and len(value) == 4:
        quad = tuple(_int("padding", v) for v in value)
        if min(quad) < 0:
            raise ValueError(f"padding={value!r} must be >= 0")
        return quad  # type: ignore[return-value]
    rows, cols = as_pair("padding", value, minimum=0)
    return (rows, rows, cols, cols)


def conv_output_size(size: int, pad: int, kernel: int, stride: int, dilation: int) -> int:
    """PyTorch's rule: ``floor((size + pad - dilation*(kernel-1) - 1) / stride) + 1``.

    ``pad`` is the total padding on that axis (both sides).
    """
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(
    size: int, pad: int, kernel: int, stride: int, dilation: int, ceil_mode: bool
) -> int:
    """PyTorch's pooling rule, ``pad`` being one side's padding.

    With ``ceil_mode`` the size is rounded up, but the last window must start inside the
    input or its left padding, else it is dropped.
    """
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _shape4(name: str, array: np.ndarray) -> tuple[int, int, int, int]:
    if array.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got {array.ndim}-D shape {array.shape}")
    if min(array.shape[2:]) < 1:
        raise ValueError(
            f"{name} has spatial size {array.shape[2:]}; height and width must be >= 1 "
            "(only the batch may be empty, as in PyTorch)"
        )
    return array.shape  # type: ignore[return-value]


# --- spec construction -------------------------------------------------------------------


def make_conv_spec(
    x: np.ndarray,
    w: np.ndarray,
    *,
    bias: bool,
    stride: object = 1,
    padding: object = 0,
    dilation: object = 1,
    groups: object = 1,
    dtype: np.dtype,
) -> ConvSpec:
    """Validate a convolution's arrays and parameters and return its spec.

    ``x`` is 4-D (the front end has already added a batch axis to unbatched input).

    Raises
    ------
    ValueError
        Naming the parameter, its value and the rule broken.
    TypeError
        For a non-integer parameter.
    """
    n, c_in, h, wd = _shape4("x", x)
    if w.ndim != 4:
        raise ValueError(
            "w must be 4-D (out_channels, in_channels/groups, kh, kw), "
            f"got {w.ndim}-D shape {w.shape}"
        )
    c_out, c_per_group, kh, kw = w.shape
    groups_ = _int("groups", groups)
    if groups_ < 1:
        raise ValueError(f"groups={groups_} must be >= 1")
    if c_in < 1:
        raise ValueError(f"x has in_channels={c_in}; it must be >= 1")
    if c_out < 1:
        raise ValueError(f"w has out_channels={c_out}; it must be >= 1")
    if min(kh, kw) < 1:
        raise ValueError(f"w has kernel size {(kh, kw)}; both sides must be >= 1")
    if c_in % groups_:
        raise ValueError(f"groups={groups_} must divide in_channels={c_in}")
    if c_out % groups_:
        raise ValueError(f"groups={groups_} must divide out_channels={c_out}")
    if c_per_group * groups_ != c_in:
        raise ValueError(
            f"in_channels={c_in} of x must equal w.shape[1]={c_per_group} x groups={groups_}"
        )
    stride_ = as_pair("stride", stride, minimum=1)
    dilation_ = as_pair("dilation", dilation, minimum=1)
    padding_ = conv_padding(padding, (kh, kw), dilation_, stride_)
    top, bottom, left, right = padding_
    oh = conv_output_size(h, top + bottom, kh, stride_[0], dilation_[0])
    ow = conv_output_size(wd, left + right, kw, stride_[1], dilation_[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"kernel {(kh, kw)} with dilation={dilation_} spans "
            f"{(dilation_[0] * (kh - 1) + 1, dilation_[1] * (kw - 1) + 1)}, larger than the padded "
            f"input {(h + top + bottom, wd + left + right)}: the output would be empty"
        )
    return ConvSpec(
        batch=n,
        in_channels=c_in,
        height=h,
        width=wd,
        out_channels=c_out,
        kernel=(kh, kw),
        stride=stride_,
        padding=padding_,
        dilation=dilation_,
        groups=groups_,
        out_height=oh,
        out_width=ow,
        dtype=_dtype_name(dtype),
        bias=bias,
    )


def make_pool_spec(
    x: np.ndarray,
    mode: str,
    kernel_size: object,
    *,
    stride: object = None,
    padding: object = 0,
    dilation: object = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    dtype: np.dtype,
) -> PoolSpec:
    """Validate a pooling's input and parameters and return its spec.

    ``stride=None`` means the kernel size, as in PyTorch. Padding is an int or a pair and
    may be at most half the kernel on each axis.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode={mode!r} must be one of {POOL_MODES}")
    n, c, h, wd = _shape4("x", x)
    if c < 1:
        raise ValueError(f"x has channels={c}; it must be >= 1")
    kernel = as_pair("kernel_size", kernel_size, minimum=1)
    stride_ = kernel if stride is None else as_pair("stride", stride, minimum=1)
    dilation_ = as_pair("dilation", dilation, minimum=1)
    pad = as_pair("padding", padding, minimum=0)
    for axis, p, k in zip(("rows", "cols"), pad, kernel, strict=True):
        if p > k // 2:
            raise ValueError(
                f"padding={padding!r} must be at most half the kernel_size={kernel_size!r} "
                f"(on {axis}: {p} > {k} // 2)"
            )
    for flag_name, flag in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"{flag_name}={flag!r} must be a bool")
    oh = pool_output_size(h, pad[0], kernel[0], stride_[0], dilation_[0], bool(ceil_mode))
    ow = pool_output_size(wd, pad[1], kernel[1], stride_[1], dilation_[1], bool(ceil_mode))
    if oh < 1 or ow < 1:
        raise ValueError(
            f"kernel_size={kernel} with dilation={dilation_} is larger than the padded input "
            f"{(h + 2 * pad[0], wd + 2 * pad[1])}: the output would be empty"
        )
    return PoolSpec(
        mode=mode,
        batch=n,
        channels=c,
        height=h,
        width=wd,
        kernel=kernel,
        stride=stride_,
        padding=(pad[0], pad[0], pad[1], pad[1]),
        dilation=dilation_,
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
        out_height=oh,
        out_width=ow,
        dtype=_dtype_name(dtype),
    )


def check_grad_shape(grad_y: np.ndarray, expected: tuple[int, ...]) -> None:
    """Refuse a ``grad_y`` whose shape is not the forward output's."""
    if tuple(grad_y.shape) != tuple(expected):
        raise ValueError(
            f"grad_y has shape {tuple(grad_y.shape)}; it must match the forward output "
            f"shape {tuple(expected)}"
        )


def check_bias(b: np.ndarray, out_channels: int) -> None:
    """Refuse a bias that is not a vector of length ``out_channels``."""
    if b.ndim != 1 or b.shape[0] != out_channels:
        raise ValueError(
            f"b has shape {b.shape}; it must be a vector of length out_channels={out_channels}"
        )


__all__ = [
    "ConvSpec",
    "PoolSpec",
    "as_pair",
    "check_bias",
    "check_grad_shape",
    "conv_output_size",
    "conv_padding",
    "make_conv_spec",
    "make_pool_spec",
    "pool_output_size",
    "result_dtype",
]
