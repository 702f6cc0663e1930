"""The numba backend's memory-bound and strided layers against their roofs, in one process.

Usage::

    python benchmarks/roof_numba.py [--budget SECONDS] [--only SUBSTRING ...] [--dtype float32]

For each depthwise convolution and pooling layer of the suites (and ResNet-18's stride-2
3x3 convolutions), times in interleaved rounds (:func:`fastcnn.timing.time_interleaved`):
numba's and auto's forward and backward, PyTorch's forward and forward+backward (when
installed), a ``numpy.copyto`` moving as many bytes as the forward must (input read once,
output written once), and a float32 GEMM. It prints per layer: time over PyTorch's
(forward, forward+backward), the forward's bytes/s as a share of the copy's, and the
backward's GFLOP/s (twice the forward's FLOPs) as a share of the GEMM's.
"""

from __future__ import annotations

import argparse
import math
import statistics

import numpy as np

import fastcnn
from fastcnn.cases import Case, make_inputs, run_backward, run_forward
from fastcnn.suites import suite
from fastcnn.timing import time_interleaved, typical_seconds

GEMM_SIZE = 1024


def layers() -> list[tuple[str, Case]]:
    """The layers this script measures, with their class."""
    chosen = []
    for name in ("mobilenet", "resnet18", "vgg16"):
        for case in suite(name):
            params = case.params
            if case.is_conv and params.get("groups", 1) > 1:
                cls = "dw s1" if params.get("stride", 1) == 1 else "dw s2"
            elif case.is_conv and params.get("stride", 1) == 2 and case.w[2] == 3:
                cls = "3x3 s2"
            elif case.is_conv and params.get("stride", 1) == 2 and case.w[2] == 7:
                cls = "stem"
            elif not case.is_conv:
                cls = "pool"
            else:
                continue
            chosen.append((cls, case))
    return chosen


def _torch_calls(case: Case, arrays: dict, grad_y: np.ndarray) -> dict:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return {}
    torch.set_num_threads(fastcnn.get_num_threads())
    x = torch.from_numpy(arrays["x"])
    params = case.call_params()
    if case.is_conv:
        w = torch.from_numpy(arrays["w"])
        b = torch.from_numpy(arrays["b"]) if "b" in arrays else None

        def forward(xx, ww):
            return F.conv2d(xx, ww, b, **params)

        inputs = (x, w)
    else:
        kernel = case.params["kernel"]
        pool = F.max_pool2d if case.mode == "max" else F.avg_pool2d

        def forward(xx):
            return pool(xx, kernel, **params)

        inputs = (x,)
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    gy = torch.from_numpy(grad_y)
    return {
        "torch": lambda: forward(*inputs),
        "torch fb": lambda: torch.autograd.grad(forward(*leaves), leaves, gy),
    }


def measure(cls: str, case: Case, dtype: str, budget: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    arrays = {k: v.astype(dtype) for k, v in make_inputs(case, rng).items()}
    y = run_forward(case, arrays, "naive" if case.x[2] < 8 else "numba")
    grad_y = rng.standard_normal(y.shape).astype(dtype)
    moved = arrays["x"].nbytes + y.nbytes
    src = np.ones(moved // 2 // y.itemsize, dtype=dtype)
    dst = np.empty_like(src)
    a = np.ones((GEMM_SIZE, GEMM_SIZE), np.float32)
    calls = {
        "numba": lambda: run_forward(case, arrays, "numba"),
        "numba b": lambda: run_backward(case, grad_y, arrays, "numba"),
        "auto": lambda: run_forward(case, arrays, "auto"),
        "auto b": lambda: run_backward(case, grad_y, arrays, "auto"),
        "copy": lambda: np.copyto(dst, src),
    }
    if cls in ("3x3 s2", "stem"):
        calls["gemm"] = lambda: a @ a
    calls.update(_torch_calls(case, arrays, grad_y))
    samples = time_interleaved(calls, rounds=5, seconds=budget, max_rounds=30, block_seconds=0.05)
    t = typical_seconds(samples)
    out = {"x_mb": arrays["x"].nbytes / 2**20}
    if "torch" in t:
        out["fwd/torch"] = t["numba"] / t["torch"]
        out["auto/torch"] = t["auto"] / t["torch"]
        out["fb/torch"] = (t["numba"] + t["numba b"]) / t["torch fb"]
        out["auto fb/torch"] = (t["auto"] + t["auto b"]) / t["torch fb"]
    out["copy share"] = t["copy"] / t["numba"]
    out["torch copy share"] = t["copy"] / t["torch"] if "torch" in t else math.nan
    if "gemm" in t:
        gemm = 2 * GEMM_SIZE**3 / t["gemm"]
        flops = 2 * y.size * math.prod(case.w[1:]) * 2  # a backward: twice the forward's FLOPs
        out["bwd/gemm"] = flops / t["numba b"] / gemm
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--only", action="append")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    per_class: dict[str, list[dict]] = {}
    for cls, case in layers():
        if args.only and not any(s in case.name for s in args.only):
            continue
        row = measure(cls, case, args.dtype, args.budget)
        per_class.setdefault(cls, []).append(row)
        cells = "  ".join(f"{k} {v:5.2f}" for k, v in row.items())
        print(f"{cls:7s} {case.name:34s} {cells}", flush=True)
    for cls, rows in per_class.items():
        keys = [k for k in rows[0] if k != "x_mb"]
        means = {k: statistics.geometric_mean(r[k] for r in rows) for k in keys if k in rows[0]}
        print(f"geomean {cls:7s} " + "  ".join(f"{k} {v:5.2f}" for k, v in means.items()))


if __name__ == "__main__":
    main()
