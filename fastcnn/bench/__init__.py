"""The comparison runner behind ``fastcnn bench``.

:func:`run_bench` times every chosen backend, ``auto`` and optionally PyTorch on the
layers of named suites (:mod:`fastcnn.suites`) and returns a :class:`BenchResult`; how
the columns are timed is said in :mod:`fastcnn.bench.run` and :mod:`fastcnn.timing`.
The parts: :mod:`~fastcnn.bench.rows` (rows, timings, rates, JSON),
:mod:`~fastcnn.bench.run` (timing the rows), :mod:`~fastcnn.bench.peers` (PyTorch) and
:mod:`~fastcnn.bench.render` (the table and the chart).
"""

from fastcnn.bench.peers import torch_call, torch_version
from fastcnn.bench.render import plot_result, print_result
from fastcnn.bench.rows import (
    AUTO,
    AUTOTUNED,
    COPY,
    GEMM,
    PEER,
    BenchResult,
    BenchRow,
    PeerRatio,
    Timing,
    add_rates,
    peer_summary,
    with_combined,
)
from fastcnn.bench.run import (
    DEFAULT_BUDGET,
    GEMM_SIZE,
    KEEP_WITHIN,
    MAX_ROUNDS,
    SLOW_BY_DEFAULT,
    gemm_gflops,
    gemm_size,
    layer_spec,
    machine_context,
    measure,
    run_bench,
    with_requested_pool_modes,
)

__all__ = [
    "AUTO",
    "AUTOTUNED",
    "COPY",
    "DEFAULT_BUDGET",
    "GEMM",
    "GEMM_SIZE",
    "KEEP_WITHIN",
    "MAX_ROUNDS",
    "PEER",
    "SLOW_BY_DEFAULT",
    "BenchResult",
    "BenchRow",
    "PeerRatio",
    "Timing",
    "add_rates",
    "gemm_gflops",
    "gemm_size",
    "layer_spec",
    "machine_context",
    "measure",
    "peer_summary",
    "plot_result",
    "print_result",
    "run_bench",
    "torch_call",
    "torch_version",
    "with_combined",
    "with_requested_pool_modes",
]
