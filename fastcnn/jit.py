"""The Numba launch machinery that every backend compiling with Numba uses.

Importing this module imports Numba, so only backends import it (never ``fastcnn``'s
``__init__``). It owns the process-wide hazards of Numba's threading, so that no backend
has to guard against them again:

- **Spin policy.** GNU OpenMP's idle threads spin after each kernel (300,000 turns by
  default), taking the cores from the BLAS threads of whatever runs next: a GEMM right
  after a Numba kernel took twice its time on 2 cores. Too short a spin costs too: the
  threads then fall asleep between two quick calls and waking them adds about 15 us. We
  set ``GOMP_SPINCOUNT=10000`` (read when OpenMP starts) unless the user set
  ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``.
- **One launch at a time.** Numba's workqueue layer aborts the process when two Python
  threads launch at once, so :func:`launch` serialises launches with a lock.
- **BLAS inside kernels.** A kernel whose workers call BLAS (``np.dot``, or
  :func:`add_product` and :func:`add_product_nt` for a product added to what a matrix
  holds) runs with BLAS held at one thread, set and restored under the launch lock
  (``launch(..., calls_blas=True)``): each worker's GEMM then runs on its own core.
- **Fork.** GNU OpenMP kills a child forked after the parent started its threads as soon
  as the child launches a kernel, so in such a child every kernel runs its *serial twin*
  (the same function compiled without ``parallel=True``: the same arithmetic, one core).
  A child forked while another thread held the launch lock gets a fresh lock.

Kernels are compiled with ``cache=True``; Numba falls back to a per-user cache directory
when the package directory is read-only.
"""

from __future__ import annotations

import os
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numba
import numpy as np
from numba import types as nb
from numba.extending import intrinsic, overload

from fastcnn.config import get_num_threads

#: Spin turns of idle OpenMP threads (see the module docstring for why this many).
GOMP_SPINCOUNT = "10000"
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT

#: Reassociation lets LLVM vectorise reductions; contraction allows FMA. Both keep NaN/Inf
#: semantics (no "nnan"/"ninf"), and a compiled kernel is deterministic.
FASTMATH = {"reassoc", "contract"}

_launch_lock = threading.Lock()
#: The process whose kernels started GNU OpenMP's threads, once one has.
_openmp_owner: int | None = None
_serial_twins: dict[Any, Any] = {}


def _fresh_lock_after_fork() -> None:
    # A child forked while another thread held the lock would inherit it locked forever.
    global _launch_lock
    _launch_lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_after_fork)


def launch(kernel: Any, *args: Any, calls_blas: bool = False) -> None:
    """Run a parallel kernel: one launch at a time, with the configured thread count.

    ``calls_blas``: the kernel's workers call BLAS (Numba's ``np.dot``), which then runs
    on one thread for the launch (see :func:`_one_blas_thread`). In a child forked after
    this process started OpenMP's threads, the kernel's serial twin runs instead (OpenMP
    would kill the child).
    """
    global _openmp_owner
    if _openmp_owner is not None and _openmp_owner != os.getpid():
        serial_twin(kernel)(*args)
        return
    with _launch_lock:
        numba.set_num_threads(min(get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        if calls_blas:
            # Under the lock: two threads' limits would otherwise interleave, and one
            # could restore BLAS's threads while the other's kernel still runs.
            with _one_blas_thread():
                kernel(*args)
        else:
            kernel(*args)
        if _openmp_owner is None and numba.threading_layer() == "omp":
            _openmp_owner = os.getpid()


def serial_twin(kernel: Any) -> Callable[..., Any]:
    """``kernel`` compiled without ``parallel=True`` (``prange`` runs as ``range``)."""
    twin = _serial_twins.get(kernel)
    if twin is None:
        func = kernel.py_func
        # A distinct name gives the twin its own on-disk cache entry.
        clone = types.FunctionType(
            func.__code__, func.__globals__, f"{func.__name__}_serial", func.__defaults__
        )
        clone.__qualname__ = f"{func.__qualname__}_serial"
        options = {
            k: v for k, v in kernel.targetoptions.items() if k not in ("parallel", "nopython")
        }
        twin = _serial_twins[kernel] = numba.njit(cache=True, **options)(clone)
    return twin


_blas_libraries: list[Any] | None = None


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """A context in which BLAS runs on one thread, for kernels whose workers each call it.

    Numba's ``np.dot`` calls the BLAS SciPy links; called at once from every worker of a
    parallel kernel, a multithreaded BLAS would start its own threads inside each worker
    (OpenBLAS warns that it may hang). SciPy's BLAS is loaded before threadpoolctl looks
    for libraries, or it would not see it. Every BLAS is held at one thread, numpy's
    included, until the context exits (a GEMM another Python thread runs meanwhile runs
    on one thread too).

    The libraries are found once; each entry then only reads and sets their counts.
    threadpoolctl's own ``limit`` context looks them up again on every entry: 11 us a
    launch against 5 us this way.
    """
    global _blas_libraries
    if _blas_libraries is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba calls)
        from threadpoolctl import ThreadpoolController

        _blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    # A library whose count cannot be read (None) is left alone: it could not be restored.
    saved = [(library, library.get_num_threads()) for library in _blas_libraries]
    saved = [(library, threads) for library, threads in saved if threads is not None]
    for library, _ in saved:
        library.set_num_threads(1)
    try:
        yield
    finally:
        for library, threads in saved:
            library.set_num_threads(threads)


def readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view, so every call compiles to (and caches) one signature per dtype."""
    view = array.view()
    view.flags.writeable = False
    return view


# --- c += a @ b and c += a @ b.T in compiled code -----------------------------------------


def add_product(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """``c += a @ b`` for C-contiguous 2-D float32 or float64 arrays, in place.

    In compiled code this is one BLAS GEMM with ``beta = 1`` (Numba's ``np.dot`` always
    writes its output, so a sum of products otherwise needs a buffer and an extra pass
    over the sum). It calls the same BLAS entry point as ``np.dot``.
    """
    c += a @ b


def add_product_nt(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """``c += a @ b.T``, as :func:`add_product`."""
    c += a @ b.T


def _gemm_signature(dtype: nb.Type) -> Any:
    """Numba's ``numba_xxgemm``: column-major ``xGEMM(transa, transb, m, n, k, alpha, a,
    lda, b, ldb, beta, c, ldc)`` of the BLAS SciPy links, behind a ``kind`` character."""
    ptr = nb.CPointer(dtype)
    sizes = (nb.intp, nb.intp, nb.intp)
    return nb.intc(
        nb.char, nb.char, nb.char, *sizes, ptr, ptr, nb.intp, ptr, nb.intp, ptr,
        ptr, nb.intp,
    )  # fmt: skip


_XXGEMM = {
    dtype: (ord(kind), nb.ExternalFunction("numba_xxgemm", _gemm_signature(dtype)))
    for dtype, kind in ((nb.float32, "s"), (nb.float64, "d"))
}


@intrinsic
def _data(typingctx: Any, array: nb.Array) -> Any:
    """The data pointer of ``array``, typed as a pointer to its dtype."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return nb.CPointer(array.dtype)(array), codegen


def _gemm_kind(a: Any, b: Any, c: Any) -> Any:
    """``(kind, numba_xxgemm)`` for three C-contiguous 2-D arrays of one BLAS dtype, else
    None (the overload then does not apply)."""
    arrays = (a, b, c)
    if not all(isinstance(t, nb.Array) and t.ndim == 2 and t.layout == "C" for t in arrays):
        return None
    if c.dtype not in _XXGEMM or a.dtype != c.dtype or b.dtype != c.dtype:
        return None
    return _XXGEMM[c.dtype]


# Row-major C (m x n) is column-major C^T, so BLAS computes C^T += B^T A^T: A's rows are
# the column-major (k x m) matrix A^T as it lies; B's rows are B^T for a @ b and, for
# a @ b.T, the column-major (k x n) matrix B^T, so transposed.


def _gemm_overload(b_transposed: bool) -> Any:
    """The compiled :func:`add_product` (or, with ``b_transposed``, :func:`add_product_nt`)."""

    def typer(a, b, c):  # type: ignore[no-untyped-def]  # Numba wants the impl's exact parameters
        found = _gemm_kind(a, b, c)
        if found is None:
            return None
        kind, gemm = found
        trans_b = ord("t") if b_transposed else ord("n")

        def impl(a, b, c):  # type: ignore[no-untyped-def]  # pragma: no cover
            m, k = a.shape
            n = b.shape[0] if b_transposed else b.shape[1]
            if m == 0 or n == 0 or k == 0:
                return
            ld_b = k if b_transposed else n
            one = np.ones(1, c.dtype)  # alpha and beta
            a_, b_, c_, one_ = _data(a), _data(b), _data(c), _data(one)
            gemm(kind, trans_b, ord("n"), n, m, k, one_, b_, ld_b, a_, k, one_, c_, n)

        return impl

    return typer


overload(add_product)(_gemm_overload(b_transposed=False))
overload(add_product_nt)(_gemm_overload(b_transposed=True))
