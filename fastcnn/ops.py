"""The one vocabulary of operations and pooling modes, used everywhere.

Two kinds of name exist. A *backend op* is a method a backend implements (``conv2d``,
``conv2d_backward``, ``pool2d``, ``pool2d_backward``); pooling's mode travels in its spec.
A *public op* is what a user calls, forward or backward (``conv2d``, ``max_pool2d``,
``mean_pool2d_backward``, ...), and is how the audit and the bench label their rows.
"""

from __future__ import annotations

from typing import Literal

CONV2D = "conv2d"
CONV2D_BACKWARD = "conv2d_backward"
POOL2D = "pool2d"
POOL2D_BACKWARD = "pool2d_backward"
#: The methods a backend may implement, in display order.
BACKEND_OPS: tuple[str, ...] = (CONV2D, CONV2D_BACKWARD, POOL2D, POOL2D_BACKWARD)

PoolMode = Literal["max", "mean", "min"]
POOL_MODES: tuple[str, ...] = ("max", "mean", "min")

BACKWARD_SUFFIX = "_backward"

#: Public forward ops: the convolution, then one pooling op per mode.
FORWARD_OPS: tuple[str, ...] = (CONV2D, *(f"{mode}_{POOL2D}" for mode in POOL_MODES))
#: Every public op, each forward op followed by its backward.
PUBLIC_OPS: tuple[str, ...] = tuple(
    name for op in FORWARD_OPS for name in (op, op + BACKWARD_SUFFIX)
)


def backward_of(op: str) -> str:
    """The backward op's name of a forward op (public or backend)."""
    return op + BACKWARD_SUFFIX


def is_backward(op: str) -> bool:
    """Whether ``op`` (public or backend) names a backward pass."""
    return op.endswith(BACKWARD_SUFFIX)


def forward_of(op: str) -> str:
    """The forward op of ``op`` (itself if it is one)."""
    return op.removesuffix(BACKWARD_SUFFIX)


def pool_mode(op: str) -> str | None:
    """The pooling mode of a public op (``"max"`` for ``max_pool2d_backward``), else None."""
    mode = forward_of(op).removesuffix(f"_{POOL2D}")
    return mode if mode in POOL_MODES else None


def public_op(backend_op: str, mode: str | None = None) -> str:
    """The public op that ``backend_op`` runs in ``mode`` (pool2d + max -> max_pool2d)."""
    if mode is None:
        return backend_op
    return f"{mode}_{backend_op}"


def backend_op(op: str) -> tuple[str, str | None]:
    """The backend op and pooling mode a public op runs as.

    Raises
    ------
    ValueError
        If ``op`` is not one of :data:`PUBLIC_OPS`.
    """
    if op not in PUBLIC_OPS:
        raise ValueError(f"op={op!r} must be one of {', '.join(PUBLIC_OPS)}")
    mode = pool_mode(op)
    if mode is None:
        return op, None
    return op.removeprefix(f"{mode}_"), mode
