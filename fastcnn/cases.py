"""Audit cases: what to run, in what shapes, and how to write one down.

A case names one public operation (``conv2d``, ``max_pool2d``, ``mean_pool2d``,
``min_pool2d``), the input shape (3-D for an unbatched call), the filter shape for a
convolution, and keyword parameters. Cases come from the built-in sets below, from a
compact string on the command line, from a JSON file, or from Python.

String syntax, one case per string (``key=value`` words after the op)::

    conv2d x=2x3x8x8 w=4x3x3x3 stride=2 padding=1 dilation=1 groups=1 bias=true
    max_pool2d x=1x3x9x9 kernel=3 stride=2 padding=1 dilation=1 ceil_mode=true
    mean_pool2d x=3x9x9 kernel=2,3 count_include_pad=false

Values: ``AxBxC`` shapes, ints, pairs or quads as ``1,2`` / ``1,0,2,1``, ``same`` and
``valid``, and ``true``/``false``. JSON: a list of objects with the same keys, shapes as
lists (``{"op": "conv2d", "x": [2, 3, 8, 8], "w": [4, 3, 3, 3], "padding": 1}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import fastcnn
from fastcnn.gradcheck import tie_free
from fastcnn.ops import (
    CONV2D,
    FORWARD_OPS,
    POOL2D,
    POOL_MODES,
    backward_of,
    pool_mode,
    public_op,
)

_CONV_KEYS = frozenset({"stride", "padding", "dilation", "groups", "bias"})
_POOL_KEYS = {
    "max": frozenset({"kernel", "stride", "padding", "dilation", "ceil_mode"}),
    "min": frozenset({"kernel", "stride", "padding", "dilation", "ceil_mode"}),
    "mean": frozenset({"kernel", "stride", "padding", "ceil_mode", "count_include_pad"}),
}

#: Parameter count up to which a case also gets the full-Jacobian check.
JACOBIAN_MAX_CELLS = 120

#: How a case's random inputs are drawn (see :class:`Case`).
DATA_KINDS = ("normal", "positive", "integer")
#: Exact mode's ranges (benchdnn's way): |x| <= 4, |w| <= 2, so every partial sum of a
#: case here is an integer far below 2**24, exact in float32 whatever the order.
INT_X, INT_W = 4, 2


@dataclass(frozen=True)
class Case:
    """One audit case.

    Attributes
    ----------
    op : str
        ``conv2d`` or one of ``max_pool2d``, ``mean_pool2d``, ``min_pool2d``.
    x : tuple of int
        Input shape, ``(N, C, H, W)`` or unbatched ``(C, H, W)``.
    w : tuple of int, optional
        Filter shape for ``conv2d``.
    params : dict
        Keyword parameters; for pooling ``kernel`` is the kernel size. ``bias`` (conv,
        default True) adds a bias vector.
    name : str
        A label for the report; defaults to the case's string form.
    inputs : dict, optional
        Fixed input arrays (``x``, ``w``, ``b``) instead of seeded random ones.
    expected : numpy.ndarray, optional
        An exact known forward result (the lecture's worked example).
    data : {"normal", "positive", "integer"}
        How random inputs are drawn: standard normal; uniform in [1, 2) (all positive,
        every mantissa bit used: errors that do not cancel, as truncation's, add up);
        small integers (exact mode: every partial sum is exact, max/min windows tie).
    """

    op: str
    x: tuple[int, ...]
    w: tuple[int, ...] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    inputs: dict[str, np.ndarray] | None = field(default=None, compare=False)
    expected: np.ndarray | None = field(default=None, compare=False)
    data: str = "normal"

    def __post_init__(self) -> None:
        if self.data not in DATA_KINDS:
            raise ValueError(f"data={self.data!r} must be one of {DATA_KINDS}")
        if self.op not in FORWARD_OPS:
            raise ValueError(f"op={self.op!r} must be one of {FORWARD_OPS}")
        if self.is_conv and self.w is None:
            raise ValueError("a conv2d case needs a filter shape w")
        allowed = _CONV_KEYS if self.is_conv else _POOL_KEYS[self.mode]
        unknown = set(self.params) - allowed
        if unknown:
            raise ValueError(f"{self.op} case takes {sorted(allowed)}, not {sorted(unknown)}")
        if not self.is_conv and "kernel" not in self.params:
            raise ValueError(f"a {self.op} case needs kernel=")
        if not self.name:
            object.__setattr__(self, "name", self.to_string())

    @property
    def mode(self) -> str | None:
        """Pooling mode, or None for a convolution."""
        return pool_mode(self.op)

    @property
    def is_conv(self) -> bool:
        return self.op == CONV2D

    @property
    def ops(self) -> tuple[str, str]:
        """The public ops the case runs, forward and backward (its report and bench rows)."""
        return self.op, backward_of(self.op)

    @property
    def has_bias(self) -> bool:
        return self.is_conv and bool(self.params.get("bias", True))

    def call_params(self) -> dict[str, Any]:
        """Keyword arguments for the public function (bias and kernel handled apart)."""
        return {k: v for k, v in self.params.items() if k not in ("bias", "kernel")}

    def to_string(self) -> str:
        """The compact string form (see the module docstring)."""
        words = [self.op, "x=" + "x".join(map(str, self.x))]
        if self.w is not None:
            words.append("w=" + "x".join(map(str, self.w)))
        for key, value in self.params.items():
            words.append(f"{key}={_format_value(value)}")
        if self.data != "normal":
            words.append(f"data={self.data}")
        return " ".join(words)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (fixed inputs and expected outputs are not included)."""
        out: dict[str, Any] = {"op": self.op, "x": list(self.x)}
        if self.w is not None:
            out["w"] = list(self.w)
        out.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()})
        if self.data != "normal":
            out["data"] = self.data
        return out


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    return str(value)


def _parse_value(key: str, text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("same", "valid"):
        return lowered
    try:
        numbers = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"{key}={text!r} is not an int, a list like 1,2, a bool or same/valid"
        ) from None
    return numbers[0] if len(numbers) == 1 else numbers


def _parse_shape(key: str, text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{key}={text!r} must be a shape like 2x3x8x8") from None
    return shape


def parse_case(text: str) -> Case:
    """A case from its string form, e.g. ``"conv2d x=1x3x8x8 w=4x3x3x3 stride=2"``.

    Raises
    ------
    ValueError
        Naming the word that could not be read.
    """
    words = text.split()
    if not words:
        raise ValueError("an empty case string")
    op, rest = words[0], words[1:]
    fields: dict[str, Any] = {}
    for word in rest:
        if "=" not in word:
            raise ValueError(f"{word!r} in case {text!r} must look like key=value")
        key, value = word.split("=", 1)
        if key in ("x", "w"):
            fields[key] = _parse_shape(key, value)
        elif key == "data":
            fields["data"] = value
        else:
            fields.setdefault("params", {})[key] = _parse_value(key, value)
    if "x" not in fields:
        raise ValueError(f"case {text!r} needs an input shape x=")
    return Case(op=op, **fields)


def case_from_dict(data: dict[str, Any]) -> Case:
    """A case from a JSON object (see the module docstring)."""
    if not isinstance(data, dict) or "op" not in data or "x" not in data:
        raise ValueError(f"a case must be an object with 'op' and 'x', got {data!r}")
    params = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in data.items()
        if k not in ("op", "x", "w", "name", "data")
    }
    return Case(
        op=data["op"],
        x=tuple(data["x"]),
        w=tuple(data["w"]) if data.get("w") is not None else None,
        params=params,
        name=data.get("name", ""),
        data=data.get("data", "normal"),
    )


def load_cases(path: str | Path) -> list[Case]:
    """Cases from a JSON file holding a list of case objects."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a JSON list of cases")
    return [case_from_dict(item) for item in data]


def as_case(item: Case | str | dict[str, Any]) -> Case:
    """Accept a Case, its string form, or its dict form."""
    if isinstance(item, Case):
        return item
    if isinstance(item, str):
        return parse_case(item)
    return case_from_dict(item)


# --- running a case ---------------------------------------------------------------------------

_POOL_FORWARD: dict[str, Callable[..., np.ndarray]] = {
    "max": fastcnn.max_pool2d,
    "mean": fastcnn.mean_pool2d,
    "min": fastcnn.min_pool2d,
}
_POOL_BACKWARD: dict[str, Callable[..., np.ndarray]] = {
    "max": fastcnn.max_pool2d_backward,
    "mean": fastcnn.mean_pool2d_backward,
    "min": fastcnn.min_pool2d_backward,
}


def draw(kind: str, rng: np.random.Generator, shape: tuple[int, ...], peak: int = INT_X):
    """float64 values of ``shape`` drawn as data ``kind`` says (integers within ``peak``)."""
    if kind == "positive":
        return rng.uniform(1.0, 2.0, shape)
    if kind == "integer":
        return rng.integers(-peak, peak + 1, shape).astype(np.float64)
    return rng.standard_normal(shape)


def make_inputs(case: Case, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """float64 inputs of a case: its fixed ones, or seeded random ones.

    Max/min pooling inputs of normal data are tie-free, so that finite differences are
    valid; integer data ties on purpose.
    """
    if case.inputs is not None:
        return {k: np.asarray(v, dtype=np.float64) for k, v in case.inputs.items()}
    if case.data != "normal":
        arrays = {"x": draw(case.data, rng, case.x)}
        if case.is_conv:
            arrays["w"] = draw(case.data, rng, case.w, INT_W)
            if case.has_bias:
                arrays["b"] = draw(case.data, rng, case.w[:1])
        return arrays
    if case.is_conv:
        arrays = {"x": rng.standard_normal(case.x), "w": rng.standard_normal(case.w)}
        if case.has_bias:
            arrays["b"] = rng.standard_normal(case.w[0])
        return arrays
    # Max/min pooling gradients are only defined away from ties: distinct, spaced values.
    x = tie_free(rng, case.x) if case.mode in ("max", "min") else rng.standard_normal(case.x)
    return {"x": x}


def run_forward(case: Case, arrays: dict[str, np.ndarray], backend: str) -> np.ndarray:
    """The case's forward call through the public API."""
    if case.is_conv:
        return fastcnn.conv2d(
            arrays["x"], arrays["w"], arrays.get("b"), backend=backend, **case.call_params()
        )
    return _POOL_FORWARD[case.mode](
        arrays["x"], case.params["kernel"], backend=backend, **case.call_params()
    )


def run_backward(
    case: Case, grad_y: np.ndarray, arrays: dict[str, np.ndarray], backend: str
) -> list[np.ndarray | None]:
    """The case's backward call through the public API: ``[dx, dw, db]`` or ``[dx]``."""
    if case.is_conv:
        grads = fastcnn.conv2d_backward(
            grad_y,
            arrays["x"],
            arrays["w"],
            bias=case.has_bias,
            backend=backend,
            **case.call_params(),
        )
        return [grads.x, grads.w, grads.b]
    gx = _POOL_BACKWARD[case.mode](
        grad_y, arrays["x"], case.params["kernel"], backend=backend, **case.call_params()
    )
    return [gx]


# --- the built-in sets -----------------------------------------------------------------------

_LECTURE_X = np.array(
    [
        [0, 2, -3, 2, -3],
        [-2, -2, -2, -1, -2],
        [-3, -3, 2, -2, 1],
        [-3, -2, 1, -3, 1],
        [0, -1, 0, 2, -3],
    ],
    dtype=np.float64,
)
_LECTURE_W = np.array([[-1, 0, -2], [1, 1, -1], [-1, -1, 0]], dtype=np.float64)


def _lecture_case(stride: int, expected: list[list[int]]) -> Case:
    return Case(
        op=CONV2D,
        x=(1, 1, 5, 5),
        w=(1, 1, 3, 3),
        params={"stride": stride},
        name=f"lecture worked example, stride {stride}",
        inputs={
            "x": _LECTURE_X[None, None],
            "w": _LECTURE_W[None, None],
            "b": np.array([-1.0]),
        },
        expected=np.array(expected, dtype=np.float64)[None, None],
    )


def _conv(x: str, w: str, **params: Any) -> Case:
    return Case(CONV2D, _parse_shape("x", x), _parse_shape("w", w), params)


def _pools(x: str, modes: tuple[str, ...] = POOL_MODES, **params: Any) -> list[Case]:
    shape = _parse_shape("x", x)
    return [Case(public_op(POOL2D, mode), shape, None, dict(params)) for mode in modes]


def precision_probe() -> Case:
    """All-positive data and few terms per output, where errors that do not cancel show.

    Random-sign data hides a biased error (inputs truncated, not rounded): it cancels like
    rounding error while the bounds grow with K. On positive data it adds up coherently
    to hundreds of u, while correct rounding stays within gamma_K of sum|x||w|.
    """
    return Case(
        CONV2D,
        (2, 2, 12, 12),
        (2, 2, 2, 2),
        {"bias": False},
        name="precision probe",
        data="positive",
    )


def exact_cases() -> list[Case]:
    """Exact mode: integer-valued data, where an exact algorithm equals the reference."""
    cases = [
        _conv("2x3x7x6", "4x3x3x3", padding=1),
        _conv("2x4x9x9", "6x2x3x3", stride=2, groups=2, dilation=(1, 2), padding=1),
        _conv("1x2x8x8", "3x2x2x2", stride=2, bias=False),
        *_pools("2x3x7x7", kernel=3, stride=2, padding=1),
        *_pools("2x2x6x6", kernel=2),
        *_pools("1x2x8x7", ("mean",), kernel=3, stride=2, ceil_mode=True, count_include_pad=False),
    ]
    return [Case(c.op, c.x, c.w, c.params, name=f"exact: {c.name}", data="integer") for c in cases]


def thread_cases() -> list[Case]:
    """Cases run with 1, 2 and 3 threads: big enough for every pool of threads to split."""
    return [
        _conv("4x16x16x16", "32x16x3x3", padding=1),
        *_pools("4x8x16x16", ("max", "mean"), kernel=3, stride=2, padding=1),
    ]


def default_cases() -> list[Case]:
    """The built-in set: every op and every parameter at least once, in small shapes."""
    return [
        _lecture_case(1, [[9, -9, 7], [2, 5, 6], [-7, 9, -10]]),
        _lecture_case(2, [[9, 7], [-7, -10]]),
        _conv("2x3x7x6", "4x3x3x3", padding=1),
        _conv("1x2x8x8", "3x2x2x2", stride=2, bias=False),
        _conv("2x2x7x8", "2x2x3x2", padding=(1, 0, 2, 1), dilation=2),
        _conv("1x3x6x6", "2x3x4x3", padding="same"),
        _conv("2x4x6x6", "6x2x3x3", groups=2, padding="valid"),
        _conv("1x4x7x7", "4x1x3x3", groups=4, padding=1, stride=2),
        _conv("3x6x5", "2x3x3x3", padding=(1, 2)),
        _conv("2x4x5x5", "3x4x1x1"),
        _conv("1x2x16x16", "2x2x9x9", padding=4),
        _conv("3x2x9x9", "2x2x3x3", stride=(2, 1), dilation=(1, 2), bias=False),
        _conv("1x1x4x4", "1x1x2x2"),
        precision_probe(),
        *_pools("2x3x6x6", kernel=2),
        *_pools("1x2x7x7", kernel=3, stride=2, padding=1, ceil_mode=True),
        *_pools("2x2x8x7", kernel=(3, 2), stride=(2, 1), padding=(1, 1)),
        *_pools("1x2x9x9", ("max", "min"), kernel=3, stride=1, dilation=2, padding=1),
        *_pools(
            "1x2x8x7",
            ("mean",),
            kernel=3,
            stride=3,
            padding=1,
            count_include_pad=False,
            ceil_mode=True,
        ),
        *_pools("3x5x5", kernel=2, stride=1),
        *_pools("1x1x4x4", kernel=2, stride=1, padding=1),
    ]


def full_cases() -> list[Case]:
    """The default set plus a sweep over parameter combinations and bigger shapes."""
    cases = default_cases()
    for stride in (1, 2, 3):
        for padding in (0, 1, (2, 0, 1, 3), "same"):
            for dilation in (1, 2):
                for groups in (1, 2):
                    if padding == "same" and stride != 1:
                        continue
                    cases.append(
                        _conv(
                            "2x4x11x10",
                            f"4x{4 // groups}x3x3",
                            stride=stride,
                            padding=padding,
                            dilation=dilation,
                            groups=groups,
                        )
                    )
    cases += [
        _conv("2x8x12x12", "8x1x5x5", groups=8, padding=2),
        _conv("1x3x20x20", "2x3x15x15", padding=7),
        _conv("1x2x33x31", "2x2x31x31", padding=15, stride=2),
        _conv("4x16x9x9", "32x16x3x3", padding=1),
    ]
    for kernel, stride, padding in (
        (2, 2, 0),
        (3, 2, 1),
        (3, 1, 1),
        (4, 3, 2),
        ((2, 3), (1, 2), (1, 1)),
    ):
        for ceil_mode in (False, True):
            cases += _pools(
                "2x3x13x12", kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode
            )
            cases += _pools(
                "2x3x13x12",
                ("mean",),
                kernel=kernel,
                stride=stride,
                padding=padding,
                ceil_mode=ceil_mode,
                count_include_pad=False,
            )
    return cases
