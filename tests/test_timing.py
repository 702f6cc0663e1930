"""The interleaved block timing shared by autotune and ``fastcnn bench``."""

from __future__ import annotations

import itertools
import math
import threading
import time

import pytest

from fastcnn.timing import SETTLE_STEP_SECONDS, Samples, time_interleaved, typical_seconds


def _sleeper(seconds: float, log: list[str], name: str):
    def call() -> None:
        log.append(name)
        time.sleep(seconds)

    return call


def test_turns_interleave_and_each_times_runs_for_the_block_length():
    log: list[str] = []
    calls = {"a": _sleeper(0.002, log, "a"), "b": _sleeper(0.002, log, "b")}
    samples = time_interleaved(
        calls, rounds=2, seconds=0.0, max_rounds=2, block_seconds=0.01, settle_seconds=0.0
    )
    assert log[:2] == ["a", "b"]  # the warm-up calls, one each
    for name in "ab":
        s = samples[name]
        assert s.error is None and s.first >= 0.002
        # Two turns, each of 2 ms runs until they add up to 10 ms (several runs).
        assert len(s.turns) == 2 and min(s.times) >= 0.002
        for turn in s.turns:
            assert sum(turn) >= 0.01 and sum(turn[:-1]) < 0.01 and len(turn) >= 2
        # The warm-up, then per turn an untimed run and the timed ones.
        assert log.count(name) == 1 + len(s.turns) + len(s.times)
    # Rounds interleave: a's first turn ends before b's starts, then each again.
    turns = [name for i, name in enumerate(log[2:]) if i == 0 or log[2 + i - 1] != name]
    assert turns[:2] == ["a", "b"] and sorted(turns[2:]) == ["a", "b"]


def test_the_first_round_keeps_the_order_and_later_rounds_shuffle_it():
    log: list[str] = []
    calls = {name: _sleeper(0.0, log, name) for name in "abcd"}
    time_interleaved(
        calls, rounds=6, seconds=0.0, max_rounds=6, block_seconds=0.0, settle_seconds=0.0
    )
    turns = log[4::2]  # after the warm-ups, each turn is an untimed run and a timed one
    rounds = ["".join(turns[i : i + 4]) for i in range(0, len(turns), 4)]
    assert len(rounds) == 6 and all(sorted(r) == list("abcd") for r in rounds)
    assert rounds[0] == "abcd" and len(set(rounds)) > 2
    # The same orders in every run, so two runs of a benchmark time alike.
    log.clear()
    time_interleaved(
        calls, rounds=6, seconds=0.0, max_rounds=6, block_seconds=0.0, settle_seconds=0.0
    )
    assert ["".join(log[4::2][i : i + 4]) for i in range(0, 24, 4)] == rounds


def _gaps_between_runs(settle_seconds: float) -> tuple[list[float], Samples]:
    stamps: list[float] = []
    samples = time_interleaved(
        {"a": lambda: stamps.append(time.perf_counter())},
        rounds=3,
        seconds=0.0,
        max_rounds=3,
        block_seconds=0.0,
        settle_seconds=settle_seconds,
    )
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    # warm-up, pause, untimed run, timed run, pause, untimed run, ...: the pauses.
    return gaps[::2], samples


def test_a_turn_waits_for_spinning_threads_up_to_the_longest_pause():
    # A thread burning a core stands in for OpenBLAS's threads spinning after a GEMM.
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        gaps, samples = _gaps_between_runs(0.1)
    finally:
        stop.set()
        spinner.join()
    assert len(gaps) == 3 and min(gaps) >= 0.1
    assert max(samples["a"].times) < 0.1  # the pause is not in the times


def test_a_turn_in_an_idle_process_starts_after_one_short_step():
    gaps, _ = _gaps_between_runs(1.0)
    assert len(gaps) == 3
    assert all(SETTLE_STEP_SECONDS <= gap < 0.5 for gap in gaps)


def test_rounds_continue_until_each_call_has_spent_the_time_and_stop_at_the_most():
    samples = time_interleaved(
        {"slow": lambda: time.sleep(0.004), "fast": lambda: time.sleep(0.001)},
        rounds=1,
        seconds=0.03,
        max_rounds=100,
        block_seconds=0.0,
        settle_seconds=0.0,
    )
    fast = samples["fast"].times
    # The rounds go on for the fast call (about 30 of 1 ms) after the slow one's 30 ms.
    assert sum(fast) >= 0.03 and sum(fast[:-1]) < 0.03 and len(fast) < 100
    assert len(samples["slow"].times) == len(fast)
    capped = time_interleaved(
        {"a": lambda: None},
        rounds=1,
        seconds=10.0,
        max_rounds=5,
        block_seconds=0.0,
        settle_seconds=0.0,
    )
    assert len(capped["a"].times) == 5


@pytest.mark.parametrize(
    ("keep_within", "keep", "slow_turns"),
    [
        (2.0, (), 2),
        (math.inf, (), 6),
        (2.0, {"slow"}, 6),  # a yardstick takes every round however slow
    ],
)
def test_after_the_least_rounds_only_close_contenders_go_on(keep_within, keep, slow_turns):
    calls = {"slow": lambda: time.sleep(0.008), "fast": lambda: time.sleep(0.001)}
    samples = time_interleaved(
        calls,
        rounds=2,
        seconds=10.0,
        max_rounds=6,
        block_seconds=0.0,
        settle_seconds=0.0,
        keep_within=keep_within,
        keep=keep,
    )
    assert len(samples["fast"].turns) == 6
    assert len(samples["slow"].turns) == slow_turns
    typical = typical_seconds(samples)
    assert typical["slow"] / typical["fast"] > 3  # still compared over the shared rounds


@pytest.mark.parametrize(("fail_at", "timed"), [(1, 0), (3, 0), (6, 2)])
def test_a_failing_call_keeps_its_error_and_the_others_go_on(fail_at, timed):
    count = {"n": 0}

    def flaky() -> None:
        count["n"] += 1
        if count["n"] == fail_at:
            raise RuntimeError("out of luck")

    samples = time_interleaved(
        {"flaky": flaky, "fine": lambda: None},
        rounds=4,
        seconds=0.0,
        max_rounds=4,
        block_seconds=0.0,
        settle_seconds=0.0,
    )
    assert isinstance(samples["flaky"].error, RuntimeError)
    # Call 1 is the warm-up, then each round an untimed call and a timed one; the timed
    # runs before the failing call are kept.
    assert len(samples["flaky"].times) == timed
    assert (samples["flaky"].first is None) == (fail_at == 1)
    assert samples["fine"].error is None and len(samples["fine"].times) == 4


def test_typical_times_compare_contenders_round_by_round():
    # A slow phase (x3) falls on rounds 3-4 of "a" but already on round 2 of "b"; "b" is
    # twice "a" at any one moment, which pooled medians (2.0 vs 6.0) would not show.
    a = Samples(first=1.0, turns=[[1.0], [1.0], [3.0], [3.0]])
    b = Samples(first=1.0, turns=[[2.0], [6.0], [6.0], [6.0]])
    failed = Samples(first=1.0, turns=[[0.5]], error=RuntimeError("out of luck"))
    typical = typical_seconds({"a": a, "b": b, "failed": failed, "none": Samples()})
    assert set(typical) == {"a", "b"}
    assert typical["a"] == pytest.approx(2.0)  # the reference: its own median run
    assert typical["b"] / typical["a"] == pytest.approx(2.0)  # median of 2, 6, 2, 2
    assert typical_seconds({}) == {}
