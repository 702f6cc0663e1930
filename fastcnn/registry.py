"""The backend protocol, plugin discovery, registration and selection.

Backends are found through the entry-point group ``fastcnn.backends`` (built-in ones
included) and imported lazily, on first use: ``import fastcnn`` imports no backend. A
backend whose import fails is listed as unavailable with the reason instead of breaking
anything else. Programs can also add a backend object with :func:`register_backend`.

Which backend a call uses is resolved in this order: the ``backend=`` argument of the
call, the innermost :func:`use_backend` block (a context variable, so threads and asyncio
tasks never see each other's choice), :func:`set_default_backend`, then ``"auto"``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from fastcnn.ops import BACKEND_OPS

if TYPE_CHECKING:
    import numpy as np

    from fastcnn.spec import ConvSpec, PoolSpec

ENTRY_POINT_GROUP = "fastcnn.backends"
AUTO = "auto"


class BackendUnsupported(RuntimeError):
    """A backend chosen by name cannot do the call (missing op, parameter, or unavailable)."""


class GradNeed(NamedTuple):
    """Which convolution gradients the caller wants."""

    x: bool
    w: bool
    b: bool


class ConvGrads(NamedTuple):
    """Gradients of a convolution's loss; a field is ``None`` when it was not requested."""

    x: np.ndarray | None
    w: np.ndarray | None
    b: np.ndarray | None


ERROR_MODELS = ("direct", "fft", "winograd")


@dataclass(frozen=True)
class ErrorModel:
    """Which rounding-error bound a backend's arithmetic follows: data the audit reads.

    A backend declares it as its ``error_model`` attribute; the audit
    (:mod:`fastcnn.crosscheck.bounds`) turns it into a bound per result and reports each
    error as a share of it. Declaring a model never imports the audit.

    Attributes
    ----------
    kind : {"direct", "fft", "winograd"}
        ``"direct"``: sums of products in some order (loops, GEMM), bounded elementwise
        by ``gamma_K * sum|x||w|``. ``"fft"``: convolution through discrete Fourier
        transforms, bounded normwise per output plane, growing with log2 of the
        transform length. ``"winograd"``: minimal filtering F(m x m, r x r), the direct
        bound times a growth factor from the transform matrices.
    tile : int, optional
        Winograd: the output tile ``m`` (2 for F(2,3), 4 for F(4,3)).
    kernel : int
        Winograd: the filter size ``r`` the transforms are built for.
    transforms : tuple, optional
        Winograd: the matrices ``(A^T, G, B^T)`` as nested tuples of floats. Without them
        the standard (Lavin and Gray 2016) matrices of ``tile`` 2 or 4 are assumed.
    growth : float, optional
        Winograd: the growth factor itself, overriding the one computed from the matrices.
    """

    kind: str = "direct"
    tile: int | None = None
    kernel: int = 3
    transforms: tuple[Any, Any, Any] | None = None
    growth: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ERROR_MODELS:
            raise ValueError(f"ErrorModel kind={self.kind!r} must be one of {ERROR_MODELS}")
        if self.kind == "winograd" and self.tile is None and self.growth is None:
            raise ValueError("a winograd ErrorModel needs its tile= (or growth=)")


@runtime_checkable
class Backend(Protocol):
    """What every backend must provide; :class:`BackendBase` lists the optional hooks.

    Every array a backend receives is validated, of the spec's dtype, C-contiguous and
    read-only; the spec holds every parameter normalised. A backend only computes: it
    neither validates nor prints, and returns arrays of ``spec.dtype``. Each op it lists
    in ``ops`` is a method of the same name:

    - ``conv2d(x, w, b, spec) -> y`` (``b`` is None without bias),
    - ``conv2d_backward(grad_y, x, w, spec, need) -> ConvGrads``,
    - ``pool2d(x, spec) -> y`` (the mode is ``spec.mode``),
    - ``pool2d_backward(grad_y, x, spec) -> grad_x``.

    Attributes
    ----------
    name : str
        The registry name, equal to the entry point's name.
    summary : str
        One line saying what the algorithm is.
    ops : frozenset of str
        Subset of :data:`fastcnn.ops.BACKEND_OPS` that the backend implements.
    """

    name: str
    summary: str
    ops: frozenset[str]


class BackendBase:
    """The optional hooks of a backend, each with the default used when one is missing.

    Subclassing is a convenience: the core reads every hook through :func:`hook`, which
    falls back to these defaults for any object, so a plain class that defines only
    ``name``, ``summary``, ``ops`` and its op methods is a complete backend too.
    """

    name: str = ""
    summary: str = ""
    ops: frozenset[str] = frozenset()
    #: False when one NaN/Inf in the input can spoil outputs whose windows do not hold it
    #: (a transform spreads it). Such a backend is refused on non-finite input when chosen
    #: by name, and ``"auto"`` avoids it there.
    keeps_nonfinite_local: bool = True
    #: The rounding-error bound the arithmetic follows (see :class:`ErrorModel`): direct
    #: summation unless declared, ``ErrorModel("fft")`` for frequency-domain convolution,
    #: ``ErrorModel("winograd", tile=m)`` for minimal filtering.
    error_model: ErrorModel = ErrorModel()
    #: True when the algorithm only adds and multiplies input values (no transforms), so
    #: integer-valued data whose partial sums stay below 2**24 give results equal to the
    #: reference bit for bit: the audit's exact mode then checks it so.
    exact: bool = False
    #: True when results do not depend on the number of threads (fastcnn's, Numba's or
    #: BLAS's): the audit checks 1, 2 and 3 threads give the same bits. A backend whose
    #: reductions split with the thread count declares False, and the report says so.
    thread_invariant: bool = True
    #: Deprecated: a plain multiplier on the declared model's bound. Declare an
    #: ``error_model`` instead; a factor above 1 still widens the bound, and the report
    #: shows the widened bound.
    error_factor: float = 1.0

    def supports(self, op: str, spec: ConvSpec | PoolSpec) -> str | None:
        """None if the backend can run ``op`` on ``spec``, else the reason it cannot."""
        return None

    def estimate_seconds(self, op: str, spec: ConvSpec | PoolSpec) -> float:
        """Predicted seconds for ``op`` on ``spec`` (the backend's cost model).

        ``"auto"`` runs the capable backend with the lowest estimate; without a model
        (``inf``) a backend ranks after every backend that has one.
        """
        return math.inf

    def cost_features(self, op: str, spec: ConvSpec | PoolSpec) -> tuple[float, ...]:
        """The features a linear cost model dots with its coefficients.

        ``benchmarks/fit_cost_models.py`` refits a backend's coefficients from bench runs
        through this hook; a backend without a linear model returns ``()``.
        """
        return ()

    def workspace_bytes(self, op: str, spec: ConvSpec | PoolSpec) -> int:
        """Scratch memory the call needs beyond its inputs and outputs, in bytes."""
        return 0

    def __repr__(self) -> str:
        return f"<fastcnn backend {self.name!r}>"


_DEFAULTS = BackendBase()


def hook(backend: Any, attr: str) -> Any:
    """The backend's optional hook ``attr``, or :class:`BackendBase`'s default for it."""
    return getattr(backend, attr, getattr(_DEFAULTS, attr))


def bias_gradient(grad_y: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dL/db of a convolution: ``grad_y`` summed over images and positions, per channel.

    The one shared implementation backends call (the naive reference derives its own, so
    that it still checks this one).
    """
    import numpy as np

    # einsum sums with vector partial sums, at memory speed: 3-4x faster than ndarray.sum
    # (pairwise, 0.2 ms of a 0.7 ms depthwise backward on 6.4 MB), and well within the
    # audit's bound for a sum of N*OH*OW terms in any order.
    return np.einsum("nchw->c", grad_y, dtype=spec.dtype)


@dataclass(frozen=True)
class BackendInfo:
    """One row of :func:`list_backends`."""

    name: str
    summary: str
    ops: tuple[str, ...]
    available: bool
    reason: str | None
    origin: str


class _Entry:
    """A registry slot: how to load a backend, and the outcome once loaded."""

    def __init__(self, name: str, origin: str, load: Callable[[], Any]) -> None:
        self.name = name
        self.origin = origin
        self._load = load
        self.backend: Any = None
        self.error: str | None = None
        self.loaded = False

    def resolve(self) -> Any:
        if not self.loaded:
            try:
                obj = self._load()
                if isinstance(obj, type):
                    obj = obj()  # an entry point may name the class rather than an instance
                _check_backend_object(obj, self.name)
                self.backend = obj
            except Exception as exc:  # any import problem makes it unavailable, not fatal
                self.error = _load_error(exc)
            self.loaded = True
        return self.backend


def _load_error(exc: Exception) -> str:
    """Why a backend failed to load, with what to do when the cause is a known trap."""
    text = f"{type(exc).__name__}: {exc}"
    package_dir = Path(__file__).resolve().parent
    builtin = f"{__package__}.backends"
    if isinstance(exc, ModuleNotFoundError) and exc.name == builtin:
        # `backends/` is installed as fastcnn.backends; the source folder has no such
        # subpackage, so a clone's root on sys.path (the current directory) shadows an
        # installed fastcnn and loses the built-in backends.
        text += (
            f" (fastcnn was imported from {package_dir}, a source folder without the"
            " built-in backends: run from outside the clone, or install it in editable"
            " mode with `pip install -e .`)"
        )
    return text


def _check_backend_object(obj: Any, expected_name: str | None) -> None:
    missing = [a for a in ("name", "summary", "ops") if not hasattr(obj, a)]
    if missing:
        raise TypeError(f"{obj!r} is not a fastcnn backend: it lacks {', '.join(missing)}")
    unknown = set(obj.ops) - set(BACKEND_OPS)
    if unknown:
        raise ValueError(
            f"backend {obj.name!r} lists unknown ops {sorted(unknown)}; ops are {BACKEND_OPS}"
        )
    for op in obj.ops:
        if not callable(getattr(obj, op, None)):
            raise TypeError(f"backend {obj.name!r} lists op {op!r} but has no method {op}()")
    if expected_name is not None and obj.name != expected_name:
        raise ValueError(
            f"entry point {expected_name!r} loads a backend named {obj.name!r}; names must match"
        )


_lock = threading.RLock()
_entries: dict[str, _Entry] = {}
_discovered = False
_generation = 0  # bumped whenever the set of backends may change


def generation() -> int:
    """A number that changes whenever backends are registered, removed or rediscovered."""
    return _generation


def _ensure_discovered() -> None:
    global _discovered
    with _lock:
        if _discovered:
            return
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name not in _entries:
                _entries[ep.name] = _Entry(ep.name, f"entry point {ep.value}", ep.load)
        _discovered = True
        _bump()


def register_backend(backend: Any, *, replace: bool = False) -> None:
    """Add a backend object to the registry (a programmatic plugin).

    Parameters
    ----------
    backend : Backend
        An object following the :class:`Backend` protocol.
    replace : bool
        Allow replacing a backend already registered under the same name.

    Raises
    ------
    TypeError
        If ``backend`` lacks the protocol's attributes or methods.
    ValueError
        If the name is taken (and ``replace`` is False), empty or ``"auto"``.
    """
    _check_backend_object(backend, None)
    name = backend.name
    if not isinstance(name, str) or not name or name == AUTO:
        raise ValueError(f"backend name {name!r} must be a non-empty string other than 'auto'")
    _ensure_discovered()
    with _lock:
        if name in _entries and not replace:
            raise ValueError(
                f"a backend named {name!r} is already registered; pass replace=True to replace it"
            )
        entry = _Entry(name, "register_backend()", lambda: backend)
        entry.resolve()
        _entries[name] = entry
        _bump()


def unregister_backend(name: str) -> None:
    """Remove a backend added with :func:`register_backend` (entry points are re-found)."""
    global _discovered
    with _lock:
        entry = _entries.get(name)
        if entry is None:
            raise ValueError(_unknown_message(name))
        del _entries[name]
        _discovered = False  # let an entry point of that name come back
        _bump()


def _bump() -> None:
    global _generation
    with _lock:
        _generation += 1


def rediscover() -> None:
    """Scan the entry points again, e.g. after installing a plugin in a running process.

    Backends already registered or loaded are kept; new entry points are added.
    """
    global _discovered
    with _lock:
        _discovered = False
    _ensure_discovered()


def backend_names() -> tuple[str, ...]:
    """Names of every registered backend, available or not, sorted."""
    _ensure_discovered()
    with _lock:
        return tuple(sorted(_entries))


def _unknown_message(name: object) -> str:
    valid = ", ".join(repr(n) for n in (AUTO, *backend_names()))
    return f"backend={name!r} is not a known backend; valid names are {valid}"


def check_name(name: object) -> str:
    """Return ``name`` if it is ``"auto"`` or a registered backend, else raise ValueError."""
    if not isinstance(name, str):
        raise TypeError(f"backend={name!r} must be a backend name (str)")
    if name == AUTO:
        return name
    _ensure_discovered()
    with _lock:
        if name not in _entries:
            raise ValueError(_unknown_message(name))
    return name


def get_backend(name: str) -> Any:
    """The backend object registered as ``name``, imported on first use.

    Raises
    ------
    ValueError
        If no backend has that name (the message lists the valid ones).
    BackendUnsupported
        If it is registered but failed to load; the message says why.
    """
    check_name(name)
    if name == AUTO:
        raise ValueError("'auto' is a selection rule, not a backend; use fastcnn.select")
    with _lock:
        entry = _entries[name]
        backend = entry.resolve()
    if backend is None:
        raise BackendUnsupported(f"backend {name!r} is unavailable: {entry.error}")
    return backend


def available_backends() -> tuple[Any, ...]:
    """Every backend that loads, in name order (this imports them all)."""
    out = []
    for name in backend_names():
        with _lock:
            backend = _entries[name].resolve()
        if backend is not None:
            out.append(backend)
    return tuple(out)


def list_backends() -> tuple[BackendInfo, ...]:
    """What is registered: name, summary, ops, and whether it is available (and why not).

    This loads every backend, so it imports their dependencies (Numba, SciPy).
    """
    rows = []
    for name in backend_names():
        with _lock:
            entry = _entries[name]
            backend = entry.resolve()
        if backend is None:
            rows.append(BackendInfo(name, "", (), False, entry.error, entry.origin))
        else:
            ops = tuple(op for op in BACKEND_OPS if op in backend.ops)
            rows.append(BackendInfo(name, backend.summary, ops, True, None, entry.origin))
    return tuple(rows)


def unsupported_reason(backend: Any, op: str, spec: ConvSpec | PoolSpec) -> str | None:
    """None if ``backend`` can run ``op`` on ``spec``, else why not."""
    if op not in backend.ops:
        return f"it has no {op}"
    return hook(backend, "supports")(op, spec)


def unavailable_backends() -> dict[str, str]:
    """Registered backends that failed to load, with why (this imports them all)."""
    return {row.name: row.reason or "" for row in list_backends() if not row.available}


def keeps_nonfinite_local(backend: Any) -> bool:
    """Whether NaN/Inf stay within the windows holding them (True unless declared)."""
    return bool(hook(backend, "keeps_nonfinite_local"))


def call(backend: Any, op: str, *args: Any) -> Any:
    """Run ``op`` on ``backend``: each op is the backend method of the same name."""
    return getattr(backend, op)(*args)


# --- selection -----------------------------------------------------------------------------

_context_choice: ContextVar[str | None] = ContextVar("fastcnn_backend", default=None)
_default_choice = AUTO


def set_default_backend(name: str) -> None:
    """Choose the backend used when neither the call nor a ``use_backend`` block names one.

    ``"auto"`` restores the default behaviour.
    """
    global _default_choice
    _default_choice = check_name(name)


def get_default_backend() -> str:
    """The process-wide default set by :func:`set_default_backend` (``"auto"`` initially)."""
    return _default_choice


@contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Use ``name`` for calls inside the block that pass no ``backend=``.

    Built on a context variable, so a block in one thread or asyncio task does not affect
    another. Blocks nest; the innermost wins.
    """
    token = _context_choice.set(check_name(name))
    try:
        yield name
    finally:
        _context_choice.reset(token)


def current_backend(requested: str | None = None) -> str:
    """Resolve a call's ``backend=`` argument to a name (or ``"auto"``)."""
    if requested is not None:
        return check_name(requested)
    chosen = _context_choice.get()
    if chosen is not None:
        return chosen
    return _default_choice
