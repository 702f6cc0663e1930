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


def test_the_refit_script_reads_bench_json_and_fits_every_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "GEMM_SIZE", 128)
    ops = ["conv2d", "conv2d_backward", "max_pool2d", "mean_pool2d_backward"]
    result = bench.run_bench(["quick"], batch=1, budget=0, ops=ops)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(result.to_dict()))
    spec = importlib.util.spec_from_file_location("fit_cost_models", FIT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fit_cost_models", module)  # for its dataclass
    spec.loader.exec_module(module)
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
