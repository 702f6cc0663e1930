"""Plugin discovery, registration and selection of backends (the protocol they follow is
:mod:`fastcnn.protocol`, whose names are re-exported here).

Backends are found through the entry-point group ``fastcnn.backends`` (built-in ones
included) and imported lazily, on first use: ``import fastcnn`` imports no backend. A
backend whose import fails is listed as unavailable with the reason instead of breaking
anything else. Programs can also add a backend object with :func:`register_backend`.

Which backend a call uses is resolved in this order: the ``backend=`` argument of the
call, the innermost :func:`use_backend` block (a context variable, so threads and asyncio
tasks never see each other's choice), :func:`set_default_backend`, then ``"auto"``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastcnn.ops import BACKEND_OPS

# The backend protocol, re-exported: backends import it from here.
from fastcnn.protocol import ERROR_MODELS as ERROR_MODELS
from fastcnn.protocol import Backend as Backend
from fastcnn.protocol import BackendBase as BackendBase
from fastcnn.protocol import BackendUnsupported as BackendUnsupported
from fastcnn.protocol import ConvGrads as ConvGrads
from fastcnn.protocol import ErrorModel as ErrorModel
from fastcnn.protocol import GradNeed as GradNeed
from fastcnn.protocol import bias_gradient as bias_gradient
from fastcnn.protocol import hook as hook

if TYPE_CHECKING:
    from fastcnn.spec import ConvSpec, PoolSpec

ENTRY_POINT_GROUP = "fastcnn.backends"
AUTO = "auto"


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
