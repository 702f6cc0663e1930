"""The peer column of ``fastcnn bench --peer torch``: the same layer in PyTorch (CPU).

PyTorch is never a dependency: without it the column says so. Its backward pass is timed
through autograd, which runs the forward too, so the row shows autograd's time minus
torch's own forward time, measured in the same rounds as a helper column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastcnn.bench.rows import PEER, BenchRow, Timing
from fastcnn.cases import Case
from fastcnn.config import get_num_threads
from fastcnn.ops import is_backward

#: A helper column: torch's forward alone, subtracted from its autograd time.
PEER_FORWARD = "torch forward"
NOT_INSTALLED = "torch is not installed (pip install torch)"
NO_EQUIVALENT = "no torch equivalent"
MINUS_FORWARD = "autograd time minus its forward"


def torch_version() -> str | None:
    """The installed PyTorch's version, or None."""
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)


def _conv_forward(case: Case, arrays: dict, x: Any) -> tuple[Callable, tuple]:
    import torch
    import torch.nn.functional as F

    params = case.call_params()
    padding = params.get("padding", 0)
    if isinstance(padding, tuple) and len(padding) == 4:
        top, bottom, left, right = padding  # torch pads only symmetrically: pad first
        x = F.pad(x, (left, right, top, bottom))
        padding = 0
    w = torch.from_numpy(arrays["w"])
    b = torch.from_numpy(arrays["b"]) if "b" in arrays else None
    kwargs = dict(
        stride=params.get("stride", 1),
        padding=padding,
        dilation=params.get("dilation", 1),
        groups=params.get("groups", 1),
    )

    def forward(xx: Any, ww: Any) -> Any:
        return F.conv2d(xx, ww, b, **kwargs)

    return forward, (x, w)


def _pool_forward(case: Case, x: Any) -> tuple[Callable, tuple] | None:
    import torch.nn.functional as F

    pools = {"max": F.max_pool2d, "mean": F.avg_pool2d}  # torch has no min pooling
    pool = pools.get(case.mode)
    if pool is None:
        return None
    kernel, params = case.params["kernel"], case.call_params()

    def forward(xx: Any) -> Any:
        return pool(xx, kernel, **params)

    return forward, (x,)


def torch_call(case: Case, op: str, arrays: dict, grad_y: np.ndarray) -> Callable | None:
    """The same layer in torch.nn.functional (CPU), or None where it has no equivalent."""
    import torch

    torch.set_num_threads(get_num_threads())
    x = torch.from_numpy(np.ascontiguousarray(arrays["x"]))
    found = _conv_forward(case, arrays, x) if case.is_conv else _pool_forward(case, x)
    if found is None:
        return None
    forward, inputs = found
    if not is_backward(op):
        return lambda: forward(*inputs)
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    gy = torch.from_numpy(grad_y)

    def forward_backward() -> Any:
        return torch.autograd.grad(forward(*leaves), leaves, gy)

    return forward_backward


def peer_calls(case: Case, op: str, arrays: dict, grad_y: np.ndarray) -> dict[str, Callable]:
    """The peer's columns: torch's call, and for a backward its forward alone as well."""
    if torch_version() is None:
        return {}
    call = torch_call(case, op, arrays, grad_y)
    if call is None:
        return {}
    forward = torch_call(case, case.op, arrays, grad_y) if is_backward(op) else None
    return {PEER: call} if forward is None else {PEER: call, PEER_FORWARD: forward}


def finish_peer(row: BenchRow) -> None:
    """Put why there is no peer time in the row, or its backward's time alone."""
    if torch_version() is None:
        row.timings[PEER] = Timing(note=NOT_INSTALLED)
        return
    if PEER not in row.timings:
        row.timings[PEER] = Timing(note=NO_EQUIVALENT)
        return
    forward = row.timings.pop(PEER_FORWARD, None)
    timing = row.timings[PEER]
    if forward is not None and forward.seconds is not None and timing.seconds is not None:
        backward = timing.seconds - forward.seconds
        timing.best = None
        if backward > 0:
            timing.seconds, timing.note = backward, MINUS_FORWARD
        else:
            # Where torch's forward takes several times its backward (its 2x2 pooling:
            # 6-7 ms against 0.9), the forward's noise can exceed the difference. No
            # time is better than a made-up one.
            timing.note = (
                f"not measured: autograd took {timing.seconds * 1e3:.3g} ms, its forward "
                f"alone {forward.seconds * 1e3:.3g} ms"
            )
            timing.seconds = None
