"""Timing several calls against each other on a shared, noisy machine.

Used by autotune (which backend is fastest for this call?) and by ``fastcnn bench``
(how much faster?). Both need the same precautions:

- Interleaving. The calls take turns, round after round, so a burst of load from another
  tenant slows every contender alike instead of whichever was being timed.
- Settling. Each turn starts once the process is idle, after at most ``SETTLE_SECONDS``.
  OpenBLAS's idle threads spin after a GEMM (2**28 clock ticks by default, 0.1 s at
  2.6 GHz), and a Numba kernel sharing the cores with them runs slower for as long:
  without the pause, whichever contender followed im2col was measured slower than
  itself. The pause watches the process's CPU time rather than waiting a fixed time, so
  a contender that leaves no spinning threads costs the next one a single short step.
- Blocks. Each turn then makes one untimed run and times runs for at least
  ``BLOCK_SECONDS``, so a sub-millisecond call gets many tries at a quiet moment. The
  untimed run takes what the previous contender left behind: right after a Numba kernel,
  or after a pause, fresh memory is slow to come by and a first call can take several
  times as long as the next.
- Shuffling. The first round takes the given order, later ones a shuffled one (the same
  every run), so no contender always follows the same other: what one leaves behind can
  slow the next for a while even once the process is idle.
- Racing. Once the least rounds (``MIN_ROUNDS``) are done, contenders far slower than
  the fastest (``keep_within``) stop, and the rest of the time goes to rounds among the
  close ones, whose order is still in doubt, rather than to a slow column whose ratio is
  already plain.
- Pairing. :func:`typical_seconds` compares the contenders round by round, not pooled
  over the whole run: the machine's slow phases last seconds, about a round, and fall on
  different shares of each contender's turns; paired, a phase slows both sides of a ratio.

The measurements behind these rules are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The least rounds of every timing, autotune's and the bench's: short turns in more
#: rounds, so that a slow phase of the machine lasting a second falls on one or two of a
#: contender's turns, not on most of them. Contenders stop racing only after these.
MIN_ROUNDS = 4
#: The longest pause before each turn, and the least time of timed runs in it.
SETTLE_SECONDS = 0.25
BLOCK_SECONDS = 0.03
#: The pause ends after the first step of ``SETTLE_STEP_SECONDS`` in which the process
#: used less than ``IDLE_CORES`` cores: a spinning thread uses one, a quiet process 0.01.
SETTLE_STEP_SECONDS = 0.01
IDLE_CORES = 0.25


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
    keep_within: float = math.inf,
    keep: Collection[str] = (),
) -> dict[str, Samples]:
    """Time each call in interleaved rounds of blocks.

    Every call first runs once on its own (JIT compilation and caches stay out of the
    timed runs; its duration is ``Samples.first``). Then at least ``rounds`` rounds run
    (the first in the given order, the others shuffled), and more, up to ``max_rounds``,
    until every call still taking turns has spent ``seconds`` on timed runs. After
    ``rounds`` rounds, a call slower than ``keep_within`` times the fastest (so far,
    compared as :func:`typical_seconds` does) takes no more turns: the time goes to the
    close contenders, whose order is still in doubt. A call that raises is dropped
    from later rounds with the exception kept in ``Samples.error``.

    Parameters
    ----------
    calls : mapping of str to callable
        The contenders, by name; each is called without arguments.
    rounds, max_rounds : int
        The least and the most rounds.
    seconds : float
        Keep adding rounds until each call has spent this long on timed runs.
    block_seconds : float
        The least time of timed runs in one contender's turn.
    settle_seconds : float
        The longest pause before each turn; it ends as soon as the process is idle.
    keep_within : float
        After ``rounds`` rounds, only calls within this factor of the fastest go on.
    keep : collection of str
        Calls that take every turn whatever their time (a yardstick whose rate the
        others are judged by: it is timed in the same rounds as they are).

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
    spent = dict.fromkeys(calls, 0.0)  # on timed runs, by call
    shuffler = random.Random(0)  # the same orders every run
    done = 0
    while live and (done < rounds or (done < max_rounds and min(spent[n] for n in live) < seconds)):
        order = list(live)
        if done:
            shuffler.shuffle(order)
        for name in order:
            try:
                _settle(settle_seconds)
                turn: list[float] = []
                samples[name].turns.append(turn)
                spent[name] += _block(calls[name], turn, block_seconds)
            except Exception as exc:
                samples[name].error = exc
                live.remove(name)
        done += 1
        if done >= rounds and len(live) > 1 and keep_within < math.inf:
            typical = typical_seconds({name: samples[name] for name in live})
            fastest = min(typical.values())
            live = [n for n in live if n in keep or typical[n] <= keep_within * fastest]
    return samples


def _settle(limit: float) -> None:
    """Sleep until the process is idle (its threads done spinning), at most ``limit``."""
    waited = 0.0
    while waited < limit:
        cpu, start = time.process_time(), time.perf_counter()
        time.sleep(min(SETTLE_STEP_SECONDS, limit - waited))
        step = time.perf_counter() - start
        waited += step
        if time.process_time() - cpu < IDLE_CORES * step:
            return


def _block(call: Callable[[], Any], times: list[float], block_seconds: float) -> float:
    """An untimed run, then timed runs until they add up to ``block_seconds`` (at least
    one); their sum."""
    call()
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

    The reference is the contender with the most turns and, among those, the most timed
    runs (the fastest: its median is the steadiest). For every other contender,
    the ratio of its turn's median run to the reference's in the same round; the median
    of those ratios times the reference's median run is its typical time. Contenders
    with an error or no timed run are left out.
    """
    live = {name: s for name, s in samples.items() if s.error is None and s.turns}
    if not live:
        return {}
    reference = max(live, key=lambda name: (len(live[name].turns), len(live[name].times)))
    base = [statistics.median(turn) for turn in live[reference].turns]
    scale = statistics.median(live[reference].times)
    return {
        name: scale
        * statistics.median(
            statistics.median(turn) / ref for turn, ref in zip(s.turns, base, strict=False)
        )
        for name, s in live.items()
    }
