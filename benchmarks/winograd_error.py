"""Float32 error of the Winograd tile sizes beside im2col's, on the suites' 3x3 layers.

Usage::

    python benchmarks/winograd_error.py [--batch N] [--layer NAME ...]

The error is the audit's: ``max|y - ref| / max|ref|`` against a float64 reference on
standard-normal inputs. The reference is im2col in float64 (the naive loops would take
hours on these layers; im2col's float64 error is about 1e-16, a billionth of the float32
errors measured). Forward output, dX and dW are reported.
"""

from __future__ import annotations

import argparse

import numpy as np

import fastcnn
from fastcnn.suites import suite
from fastcnn.tolerances import relative_error

LAYERS = [
    "resnet18.conv3x3.64@56",
    "resnet18.conv3x3.128@28",
    "resnet18.conv3x3.256@14",
    "resnet18.conv3x3.512@7",
    "vgg16.conv3x3.64@224.in3",
    "vgg16.conv3x3.64@224",
    "vgg16.conv3x3.128@112.in64",
    "vgg16.conv3x3.128@112",
    "vgg16.conv3x3.256@56.in128",
    "vgg16.conv3x3.256@56",
    "vgg16.conv3x3.512@28.in256",
    "vgg16.conv3x3.512@28",
    "vgg16.conv3x3.512@14",
]
BACKENDS = ("im2col", "winograd2", "winograd4")


def errors(case, backend: str, arrays: dict, refs: tuple) -> tuple[float, float, float]:
    """Forward, dX and dW errors of ``backend`` in float32."""
    params = case.call_params()
    x, w, gy = (arrays[k].astype(np.float32) for k in ("x", "w", "gy"))
    y = fastcnn.conv2d(x, w, backend=backend, **params)
    grads = fastcnn.conv2d_backward(gy, x, w, bias=False, backend=backend, **params)
    return tuple(
        relative_error(got, want) for got, want in zip((y, grads.x, grads.w), refs, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=None, help="images (default: the suite's)")
    parser.add_argument("--layer", action="append", help="only this layer (repeatable)")
    args = parser.parse_args()
    cases = {c.name: c for name in ("resnet18", "vgg16") for c in suite(name, args.batch)}
    print("layer                          " + "  ".join(f"{b:>28}" for b in BACKENDS))
    print(" " * 31 + "  ".join(f"{'y':>8} {'dX':>9} {'dW':>9}" for _ in BACKENDS))
    for name in args.layer or LAYERS:
        case = cases[name]
        rng = np.random.default_rng(0)
        arrays = {"x": rng.standard_normal(case.x), "w": rng.standard_normal(case.w)}
        y = fastcnn.conv2d(arrays["x"], arrays["w"], backend="im2col", **case.call_params())
        arrays["gy"] = rng.standard_normal(y.shape)
        grads = fastcnn.conv2d_backward(
            arrays["gy"],
            arrays["x"],
            arrays["w"],
            bias=False,
            backend="im2col",
            **case.call_params(),
        )
        refs = (y, grads.x, grads.w)
        row = [errors(case, b, arrays, refs) for b in BACKENDS]
        base = row[0]
        cells = []
        for errs in row:
            cells.append(
                " ".join(
                    f"{e:.1e}" + (f"({e / r:4.1f}x)" if r else "")
                    for e, r in zip(errs, base, strict=True)
                )
            )
        print(f"{name:30} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
