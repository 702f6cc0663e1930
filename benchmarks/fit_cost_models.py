"""Refit the cost models behind ``backend="auto"`` from ``fastcnn bench --json`` files.

Usage::

    fastcnn bench --suite resnet18 --suite vgg16 --suite mobilenet --suite large-kernel \\
        --op conv2d --op conv2d_backward --op max_pool2d --op max_pool2d_backward \\
        --op mean_pool2d --op mean_pool2d_backward --json run1.json
    python benchmarks/fit_cost_models.py run1.json [run2.json ...]

Each built-in backend predicts seconds as its ``_COST[op]`` coefficients dotted with its
``cost_features(op, spec)``. For every backend and op this script solves for the
coefficients by non-negative least squares on relative error (each row of features
divided by its measured seconds, fitted to 1), so that a 50 us layer counts as much as a
500 ms one. It prints the coefficients to paste into the backend's ``_COST`` (in its
module, or for a backend that is a package in its ``cost`` module, e.g.
``fastcnn.backends.numba.cost``), the worst relative error of the fit, and every measured
row where the refitted models would pick a backend more than 15 % slower than that row's
fastest.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from fastcnn import bench
from fastcnn.ops import backend_op
from fastcnn.registry import get_backend
from fastcnn.spec import ConvSpec, PoolSpec
from fastcnn.suites import suite

BACKENDS = ("im2col", "fft", "numba", "winograd2", "winograd4")
#: Backends that share one model: each tile size of Winograd is timed under its own name
#: and their rows are fitted together (the tile size is in the features).
MODEL = {"winograd2": "winograd", "winograd4": "winograd"}
SLOW = 1.15


@dataclass
class Sample:
    layer: str
    op: str
    spec: ConvSpec | PoolSpec
    seconds: dict[str, float]


def model_op(op_label: str) -> str:
    """``max_pool2d_backward`` -> ``pool2d_backward``; convolutions unchanged."""
    return backend_op(op_label)[0]


def cost_module(backend: object) -> str:
    """The module whose ``_COST`` holds ``backend``'s coefficients."""
    module = type(backend).__module__
    home = f"{module}.cost" if f"{module}.cost" in sys.modules else module
    if not hasattr(sys.modules[home], "_COST"):
        raise LookupError(f"backend {backend!r} keeps no _COST in {module} or {module}.cost")
    return home


def load(paths: list[str]) -> list[Sample]:
    """One sample per layer and op: each backend's least time (a run's median) over the files.

    The least, because load from other tenants only ever adds time; on a shared machine
    the same layer's im2col time varied 2x between runs.
    """
    samples: dict[tuple, Sample] = {}
    for path in paths:
        for row in json.loads(Path(path).read_text())["rows"]:
            op = row["op"]
            cases = suite(row["suite"], row.get("batch"))  # older files: the default
            base = op.removesuffix("_backward")
            case = next(
                c
                for c in bench.with_requested_pool_modes(cases, [op])
                if c.name == row["layer"] and c.op == base
            )
            shapes = {"x": np.empty(case.x, dtype=row["dtype"])}
            if case.is_conv:
                shapes["w"] = np.empty(case.w, dtype=row["dtype"])
            spec = bench.layer_spec(case, shapes, row["dtype"])
            seconds = {
                name: timing["seconds"]
                for name, timing in row["timings"].items()
                if name in BACKENDS and timing["seconds"] is not None
            }
            key = (row["layer"], op, spec)
            if key in samples:
                seen = samples[key].seconds
                seconds = {n: min(t, seen.get(n, t)) for n, t in {**seen, **seconds}.items()}
            samples[key] = Sample(row["layer"], model_op(op), spec, seconds)
    return list(samples.values())


def model_of(name: str) -> str:
    return MODEL.get(name, name)


def fit(samples: list[Sample]) -> dict[tuple[str, str], np.ndarray]:
    coefficients = {}
    for model in dict.fromkeys(model_of(name) for name in BACKENDS):
        names = [n for n in BACKENDS if model_of(n) == model]
        print(f"{model}: coefficients for {cost_module(get_backend(names[0]))}._COST")
        by_op = defaultdict(list)
        for name in names:
            backend = get_backend(name)
            for s in samples:
                if name in s.seconds:  # timed: the backend can run the call
                    features = np.asarray(backend.cost_features(s.op, s.spec), dtype=float)
                    by_op[s.op].append((features, s.seconds[name]))
        name = model
        for op, rows in sorted(by_op.items()):
            a = np.array([f / t for f, t in rows])
            coef, _ = nnls(a, np.ones(len(rows)))
            worst = np.max(np.abs(a @ coef - 1))
            coefficients[name, op] = coef
            printed = ", ".join(f"{c:.3g}" for c in coef)
            print(f"{name:8} {op:16} ({printed})  worst error {worst:.0%} over {len(rows)} rows")
    return coefficients


def report_choices(samples: list[Sample], coefficients: dict) -> None:
    slow = 0
    for s in samples:
        estimates = {
            name: float(
                np.dot(
                    coefficients[model_of(name), s.op],
                    get_backend(name).cost_features(s.op, s.spec),
                )
            )
            for name in s.seconds
            if (model_of(name), s.op) in coefficients
        }
        if not estimates:
            continue
        pick = min(estimates, key=estimates.get)
        fastest = min(s.seconds, key=s.seconds.get)
        ratio = s.seconds[pick] / s.seconds[fastest]
        if ratio > SLOW:
            slow += 1
            print(f"  {s.layer} {s.op}: picks {pick}, {ratio:.2f}x the fastest ({fastest})")
    print(f"{slow} of {len(samples)} rows over {SLOW}x the fastest")


def main(paths: list[str]) -> None:
    samples = load(paths)
    report_choices(samples, fit(samples))


if __name__ == "__main__":
    main(sys.argv[1:])
