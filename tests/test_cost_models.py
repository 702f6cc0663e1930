"""The cost models behind auto: features match coefficients, and the refit script runs."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from fastcnn import bench
from fastcnn.registry import get_backend
from fastcnn.suites import SUITES, suite

BUILT_IN = ["im2col", "fft", "numba", "winograd", "winograd2", "winograd4"]
FIT_SCRIPT = Path(__file__).parents[1] / "benchmarks" / "fit_cost_models.py"


def _specs():
    for name in SUITES:
        for case in suite(name, batch=2):
            arrays = {"x": np.empty(case.x, dtype="float32")}
            if case.is_conv:
                arrays["w"] = np.empty(case.w, dtype="float32")
            for dtype in ("float32", "float64"):
                yield case, bench.layer_spec(case, arrays, dtype)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_estimate_is_a_positive_time_from_matching_features(name):
    backend = get_backend(name)
    for case, spec in _specs():
        ops = ("conv2d", "conv2d_backward") if case.is_conv else ("pool2d", "pool2d_backward")
        for op in ops:
            if backend.supports(op, spec) is not None or op not in backend.ops:
                continue
            seconds = backend.estimate_seconds(op, spec)
            assert 0 < seconds < math.inf, (name, case.name, op)
            assert len(backend.cost_features(op, spec)) == len(_cost(backend)[op])


def _cost(backend) -> dict:
    """The fitted coefficients: ``_COST`` of the backend's module or of its ``cost`` module."""
    module = type(backend).__module__
    return sys.modules.get(f"{module}.cost", sys.modules[module])._COST


def test_float64_costs_more_than_float32_on_a_real_layer():
    case = next(c for c in suite("resnet18") if c.name == "resnet18.conv3x3.64@56")
    arrays = {"x": np.empty(case.x), "w": np.empty(case.w)}
    for name in BUILT_IN:
        backend = get_backend(name)
        f32 = backend.estimate_seconds("conv2d", bench.layer_spec(case, arrays, "float32"))
        f64 = backend.estimate_seconds("conv2d", bench.layer_spec(case, arrays, "float64"))
        assert f64 > f32, name


def _fit_script(monkeypatch):
    spec = importlib.util.spec_from_file_location("fit_cost_models", FIT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fit_cost_models", module)  # for its dataclass
    spec.loader.exec_module(module)
    return module


def test_the_refit_script_reads_bench_json_and_fits_every_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "GEMM_SIZE", 128)
    ops = ["conv2d", "conv2d_backward", "max_pool2d", "mean_pool2d_backward"]
    result = bench.run_bench(["quick"], batch=1, budget=0, ops=ops)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(result.to_dict()))
    module = _fit_script(monkeypatch)
    samples = module.load([str(path), str(path)])  # the same rows twice: merged
    assert len(samples) == len(result.rows)
    coefficients = module.fit(samples)
    for (name, op), coef in coefficients.items():
        assert len(coef) == len(_cost(get_backend(name))[op]) and (coef >= 0).all()
    module.report_choices(samples, coefficients)
    out = capsys.readouterr().out
    assert "rows over" in out
    assert "numba: coefficients for fastcnn.backends.numba.cost._COST" in out
    assert "im2col: coefficients for fastcnn.backends.im2col.cost._COST" in out


#: The runs winograd's model was fitted to (see its ``_COST``): every backend that can run
#: a 3x3 stride-1 layer but FFT, timed on ResNet-18's, VGG-16's, ResNet-20's and the
#: quick suite's layers.
WINOGRAD_FIT_RUNS = [
    "2026-12-08-refit-winograd.json",
    "2026-12-08-resnet20-quick-b32.json",
    "2026-12-08-resnet20-quick-b2.json",
]


def test_auto_picks_within_15_percent_of_the_fastest_on_the_runs_winograd_was_fitted_to(
    monkeypatch,
):
    # The models' estimates, compared as auto compares them, on rows measured on one
    # machine: a coefficient pasted wrong, a feature changed without a refit, or models
    # fitted on machines of different speeds (winograd's Zen 5 model beside im2col's and
    # numba's Zen 4 ones picked Winograd at 1.5x numba's time on ResNet-20's 16@32) fail it.
    module = _fit_script(monkeypatch)
    runs = [str(FIT_SCRIPT.parent / "runs" / name) for name in WINOGRAD_FIT_RUNS]
    rows = [s for s in module.load(runs) if "winograd4" in s.seconds]
    assert len(rows) >= 40
    slow = []
    for s in rows:
        pick = min(s.seconds, key=lambda name: get_backend(name).estimate_seconds(s.op, s.spec))
        ratio = s.seconds[pick] / min(s.seconds.values())
        if ratio > 1.15:
            slow.append(f"{s.layer} {s.op}: {pick} at {ratio:.2f}x the fastest")
    assert not slow
