"""Per-thread scratch arrays that backends reuse from call to call.

Fresh multi-megabyte allocations come back from the operating system as untouched pages,
and the page faults of filling them made the same layer up to 2.4x slower from one process
(or one allocation pattern) to the next. Each thread keeps one buffer per named slot, as
large as the largest request so far (backends bound their requests by chunking), so a
thread's repeated calls touch memory that is already mapped.
"""

from __future__ import annotations

import threading

import numpy as np

_buffers = threading.local()


def scratch(slot: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype`` in this thread's buffer ``slot``.

    The array is valid until this thread next asks for the same slot; a backend must not
    return it (or a view of it) to its caller.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = getattr(_buffers, slot, None)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(nbytes, dtype=np.uint8)
        setattr(_buffers, slot, buf)
    return buf[:nbytes].view(dtype).reshape(shape)
