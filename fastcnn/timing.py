"""Timing several calls against each other on a shared, noisy machine.

Used by autotune (which backend is fastest for this call?) and by ``fastcnn bench``
(how much faster?). Both need the same two precautions:

- Interleaving. The calls take turns, round after round, so a burst of load from another
  tenant slows every contender alike instead of whichever was being timed: timed one
  after another, the same backend on the same layer read 1.0x and 1.7x of itself.
- Blocks. Each turn is a block of runs lasting at least ``BLOCK_SECONDS`` that opens with
  an untimed run. OpenBLAS's idle threads spin for about 0.1 s after a GEMM, and a Numba
  kernel sharing the cores with them ran 1.6x slower, so a block's later runs are the
  ones that show a contender on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The least duration of one contender's turn (see the module docstring).
BLOCK_SECONDS = 0.12


@dataclass
class Samples:
    """One contender's measurements: the first (warm-up) call and the timed runs."""

    first: float | None = None
    times: list[float] = field(default_factory=list)
    error: Exception | None = None


def time_interleaved(
    calls: Mapping[str, Callable[[], Any]],
    *,
    rounds: int,
    seconds: float,
    max_rounds: int,
    block_seconds: float = BLOCK_SECONDS,
) -> dict[str, Samples]:
    """Time each call in interleaved rounds of blocks.

    Every call first runs once on its own (JIT compilation and caches stay out of the
    timed runs; its duration is ``Samples.first``). Then at least ``rounds`` rounds run,
    and more while less than ``seconds`` have been spent in all, up to ``max_rounds``. A
    call that raises is dropped from later rounds with the exception kept in
    ``Samples.error``.

    Parameters
    ----------
    calls : mapping of str to callable
        The contenders, by name; each is called without arguments.
    rounds, max_rounds : int
        The least and the most rounds.
    seconds : float
        Keep adding rounds until this much time has been spent on the blocks.
    block_seconds : float
        The least duration of one contender's block.

    Returns
    -------
    dict of str to Samples
        The measurements, by name, in the order of ``calls``.
    """
    samples = {name: Samples() for name in calls}
    live = []
    for name, call in calls.items():
        try:
            start = time.perf_counter()
            call()
            samples[name].first = time.perf_counter() - start
            live.append(name)
        except Exception as exc:  # reported in the samples; the others go on
            samples[name].error = exc
    spent, done = 0.0, 0
    while live and (done < rounds or (spent < seconds and done < max_rounds)):
        for name in list(live):
            try:
                spent += _block(calls[name], samples[name], block_seconds)
            except Exception as exc:
                samples[name].error = exc
                live.remove(name)
        done += 1
    return samples


def _block(call: Callable[[], Any], samples: Samples, block_seconds: float) -> float:
    """One turn: an untimed opener, then timed runs until the block is long enough.

    The opener is skipped for a call that outlasts a block on its own: whatever
    the previous contender left spinning has settled by the end of its first run.
    """
    begin = time.perf_counter()
    shortest = min(samples.times, default=samples.first or 0.0)
    if shortest < block_seconds:
        call()
    while True:
        start = time.perf_counter()
        call()
        end = time.perf_counter()
        samples.times.append(end - start)
        if end - begin >= block_seconds:
            return end - begin
