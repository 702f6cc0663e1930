"""Window geometry and work splitting shared by the convolution and pooling kernels.

Numba's on-disk cache checks only the file that holds a cached kernel, so after editing
this module clear the package's ``__pycache__`` (or touch pool.py).
"""

from __future__ import annotations

from fastcnn.spec import ConvSpec, PoolSpec

#: A kernel's work items are split into at most this many tasks, each allocating its
#: scratch once.
MAX_TASKS = 256


def geometry(spec: ConvSpec | PoolSpec) -> tuple[int, ...]:
    """Stride, dilation, then top and left padding: the kernels' geometry arguments."""
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    return sh, sw, dh, dw, spec.padding[0], spec.padding[2]
