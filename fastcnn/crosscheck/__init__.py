"""The audit harness: every backend on identical inputs, against the reference.

For each case and each available backend (built-in or third-party, all treated alike) in
float32 and float64, through the public API:

- forward and backward results against the naive backend in float64, each error as a
  share of its bound from analysis (:mod:`~fastcnn.crosscheck.bounds`: direct, FFT or
  Winograd, as the backend declares), with the result's shape and dtype; on all-positive
  data, whether errors lean one way (truncation does, rounding does not);
- exact mode: integer data, where exact backends equal the reference bit for bit;
- thread-count invariance (1, 2, 3 threads), unless a backend declares it cannot promise it;
- random-data cases whose outputs are mostly zeros are reported as mistrusted;
- gradients against central finite differences of the same backend's forward, in float64
  (random directions for every case, the full Jacobian for tiny cases);
- behaviour: NaN/Inf stay in the windows that hold them (or the backend declares it cannot
  and is refused), the same call twice is bit-identical, the caller's arrays are unchanged.

Use :func:`run` from Python (``report.passed``), or ``fastcnn check`` from the shell.
The parts: :mod:`~fastcnn.crosscheck.report` (results, rows, the verdict, JSON),
:mod:`~fastcnn.crosscheck.audit` (running the checks), :mod:`~fastcnn.crosscheck.nonfinite`
(NaN/Inf locality), :mod:`~fastcnn.crosscheck.sweeps` (random cases, in-process or over
Dask workers) and :mod:`~fastcnn.crosscheck.render` (the table).
"""

from fastcnn.crosscheck.audit import Auditor, Reference, run
from fastcnn.crosscheck.nonfinite import nonfinite_check
from fastcnn.crosscheck.render import print_report
from fastcnn.crosscheck.report import (
    DTYPES,
    ERROR,
    FAIL,
    MISTRUSTED,
    PASS,
    REFERENCE,
    REPORT_VERSION,
    UNSUPPORTED,
    CheckResult,
    Recorder,
    Report,
    Row,
)
from fastcnn.crosscheck.sweeps import random_cases, sweep

__all__ = [
    "DTYPES",
    "ERROR",
    "FAIL",
    "MISTRUSTED",
    "PASS",
    "REFERENCE",
    "REPORT_VERSION",
    "UNSUPPORTED",
    "Auditor",
    "CheckResult",
    "Recorder",
    "Reference",
    "Report",
    "Row",
    "nonfinite_check",
    "print_report",
    "random_cases",
    "run",
    "sweep",
]
