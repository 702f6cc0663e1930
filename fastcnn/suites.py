"""Named sets of real layer shapes, shared by ``fastcnn bench`` and ``benchmarks/``.

Each layer is an audit :class:`~fastcnn.cases.Case` without its batch size: shapes are
``(C, H, W)`` and the batch is chosen when the suite is built (:func:`suite`). The shapes
are those of the published networks (ImageNet input 224x224 for ResNet-18, VGG-16 and
MobileNet v1; 32x32 for LeNet-5 and for ResNet-20 on CIFAR-10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastcnn.cases import Case
from fastcnn.ops import CONV2D, POOL2D, public_op


@dataclass(frozen=True)
class Layer:
    """One layer: op, unbatched input shape, filter shape, parameters."""

    name: str
    op: str
    x: tuple[int, int, int]
    w: tuple[int, int, int, int] | None = None
    params: tuple[tuple[str, Any], ...] = ()

    def case(self, batch: int) -> Case:
        """The layer as a case with ``batch`` images."""
        return Case(self.op, (batch, *self.x), self.w, dict(self.params), name=self.name)


def _conv(name: str, cin: int, size: int, cout: int, k: int, **params: Any) -> Layer:
    groups = params.get("groups", 1)
    return Layer(
        name, CONV2D, (cin, size, size), (cout, cin // groups, k, k), tuple(params.items())
    )


def _pool(name: str, mode: str, channels: int, size: int, k: int, **params: Any) -> Layer:
    return Layer(
        name,
        public_op(POOL2D, mode),
        (channels, size, size),
        None,
        (("kernel", k), *params.items()),
    )


_LENET = [
    _conv("lenet.conv1.5x5.6@32", 1, 32, 6, 5),
    _pool("lenet.pool1.mean2x2.6@28", "mean", 6, 28, 2),
    _conv("lenet.conv2.5x5.16@14", 6, 14, 16, 5),
    _pool("lenet.pool2.mean2x2.16@10", "mean", 16, 10, 2),
    _conv("lenet.conv3.5x5.120@5", 16, 5, 120, 5),
]

_RESNET18 = [
    _conv("resnet18.stem.7x7s2.64@224", 3, 224, 64, 7, stride=2, padding=3),
    _pool("resnet18.maxpool.3x3s2.64@112", "max", 64, 112, 3, stride=2, padding=1),
    _conv("resnet18.conv3x3.64@56", 64, 56, 64, 3, padding=1),
    _conv("resnet18.conv3x3s2.128@56", 64, 56, 128, 3, stride=2, padding=1),
    _conv("resnet18.conv3x3.128@28", 128, 28, 128, 3, padding=1),
    _conv("resnet18.conv3x3s2.256@28", 128, 28, 256, 3, stride=2, padding=1),
    _conv("resnet18.conv3x3.256@14", 256, 14, 256, 3, padding=1),
    _conv("resnet18.conv3x3s2.512@14", 256, 14, 512, 3, stride=2, padding=1),
    _conv("resnet18.conv3x3.512@7", 512, 7, 512, 3, padding=1),
    _conv("resnet18.down1x1s2.128@56", 64, 56, 128, 1, stride=2),
    _conv("resnet18.down1x1s2.256@28", 128, 28, 256, 1, stride=2),
    _conv("resnet18.down1x1s2.512@14", 256, 14, 512, 1, stride=2),
]

_VGG16 = [
    _conv("vgg16.conv3x3.64@224.in3", 3, 224, 64, 3, padding=1),
    _conv("vgg16.conv3x3.64@224", 64, 224, 64, 3, padding=1),
    _pool("vgg16.pool2x2.64@224", "max", 64, 224, 2),
    _conv("vgg16.conv3x3.128@112.in64", 64, 112, 128, 3, padding=1),
    _conv("vgg16.conv3x3.128@112", 128, 112, 128, 3, padding=1),
    _pool("vgg16.pool2x2.128@112", "max", 128, 112, 2),
    _conv("vgg16.conv3x3.256@56.in128", 128, 56, 256, 3, padding=1),
    _conv("vgg16.conv3x3.256@56", 256, 56, 256, 3, padding=1),
    _pool("vgg16.pool2x2.256@56", "max", 256, 56, 2),
    _conv("vgg16.conv3x3.512@28.in256", 256, 28, 512, 3, padding=1),
    _conv("vgg16.conv3x3.512@28", 512, 28, 512, 3, padding=1),
    _pool("vgg16.pool2x2.512@28", "max", 512, 28, 2),
    _conv("vgg16.conv3x3.512@14", 512, 14, 512, 3, padding=1),
    _pool("vgg16.pool2x2.512@14", "max", 512, 14, 2),
]

_MOBILENET = [
    _conv("mobilenet.dw3x3.32@112", 32, 112, 32, 3, padding=1, groups=32),
    _conv("mobilenet.pw1x1.64@112", 32, 112, 64, 1),
    _conv("mobilenet.dw3x3s2.64@112", 64, 112, 64, 3, stride=2, padding=1, groups=64),
    _conv("mobilenet.pw1x1.128@56", 64, 56, 128, 1),
    _conv("mobilenet.dw3x3.128@56", 128, 56, 128, 3, padding=1, groups=128),
    _conv("mobilenet.dw3x3s2.256@28", 256, 28, 256, 3, stride=2, padding=1, groups=256),
    _conv("mobilenet.pw1x1.512@14", 256, 14, 512, 1),
    _conv("mobilenet.dw3x3.512@14", 512, 14, 512, 3, padding=1, groups=512),
    _conv("mobilenet.pw1x1.1024@7", 512, 7, 1024, 1),
]

_LARGE_KERNEL = [
    _conv("large.15x15.32@64", 32, 64, 32, 15, padding=7),
    _conv("large.31x31.32@64", 32, 64, 32, 31, padding=15),
]

# ResNet-20 for CIFAR-10 (He et al. 2016, section 4.2): 32x32 input, three stages of
# 16, 32 and 64 channels, identity shortcuts (option A: no 1x1 projections), a global
# average pool. Small maps and few channels: where a call's fixed costs decide.
_RESNET20 = [
    _conv("resnet20.conv3x3.16@32.in3", 3, 32, 16, 3, padding=1),
    _conv("resnet20.conv3x3.16@32", 16, 32, 16, 3, padding=1),
    _conv("resnet20.conv3x3s2.32@32", 16, 32, 32, 3, stride=2, padding=1),
    _conv("resnet20.conv3x3.32@16", 32, 16, 32, 3, padding=1),
    _conv("resnet20.conv3x3s2.64@16", 32, 16, 64, 3, stride=2, padding=1),
    _conv("resnet20.conv3x3.64@8", 64, 8, 64, 3, padding=1),
    _pool("resnet20.meanpool8x8.64@8", "mean", 64, 8, 8),
]

_QUICK = [
    _conv("quick.conv3x3.64@28", 64, 28, 64, 3, padding=1),
    _conv("quick.dw3x3.64@28", 64, 28, 64, 3, padding=1, groups=64),
    _conv("quick.pw1x1.128@14", 64, 14, 128, 1),
    _conv("quick.15x15.16@32", 16, 32, 16, 15, padding=7),
    _pool("quick.maxpool3x3s2.64@56", "max", 64, 56, 3, stride=2, padding=1),
    _pool("quick.meanpool2x2.64@28", "mean", 64, 28, 2),
]

SUITES: dict[str, list[Layer]] = {
    "quick": _QUICK,
    "lenet": _LENET,
    "resnet20": _RESNET20,
    "resnet18": _RESNET18,
    "vgg16": _VGG16,
    "mobilenet": _MOBILENET,
    "large-kernel": _LARGE_KERNEL,
}

#: Batch size of each suite when none is given: big enough to be a real workload, small
#: enough that a whole suite runs in minutes on 2 cores.
DEFAULT_BATCH: dict[str, int] = {
    "quick": 2,
    "lenet": 64,
    "resnet20": 32,
    "resnet18": 4,
    "vgg16": 2,
    "mobilenet": 4,
    "large-kernel": 4,
}


def suite(name: str, batch: int | None = None) -> list[Case]:
    """The layers of suite ``name`` as cases with ``batch`` images (default per suite)."""
    if name not in SUITES:
        raise ValueError(f"suite={name!r} is not one of {', '.join(SUITES)}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch={batch!r} must be a positive int")
    size = DEFAULT_BATCH[name] if batch is None else batch
    return [layer.case(size) for layer in SUITES[name]]


#: Layer classes, each judged against its own roof (DESIGN.md §5): compute-bound ones
#: against numpy's GEMM, memory-bound ones against a copy of the same bytes.
POOLING = "pooling"
MEMORY_BOUND_PREFIXES = ("depthwise", POOLING)


def layer_class(case: Case) -> str:
    """The class a layer is judged in: ``"1x1 s1"``, ``"3x3 s1"``, ``"strided kxk"`` (3x3
    stride 2 and the 7x7 stem), ``"depthwise 3x3 s2"``, ``"large kernel"``, ``"pooling"``.
    """
    if not case.is_conv:
        return POOLING
    k = case.w[2]
    stride = case.params.get("stride", 1)
    s = stride if isinstance(stride, int) else max(stride)
    if case.w[1] == 1 and case.params.get("groups", 1) == case.x[-3] > 1:
        return f"depthwise {k}x{k} s{s}"
    if k >= 11:
        return "large kernel"
    if k > 1 and s > 1:
        return "strided kxk"
    return f"{k}x{k} s{s}"


def is_memory_bound(case: Case) -> bool:
    """Depthwise convolution and pooling: about 2 FLOPs per byte moved."""
    return layer_class(case).startswith(MEMORY_BOUND_PREFIXES)
