"""pytest-benchmark suites over the layers of fastcnn.suites.

Run with ``pytest benchmarks/ --benchmark-only`` (or ``tox -e bench``). Each layer and
pass is one benchmark group with one benchmark per backend, so pytest-benchmark's table
compares backends directly; the "numpy GEMM" group is the machine's yardstick measured in
the same run. ``FASTCNN_BENCH_BATCH`` overrides every suite's batch size and
``FASTCNN_BENCH_SUITES`` (comma-separated) picks suites.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from fastcnn.bench import GEMM_SIZE, layer_spec
from fastcnn.cases import make_inputs, run_backward, run_forward
from fastcnn.registry import BackendUnsupported, list_backends
from fastcnn.suites import suite

#: Left out: the reference loops would take minutes per layer.
EXCLUDED = {"naive"}

SUITE_NAMES = os.environ.get(
    "FASTCNN_BENCH_SUITES", "lenet,resnet18,vgg16,mobilenet,large-kernel"
).split(",")
BATCH = int(os.environ["FASTCNN_BENCH_BATCH"]) if "FASTCNN_BENCH_BATCH" in os.environ else None
BACKENDS = [info.name for info in list_backends() if info.available and info.name not in EXCLUDED]

CASES = [case for name in SUITE_NAMES for case in suite(name.strip(), BATCH)]
DTYPE = "float32"


def _prepare(case):
    rng = np.random.default_rng(0)
    arrays = {k: v.astype(DTYPE) for k, v in make_inputs(case, rng).items()}
    spec = layer_spec(case, arrays, DTYPE)
    grad_y = rng.standard_normal(spec.y_shape).astype(DTYPE)
    return arrays, grad_y, spec


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_layer(benchmark, case, direction, backend):
    arrays, grad_y, spec = _prepare(case)
    if direction == "forward":

        def call():
            return run_forward(case, arrays, backend)
    else:

        def call():
            return run_backward(case, grad_y, arrays, backend)

    try:
        call()  # warm-up: JIT compilation and caches stay out of the timing
    except BackendUnsupported as exc:
        pytest.skip(str(exc))
    benchmark.group = f"{case.name} {direction}"
    flops = spec.flops * (2 if direction == "backward" and case.is_conv else 1)
    benchmark.extra_info["gflop"] = flops / 1e9
    benchmark(call)


def test_numpy_gemm_reference(benchmark):
    """numpy.matmul on a square float32 GEMM: GFLOP/s = extra_info gflop / mean time."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    b = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    benchmark.group = "numpy GEMM reference"
    benchmark.extra_info["gflop"] = 2 * GEMM_SIZE**3 / 1e9
    benchmark(np.matmul, a, b)
