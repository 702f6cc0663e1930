"""Thread-count invariance: the same call with 1, 2 and 3 threads gives the same bits.

Every pool of threads a backend may use is set to the count: fastcnn's own
(:func:`fastcnn.set_num_threads`, which Numba kernels and SciPy's FFT workers follow)
and BLAS's through threadpoolctl (OpenBLAS may block a GEMM differently per thread
count). A backend that declares ``thread_invariant = False`` is not checked; the report
names it instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import numpy as np

from fastcnn import config, registry
from fastcnn.cases import Case, make_inputs, run_backward, run_forward
from fastcnn.crosscheck.report import ERROR, UNSUPPORTED, Recorder, describe

CHECK = "threads"


@contextmanager
def thread_count(n: int) -> Iterator[None]:
    """Every thread pool a backend may use limited to ``n`` threads, for the block."""
    with ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # without threadpoolctl, BLAS keeps its own count
            pass
        else:
            stack.enter_context(threadpool_limits(n, user_api="blas"))
        previous = config.set_num_threads(n)
        try:
            yield
        finally:
            config.set_num_threads(previous)


def _same(a: list, b: list) -> bool:
    return all(
        (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        for x, y in zip(a, b, strict=True)
    )


def thread_check(recorder: Recorder, case: Case, counts: tuple[int, ...]) -> None:
    """Run the case forward and backward at each thread count; record whether bits agree."""
    arrays = {
        k: v.astype(recorder.dtype) for k, v in make_inputs(case, np.random.default_rng(2)).items()
    }
    name = recorder.backend
    for op, forward in zip(case.ops, (True, False), strict=True):
        results = []
        try:
            for n in counts:
                with thread_count(n):
                    y = run_forward(case, arrays, name)
                    if forward:
                        results.append([y])
                    else:
                        gy = np.random.default_rng(3).standard_normal(y.shape).astype(y.dtype)
                        results.append(run_backward(case, gy, arrays, name))
        except registry.BackendUnsupported as exc:
            recorder.record(op, CHECK, UNSUPPORTED, message=str(exc))
            continue
        except Exception as exc:  # the audit reports a crashing backend, it never stops
            recorder.record(op, CHECK, ERROR, message=describe(exc))
            continue
        pairs = zip(counts[1:], results[1:], strict=True)
        differ = [n for n, r in pairs if not _same(r, results[0])]
        problems = [f"{n} threads give other bits than {counts[0]}" for n in differ]
        recorder.judge(op, CHECK, problems)
