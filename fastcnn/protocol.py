"""The backend protocol: what a backend provides, and what it exchanges with the core.

A backend is any object with ``name``, ``summary``, ``ops`` and a method per op
(:class:`Backend`); :class:`BackendBase` lists the optional hooks with their defaults,
which :func:`hook` falls back to. The types passed across (:class:`GradNeed`,
:class:`ConvGrads`, :class:`ErrorModel`) and the one shared piece of arithmetic backends
call (:func:`bias_gradient`) live here too. :mod:`fastcnn.registry`, which finds,
registers and selects backends, re-exports every name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from fastcnn.spec import ConvSpec, PoolSpec


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
