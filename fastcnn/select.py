"""What ``backend="auto"`` means: the capable backend expected to be fastest.

Correctness vetoes come first: a backend that cannot run the call, or that cannot keep
NaN/Inf local when the input holds them, is never chosen. Among the rest, each backend's
own ``estimate_seconds(op, spec)`` (its cost model; the fitted constants are documented
in each backend's module) decides; a backend without one ranks after every backend that
has one, and ties go to the name that sorts first, so the choice is deterministic.

Autotune (off by default, like ``torch.backends.cudnn.benchmark``): the first time a call
signature (op and spec) is seen, every capable backend is timed on the call's own arrays
and the fastest is remembered (the model's pick unless another is clearly faster, by
``AUTOTUNE_MARGIN``); later calls with that signature use it. The cache can be
saved to and loaded from a JSON file; a corrupt or foreign file is ignored with a warning.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastcnn import ops, tuning_file
from fastcnn.config import get_workspace_limit
from fastcnn.registry import (
    BackendUnsupported,
    available_backends,
    backend_names,
    generation,
    hook,
    keeps_nonfinite_local,
    unavailable_backends,
    unsupported_reason,
)
from fastcnn.spec import ConvSpec, PoolSpec, make_conv_spec, make_pool_spec
from fastcnn.timing import (
    BLOCK_SECONDS,
    MIN_ROUNDS,
    SETTLE_SECONDS,
    time_interleaved,
    typical_seconds,
)

#: The least time of timed runs per candidate (sub-millisecond calls on a shared machine
#: need many runs before the median means anything), the most rounds, the least time of
#: timed runs in one turn, and the longest pause before each turn; the least rounds are
#: :data:`fastcnn.timing.MIN_ROUNDS`, as for the bench (see :mod:`fastcnn.timing`). A
#: tuning is paid for by the first call of a signature: about a second with three
#: candidates on ResNet-18's layers.
AUTOTUNE_MIN_SECONDS = 0.12
AUTOTUNE_MAX_ROUNDS = 50
AUTOTUNE_BLOCK_SECONDS = BLOCK_SECONDS
AUTOTUNE_SETTLE_SECONDS = SETTLE_SECONDS
#: After ``MIN_ROUNDS`` rounds, candidates over this many times the fastest so far stop
#: being timed, and the rest of the time goes to the close ones. Autotune only needs the
#: winner among close candidates (one more than ``AUTOTUNE_MARGIN`` faster than the
#: model's pick): a candidate 1.5x the fastest after the least rounds will not win, and
#: timing it on would lengthen a tuning the user waits for. The bench keeps columns up to
#: 3x (:data:`fastcnn.bench.run.KEEP_WITHIN`) because it reports every column's ratio.
AUTOTUNE_KEEP_WITHIN = 1.5
#: The cost model's pick stays unless another candidate measured faster by more than this
#: fraction: memory-bound backends have slow phases of several seconds on a shared
#: machine (im2col 43 -> 58 ms while numpy's GEMM held still), longer than a tuning, and
#: a choice made in one is kept for good. The model is fitted on many runs; the median
#: of a few runs in one second is not evidence against it until the gap is clear.
AUTOTUNE_MARGIN = 0.1
#: Candidates whose estimate is over this many times the best estimate are not timed:
#: the reference loops would take minutes on a real layer, and the model is never that far off.
AUTOTUNE_PRUNE_FACTOR = 10.0

Spec = ConvSpec | PoolSpec


def estimate(backend: Any, op: str, spec: Spec) -> float:
    """The backend's predicted seconds for the call, or ``inf`` if it offers none."""
    return float(hook(backend, "estimate_seconds")(op, spec))


SPREADS_NONFINITE = "the input holds NaN or Inf, which it would spread beyond their windows"


def refusal(backend: Any, op: str, spec: Spec, finite: Callable[[], bool]) -> str | None:
    """Why ``backend`` cannot run this call (a missing op or parameter, or NaN/Inf input
    it would spread), or None. ``finite`` is asked only for a backend that spreads them.
    """
    reason = unsupported_reason(backend, op, spec)
    if reason is None and not keeps_nonfinite_local(backend) and not finite():
        return SPREADS_NONFINITE
    return reason


def candidates(
    op: str, spec: Spec, *, finite: Callable[[], bool]
) -> tuple[list[tuple[Any, float]], dict[str, str]]:
    """Capable backends with their estimates (best first), and why the others were vetoed.

    ``finite`` is called at most once, and only if some capable backend would spread
    non-finite values.
    """
    capable: list[tuple[Any, float]] = []
    vetoed: dict[str, str] = {}
    # A pass over the inputs is not free: ask at most once.
    finite_once = functools.cache(finite)
    for backend in available_backends():
        reason = refusal(backend, op, spec, finite_once)
        if reason is not None:
            vetoed[backend.name] = reason
        else:
            capable.append((backend, estimate(backend, op, spec)))
    capable.sort(key=lambda pair: (pair[1], pair[0].name))
    vetoed.update({name: f"unavailable: {why}" for name, why in unavailable_backends().items()})
    return capable, vetoed


@functools.lru_cache(maxsize=4096)
def _ranked(
    op: str, spec: Spec, registry_generation: int, workspace_limit: int
) -> tuple[tuple[tuple[Any, float], ...], tuple[tuple[str, str], ...]]:
    """:func:`candidates` without the NaN veto (:func:`choose` applies it lazily),
    remembered per call signature.

    Ranking costs tens of microseconds, as much as a small pooling call; the backends,
    their estimates and the workspace limit they read are part of the key.
    """
    capable, vetoed = candidates(op, spec, finite=lambda: True)
    return tuple(capable), tuple(vetoed.items())


# --- autotune ----------------------------------------------------------------------------------

_lock = threading.Lock()
_autotune = False
_tuned: dict[tuple[str, Spec], str] = {}
_timings: dict[tuple[str, Spec], dict[str, float]] = {}


_autotune_block: ContextVar[bool | None] = ContextVar("fastcnn_autotune", default=None)


def set_autotune(enabled: bool) -> None:
    """Turn autotuning on or off for the whole process (outside ``autotuning`` blocks)."""
    global _autotune
    _autotune = bool(enabled)


def autotune_enabled() -> bool:
    """Whether ``"auto"`` times backends on first sight of a call signature."""
    block = _autotune_block.get()
    return _autotune if block is None else block


class _Autotuning:
    """The context manager :func:`autotuning` returns.

    A class rather than ``@contextmanager``: wrapped around every call of a 50 us layer,
    the generator's few microseconds showed in the timings.
    """

    def __init__(self, enabled: bool) -> None:
        self._enabled = bool(enabled)
        self._token: Token[bool | None] | None = None

    def __enter__(self) -> None:
        self._token = _autotune_block.set(self._enabled)

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        _autotune_block.reset(self._token)


def autotuning(enabled: bool = True) -> _Autotuning:
    """Autotune (or not) inside a ``with`` block; like ``use_backend``, local to the
    thread or task.
    """
    return _Autotuning(enabled)


def clear_autotune_cache() -> None:
    """Forget every tuned choice."""
    with _lock:
        _tuned.clear()
        _timings.clear()


def autotune_cache() -> dict[tuple[str, Spec], str]:
    """A copy of the tuned choices: ``(op, spec) -> backend name``."""
    with _lock:
        return dict(_tuned)


def _time_all(run: Callable[[Any], Any], backends: list[Any]) -> dict[str, float]:
    """Each backend's typical time on the call, measured in interleaved rounds and
    compared round by round (see :mod:`fastcnn.timing` for why). A backend that raises
    on the real input gets an infinite time, so it is never chosen.
    """
    samples = time_interleaved(
        {backend.name: functools.partial(run, backend) for backend in backends},
        rounds=MIN_ROUNDS,
        seconds=AUTOTUNE_MIN_SECONDS,
        max_rounds=AUTOTUNE_MAX_ROUNDS,
        block_seconds=AUTOTUNE_BLOCK_SECONDS,
        settle_seconds=AUTOTUNE_SETTLE_SECONDS,
        keep_within=AUTOTUNE_KEEP_WITHIN,
    )
    typical = typical_seconds(samples)
    return {name: typical.get(name, math.inf) for name in samples}


def _tune(key: tuple[str, Spec], capable: list[tuple[Any, float]], run: Callable) -> Any:
    with _lock:
        name = _tuned.get(key)
    by_name = {backend.name: backend for backend, _ in capable}
    if name in by_name:
        return by_name[name]
    # Timed outside the lock: other threads keep working; if two threads tune the same
    # signature at once, both measure and the last writer's (equally valid) choice stays.
    best_estimate = capable[0][1]
    timed = [b for b, guess in capable if guess <= AUTOTUNE_PRUNE_FACTOR * best_estimate]
    seconds = _time_all(run, timed)
    winner = min(seconds, key=lambda n: (seconds[n], n))
    favourite = capable[0][0].name  # the cost model's pick
    if seconds[favourite] <= seconds[winner] * (1 + AUTOTUNE_MARGIN):
        winner = favourite
    with _lock:
        _tuned[key] = winner
        _timings[key] = seconds
    return by_name[winner]


def save_autotune_cache(path: str | Path) -> int:
    """Write the tuned choices to a JSON file; returns how many were written."""
    with _lock:
        return tuning_file.write(path, dict(_tuned), dict(_timings))


def load_autotune_cache(path: str | Path) -> int:
    """Load tuned choices saved by :func:`save_autotune_cache`; returns how many.

    A file that cannot be read, is not valid JSON, is not a fastcnn autotune cache, has
    another version, was made on a different machine or NumPy, holds a malformed entry
    or names a backend not registered here is ignored whole, with a ``UserWarning``
    saying why, and 0 is returned: a stale cache must never break a program.
    """
    try:
        loaded = tuning_file.read(path, backend_names())
    except (OSError, ValueError) as exc:
        warnings.warn(f"ignoring autotune cache {path}: {exc}", UserWarning, stacklevel=2)
        return 0
    with _lock:
        _tuned.update(loaded)
    return len(loaded)


# --- the choice --------------------------------------------------------------------------------


def _why(vetoed: dict[str, str]) -> str:
    """Each reason once, after the backends it applies to."""
    by_reason: dict[str, list[str]] = {}
    for name, reason in sorted(vetoed.items()):
        by_reason.setdefault(reason, []).append(name)
    return "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())


def choose(
    op: str,
    spec: Spec,
    *,
    finite: Callable[[], bool],
    run: Callable[[Any], Any] | None = None,
) -> Any:
    """The backend ``"auto"`` runs for ``op`` on ``spec``.

    Parameters
    ----------
    finite : callable
        Says whether the call's inputs are all finite (asked only when it matters).
    run : callable, optional
        Runs the call on a given backend; with autotune on, used to time the candidates.
    """
    ranked, vetoes = _ranked(op, spec, generation(), get_workspace_limit())
    capable = list(ranked)
    tuning = run is not None and len(capable) > 1 and autotune_enabled()
    if tuning:
        tuned = _tuned.get((op, spec))  # a dict read needs no lock; writers hold it
        for i, (backend, _) in enumerate(capable):
            if backend.name == tuned:  # measured before: run the winner, time nothing
                capable.insert(0, capable.pop(i))
                tuning = False
                break
    # The finiteness pass over the inputs costs as much as a small layer, so it runs only
    # when a backend that would spread NaN/Inf is about to be used or timed.
    about_to_run = capable if tuning else capable[:1]
    vetoed = dict(vetoes)
    if any(not keeps_nonfinite_local(b) for b, _ in about_to_run) and not finite():
        vetoed.update(
            {b.name: SPREADS_NONFINITE for b, _ in capable if not keeps_nonfinite_local(b)}
        )
        capable = [(b, s) for b, s in capable if keeps_nonfinite_local(b)]
    if not capable:
        raise BackendUnsupported(
            f"no available backend can run {op} on this input ({_why(vetoed)})"
        )
    if tuning and len(capable) > 1:
        return _tune((op, spec), capable, run)
    return capable[0][0]


# --- explain -------------------------------------------------------------------------------


@dataclass
class Explanation:
    """Why ``"auto"`` picks what it picks for a call.

    ``choice`` is the cost model's pick; ``tuned`` the measured winner when autotune has
    seen this call signature (auto uses it while autotune is on).
    """

    op: str
    spec: Spec
    choice: str
    estimates: dict[str, float] = field(default_factory=dict)
    vetoed: dict[str, str] = field(default_factory=dict)
    tuned: str | None = None

    def __str__(self) -> str:
        lines = [
            f"{self.op} on {self.spec.x_shape} ({self.spec.dtype}): auto picks {self.choice} "
            "(lowest estimated time)"
        ]
        if self.tuned is not None:
            lines.append(f"  with autotune on: {self.tuned}, measured fastest on this shape")
        for name, seconds in sorted(self.estimates.items(), key=lambda kv: kv[1]):
            shown = "no estimate" if math.isinf(seconds) else f"{seconds * 1e3:.3f} ms estimated"
            lines.append(f"  {name}: {shown}")
        for name, reason in sorted(self.vetoed.items()):
            lines.append(f"  {name}: cannot ({reason})")
        return "\n".join(lines)


def _shape(name: str, value: Any) -> tuple[int, ...]:
    """``value`` as a shape: a tuple or list of non-negative ints (an array's ``.shape``),
    or a clear error naming the parameter."""
    if not isinstance(value, tuple | list) or not all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) for n in value
    ):
        got = type(value).__name__ if not isinstance(value, tuple | list) else repr(value)
        raise TypeError(f"{name} must be a tuple of ints (an array's .shape), got {got}")
    if any(n < 0 for n in value):
        raise ValueError(f"{name} must have no negative sizes, got {tuple(value)}")
    return tuple(int(n) for n in value)


def explain(
    op: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...] | None = None,
    *,
    dtype: str = "float32",
    finite: bool = True,
    **params: Any,
) -> Explanation:
    """Which backend ``"auto"`` picks for a call with these shapes, and why.

    Parameters
    ----------
    op : str
        A public function's name: ``conv2d``, ``conv2d_backward``, ``max_pool2d``,
        ``mean_pool2d_backward``, ...
    x_shape, w_shape : tuple of int
        Input shape (4-D, or 3-D unbatched) and, for convolutions, the filter shape.
    dtype : {"float32", "float64"}
        Compute dtype.
    finite : bool
        Whether the input is all finite (False vetoes backends that spread NaN/Inf).
    **params
        The call's keyword parameters (stride, padding, ..., kernel_size for pooling).

    Returns
    -------
    Explanation
        ``str()`` of it is a readable account: the choice, every candidate's estimate,
        and why the others cannot run the call.

    Raises
    ------
    TypeError
        If a shape is not a tuple (or list) of ints, such as an array in its place.
    ValueError
        If a shape has a negative size, ``op`` is unknown, or the call's parameters are
        invalid (as the call itself would say).
    """
    backend_op, mode = ops.backend_op(op)
    np_dtype = np.dtype(dtype)
    x_shape = _shape("x_shape", x_shape)
    x = np.broadcast_to(np.zeros((), np_dtype), x_shape)  # shape only, no memory
    if x.ndim == 3:
        x = x[np.newaxis]
    if mode is None:
        if w_shape is None:
            raise ValueError(f"{op} needs w_shape")
        w = np.broadcast_to(np.zeros((), np_dtype), _shape("w_shape", w_shape))
        bias = bool(params.pop("bias", True))
        spec: Spec = make_conv_spec(x, w, bias=bias, dtype=np_dtype, **params)
    else:
        kernel = params.pop("kernel_size")
        spec = make_pool_spec(x, mode, kernel, dtype=np_dtype, **params)
    capable, vetoed = candidates(backend_op, spec, finite=lambda: finite)
    if not capable:
        raise BackendUnsupported(f"no available backend can run {op} here ({_why(vetoed)})")
    with _lock:
        tuned = _tuned.get((backend_op, spec))
    names = [b.name for b, _ in capable]
    return Explanation(
        op,
        spec,
        capable[0][0].name,
        {b.name: s for b, s in capable},
        vetoed,
        tuned if tuned in names else None,
    )
