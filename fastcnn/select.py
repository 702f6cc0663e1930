"""What ``backend="auto"`` means: the capable backend expected to be fastest.

Correctness vetoes come first: a backend that cannot run the call, or that cannot keep
NaN/Inf local when the input holds them, is never chosen. Among the rest, each backend's
own ``estimate_seconds(op, spec)`` (its cost model; see each backend's module for the
fitted constants) decides; a backend without one ranks after every backend that has one,
and ties go to the name that sorts first, so the choice is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastcnn.registry import (
    BackendUnsupported,
    available_backends,
    keeps_nonfinite_local,
    unsupported_reason,
)
from fastcnn.spec import ConvSpec, PoolSpec


def estimate(backend: Any, op: str, spec: ConvSpec | PoolSpec) -> float:
    """The backend's predicted seconds for the call, or ``inf`` if it offers none."""
    cost = getattr(backend, "estimate_seconds", None)
    return float(cost(op, spec)) if cost is not None else math.inf


def candidates(
    op: str, spec: ConvSpec | PoolSpec, *, finite: Callable[[], bool]
) -> tuple[list[tuple[Any, float]], dict[str, str]]:
    """Capable backends with their estimates (best first), and why the others were vetoed.

    ``finite`` is called at most once, and only if some capable backend would spread
    non-finite values, so finite inputs to local-only backends cost no extra pass.
    """
    capable: list[tuple[Any, float]] = []
    vetoed: dict[str, str] = {}
    is_finite: bool | None = None
    for backend in available_backends():
        reason = unsupported_reason(backend, op, spec)
        if reason is None and not keeps_nonfinite_local(backend):
            if is_finite is None:
                is_finite = finite()
            if not is_finite:
                reason = "the input holds NaN or Inf and it would spread them"
        if reason is not None:
            vetoed[backend.name] = reason
        else:
            capable.append((backend, estimate(backend, op, spec)))
    capable.sort(key=lambda pair: (pair[1], pair[0].name))
    return capable, vetoed


def choose(op: str, spec: ConvSpec | PoolSpec, *, finite: Callable[[], bool]) -> Any:
    """The backend ``"auto"`` runs for ``op`` on ``spec``."""
    capable, vetoed = candidates(op, spec, finite=finite)
    if not capable:
        why = "; ".join(f"{name}: {reason}" for name, reason in sorted(vetoed.items()))
        raise BackendUnsupported(f"no available backend can run {op} on this input ({why})")
    return capable[0][0]
