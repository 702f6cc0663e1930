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
- **BLAS inside kernels.** A kernel whose workers call BLAS (``np.dot``) runs with BLAS
  held at one thread, set and restored under the launch lock (``launch(...,
  calls_blas=True)``): each worker's GEMM then runs on its own core.
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
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

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


_blas_controller: Any = None


def _one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread, for kernels whose workers each call it.

    Numba's ``np.dot`` calls the BLAS SciPy links; called at once from every worker of a
    parallel kernel, a multithreaded BLAS would start its own threads inside each worker
    (OpenBLAS warns that it may hang). SciPy's BLAS is loaded before the controller looks
    for libraries, or the controller would not see it. Every BLAS is held at one thread,
    numpy's included, until the context exits (a GEMM another Python thread runs
    meanwhile runs on one thread too).
    """
    global _blas_controller
    if _blas_controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba calls)
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


def readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view, so every call compiles to (and caches) one signature per dtype."""
    view = array.view()
    view.flags.writeable = False
    return view
