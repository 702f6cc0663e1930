"""Process-wide performance knobs that backends read at call time.

They change speed and memory, never results, so they live here rather than in the specs.
"""

from __future__ import annotations

import os
import threading

#: Default scratch-memory limit for a backend that lowers or buffers data (im2col's
#: window matrix): big enough for a whole ResNet-18 layer at batch 8 in float32, small
#: enough to leave room on a laptop.
DEFAULT_WORKSPACE_BYTES = 256 * 2**20

_lock = threading.Lock()
_workspace_bytes = DEFAULT_WORKSPACE_BYTES
_num_threads: int | None = None


def set_workspace_limit(nbytes: int) -> None:
    """Cap the scratch memory a backend may allocate for one call, in bytes.

    Backends that need more process the batch (or the channels) in chunks.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 1:
        raise ValueError(f"nbytes={nbytes!r} must be a positive int")
    global _workspace_bytes
    with _lock:
        _workspace_bytes = nbytes


def get_workspace_limit() -> int:
    """The scratch-memory limit in bytes (``DEFAULT_WORKSPACE_BYTES`` unless set)."""
    return _workspace_bytes


def set_num_threads(n: int | None) -> int | None:
    """Threads a parallel backend may use; ``None`` means one per available core.

    Returns the previous setting (``None`` or an int), so that it can be restored.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n={n!r} must be a positive int or None")
    global _num_threads
    with _lock:
        previous, _num_threads = _num_threads, n
    return previous


def get_num_threads() -> int:
    """Threads a parallel backend should use now."""
    if _num_threads is not None:
        return _num_threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
