"""The im2col backend on the layers whose roof is GEMM, against PyTorch in the same run.

Usage::

    python benchmarks/im2col_layers.py [--layer SUBSTRING ...] [--baseline OLD_IM2COL_DIR]
        [--dtype float32] [--budget 0.3] [--repeat 1]

For each chosen layer (default: the ResNet-18 and MobileNet convolutions with a 1x1
kernel or a stride, depthwise excepted) it times, interleaved in one set of rounds
(:func:`fastcnn.bench.measure`), im2col's forward and its backward (dX, dW and db), the
same for an older copy of the backend's package when ``--baseline`` names one, and
PyTorch CPU's forward and its autograd forward+backward. It prints the time ratios to
PyTorch (forward, and forward+backward as the sum of the two calls) and GFLOP/s beside
numpy's float32 GEMM measured in the same run, then the geometric mean per layer class.
The backends are called directly on a spec, so the front end's checks are not timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fastcnn import bench
from fastcnn.config import get_num_threads
from fastcnn.registry import GradNeed, get_backend
from fastcnn.suites import suite


def layer_class(case: Any) -> str | None:
    """The issue's class of a suite layer, or None for layers this script leaves out."""
    if not case.is_conv:
        return None
    groups = case.params.get("groups", 1)
    kernel, stride = case.w[2], case.params.get("stride", 1)
    if groups > 1 and groups == case.x[1]:  # depthwise (x is (N, C, H, W))
        return None
    if kernel == 1:
        return "1x1 s1" if stride == 1 else "1x1 s2"
    return "3x3 s2 + stem" if stride != 1 else None


def load_module(path: str) -> Any:
    """The backend object of another copy of the im2col backend: a copy of the package
    folder ``backends/im2col/``, or a single module file of an older layout."""
    root = Path(path)
    if root.is_dir():
        init = root / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            "im2col_baseline", init, submodule_search_locations=[str(root)]
        )
    else:
        spec = importlib.util.spec_from_file_location("im2col_baseline", root)
    module = importlib.util.module_from_spec(spec)
    sys.modules["im2col_baseline"] = module  # for the package's relative imports
    spec.loader.exec_module(module)
    return module.backend


def calls_for(case: Any, dtype: str, backends: dict[str, Any]) -> tuple[dict, int]:
    """The timed calls of one layer and its forward FLOPs."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal(case.x).astype(dtype)
    w = rng.standard_normal(case.w).astype(dtype)
    b = rng.standard_normal(case.w[0]).astype(dtype)
    spec = bench.layer_spec(case, {"x": x, "w": w}, dtype)
    gy = rng.standard_normal(spec.y_shape).astype(dtype)
    need = GradNeed(True, True, True)
    calls: dict[str, Callable[[], Any]] = {}
    for name, be in backends.items():
        calls[f"{name} fwd"] = lambda be=be: be.conv2d(x, w, b, spec)
        calls[f"{name} bwd"] = lambda be=be: be.conv2d_backward(gy, x, w, spec, need)
    params = dict(stride=spec.stride, padding=spec.padding[::2], dilation=spec.dilation)
    params["groups"] = spec.groups
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    tgy = torch.from_numpy(gy)
    conv = torch.nn.functional.conv2d

    def torch_forward() -> Any:
        with torch.no_grad():
            return conv(tx, tw, tb, **params)

    calls["torch fwd"] = torch_forward
    calls["torch fwd+bwd"] = lambda: torch.autograd.grad(
        conv(tx, tw, tb, **params), (tx, tw, tb), tgy
    )
    return calls, spec.flops


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", action="append", default=[], help="name substring")
    parser.add_argument(
        "--baseline",
        help="another copy of backends/im2col/ (or of a one-file im2col module) to compare",
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--budget", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=1, help="runs; medians are printed")
    parser.add_argument(
        "--best", action="store_true", help="each call's least time, not its typical one"
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(get_num_threads())
    backends = {"im2col": get_backend("im2col")}
    if args.baseline:
        backends["before"] = load_module(args.baseline)
    cases = [c for name in ("resnet18", "mobilenet") for c in suite(name)]
    cases = [c for c in cases if layer_class(c) and all(s in c.name for s in args.layer)]
    ratios: dict[tuple, list[float]] = defaultdict(list)
    gemm = []
    for _ in range(args.repeat):
        gemm.append(bench.gemm_gflops())
        for case in cases:
            calls, flops = calls_for(case, args.dtype, backends)
            timings = bench.measure(calls, args.budget).items()
            t = {k: v.best if args.best else v.seconds for k, v in timings}
            for name in backends:
                fb = t[f"{name} fwd"] + t[f"{name} bwd"]
                ratios[case.name, name, "fwd"].append(t[f"{name} fwd"] / t["torch fwd"])
                ratios[case.name, name, "f+b"].append(fb / t["torch fwd+bwd"])
                ratios[case.name, name, "fwd GF"].append(flops / t[f"{name} fwd"] / 1e9)
                ratios[case.name, name, "bwd GF"].append(2 * flops / t[f"{name} bwd"] / 1e9)
            ratios[case.name, "torch", "fwd GF"].append(flops / t["torch fwd"] / 1e9)
    report(cases, list(backends), ratios, float(np.median(gemm)))


def report(cases: list, names: list[str], ratios: dict, gemm: float) -> None:
    """Medians per layer and the geometric mean per class."""
    med = {k: float(np.median(v)) for k, v in ratios.items()}
    print(f"numpy float32 GEMM {gemm:.0f} GFLOP/s; ratios are time / PyTorch's")
    head = "".join(f"{n + ' ' + c:>16}" for n in names for c in ("fwd", "f+b", "fwd GF", "bwd GF"))
    print(f"{'layer':36}{head}{'torch fwd GF':>14}")
    by_class: dict[tuple, list[float]] = defaultdict(list)
    for case in cases:
        cells = ""
        for n in names:
            for c in ("fwd", "f+b", "fwd GF", "bwd GF"):
                cells += f"{med[case.name, n, c]:16.2f}"
                if c in ("fwd", "f+b"):
                    by_class[layer_class(case), n, c].append(med[case.name, n, c])
        print(f"{case.name:36}{cells}{med[case.name, 'torch', 'fwd GF']:14.0f}")
    for (cls, n, c), values in sorted(by_class.items()):
        geo = math.exp(np.mean(np.log(values)))
        print(f"geomean {cls:14} {n:8} {c}: {geo:.2f}  (worst {max(values):.2f})")


if __name__ == "__main__":
    main()
