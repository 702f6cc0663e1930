"""Window geometry and work splitting shared by the convolution and pooling kernels.

Numba's on-disk cache checks only the file that holds a cached kernel, so after editing
this module clear the package's ``__pycache__`` (or touch pool.py).
"""

from __future__ import annotations

from numba import njit

from fastcnn.spec import ConvSpec, PoolSpec

#: A kernel's work items are split into at most this many tasks, each allocating its
#: scratch once.
MAX_TASKS = 256


def column_range(off: int, stride: int, width: int, out_width: int) -> tuple[int, int]:
    """Output columns ``ow`` whose tap column ``ow*stride + off`` lies inside ``[0, width)``."""
    lo = max(0, -(off // stride))
    hi = min(out_width, (width - 1 - off) // stride + 1)
    return lo, hi


#: :func:`column_range` inlined into the kernels that clip each tap's columns.
column_range_jit = njit(inline="always", cache=True)(column_range)


def geometry(spec: ConvSpec | PoolSpec) -> tuple[int, ...]:
    """Stride, dilation, then top and left padding: the kernels' geometry arguments."""
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    return sh, sw, dh, dw, spec.padding[0], spec.padding[2]
