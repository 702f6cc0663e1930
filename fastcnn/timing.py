"""Timing several calls against each other on a shared, noisy machine.

Used by autotune (which backend is fastest for this call?) and by ``fastcnn bench``
(how much faster?). Both need the same precautions:

- Interleaving. The calls take turns, round after round, so a burst of load from another
  tenant slows every contender alike instead of whichever was being timed: timed one
  after another, the same backend on the same layer read 1.0x and 1.7x of itself.
- Settling. Each turn starts with a pause of ``SETTLE_SECONDS``. OpenBLAS's idle
  threads spin after a GEMM (2**28 clock ticks by default, 0.1 s at 2.6 GHz), and a Numba
  kernel sharing the two cores with them ran 1.5x slower for as long: without the pause,
  whichever contender followed im2col was measured slower than itself.
- Blocks. Each turn then times runs for at least ``BLOCK_SECONDS``, so a sub-millisecond
  call gets many tries at a quiet moment.
- Pairing. :func:`typical_seconds` compares the contenders round by round, not pooled
  over the whole run: the machine's slow phases last seconds, about a round, and fall on
  different shares of each contender's turns. Pooled, one backend timed in two columns
  of a row read 0.63 and 0.88 ms (medians); paired, a phase slows both sides of a ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The pause before each turn, and the least time of timed runs in it (see above).
SETTLE_SECONDS = 0.12
BLOCK_SECONDS = 0.06


@dataclass
class Samples:
    """One contender's measurements: the first (warm-up) call and the timed runs, by turn."""

    first: float | None = None
    turns: list[list[float]] = field(default_factory=list)
    error: Exception | None = None

    @property
    def times(self) -> list[float]:
        """Every timed run."""
        return [t for turn in self.turns for t in turn]


def time_interleaved(
    calls: Mapping[str, Callable[[], Any]],
    *,
    rounds: int,
    seconds: float,
    max_rounds: int,
    block_seconds: float = BLOCK_SECONDS,
    settle_seconds: float = SETTLE_SECONDS,
) -> dict[str, Samples]:
    """Time each call in interleaved rounds of blocks.

    Every call first runs once on its own (JIT compilation and caches stay out of the
    timed runs; its duration is ``Samples.first``). Then at least ``rounds`` rounds run,
    and more while less than ``seconds`` have been spent on timed runs in all, up to
    ``max_rounds``. A call that raises is dropped from later rounds with the exception
    kept in ``Samples.error``.

    Parameters
    ----------
    calls : mapping of str to callable
        The contenders, by name; each is called without arguments.
    rounds, max_rounds : int
        The least and the most rounds.
    seconds : float
        Keep adding rounds until this much time has been spent on timed runs.
    block_seconds : float
        The least time of timed runs in one contender's turn.
    settle_seconds : float
        The pause before each turn.

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
                time.sleep(settle_seconds)
                turn: list[float] = []
                samples[name].turns.append(turn)
                spent += _block(calls[name], turn, block_seconds)
            except Exception as exc:
                samples[name].error = exc
                live.remove(name)
        done += 1
    return samples


def _block(call: Callable[[], Any], times: list[float], block_seconds: float) -> float:
    """Timed runs until they add up to ``block_seconds`` (at least one); their sum."""
    spent = 0.0
    while True:
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
        if spent >= block_seconds:
            return spent


def typical_seconds(samples: Mapping[str, Samples]) -> dict[str, float]:
    """Each contender's typical time, from its ratios to a reference round by round.

    The reference is the first contender with the most turns. For every other contender,
    the ratio of its turn's median run to the reference's in the same round; the median
    of those ratios times the reference's median run is its typical time. Contenders
    with an error or no timed run are left out.
    """
    live = {name: s for name, s in samples.items() if s.error is None and s.turns}
    if not live:
        return {}
    reference = max(live, key=lambda name: len(live[name].turns))
    base = [statistics.median(turn) for turn in live[reference].turns]
    scale = statistics.median(live[reference].times)
    return {
        name: scale
        * statistics.median(
            statistics.median(turn) / ref for turn, ref in zip(s.turns, base, strict=False)
        )
        for name, s in live.items()
    }
