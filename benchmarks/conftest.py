"""pytest-benchmark suites over the layers of fastcnn.suites.

Run with ``pytest benchmarks/ --benchmark-only`` (or ``tox -e bench``). Each layer and
pass is one benchmark group with one benchmark per backend, so pytest-benchmark's table
compares backends directly; the "numpy GEMM" group is the machine's yardstick measured in
the same run. ``FASTCNN_BENCH_BATCH`` overrides every suite's batch size and
``FASTCNN_BENCH_SUITES`` (comma-separated) picks suites.
"""

from __future__ import annotations

import os

from fastcnn.registry import list_backends

#: The reference loops are far too slow for real layers; name them to include them.
EXCLUDED = {"naive"}

SUITE_NAMES = os.environ.get(
    "FASTCNN_BENCH_SUITES", "lenet,resnet18,vgg16,mobilenet,large-kernel"
).split(",")
BATCH = int(os.environ["FASTCNN_BENCH_BATCH"]) if "FASTCNN_BENCH_BATCH" in os.environ else None
BACKENDS = [info.name for info in list_backends() if info.available and info.name not in EXCLUDED]
