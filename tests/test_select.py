"""backend="auto": vetoes before speed, estimates, autotune and its cache file, explain."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time

import numpy as np
import pytest

import fastcnn
from fastcnn import select, tuning_file
from fastcnn.registry import BackendBase, get_backend
from fastcnn.spec import make_pool_spec
from fastcnn.timing import MIN_ROUNDS


class Fake(BackendBase):
    """Delegates to naive; claims to be absurdly fast, unless it cannot run the call."""

    ops = frozenset({"conv2d", "pool2d"})
    summary = "a fake for selection tests"

    def __init__(self, name, *, no_dilation=False, spreads_nan=False, estimate=1e-12):
        self.name = name
        self.no_dilation = no_dilation
        self.keeps_nonfinite_local = not spreads_nan
        self.estimate = estimate
        self.calls = 0

    def supports(self, op, spec):
        if self.no_dilation and spec.dilation != (1, 1):
            return "it has no dilation"
        return None

    def estimate_seconds(self, op, spec):
        return self.estimate

    def conv2d(self, x, w, b, spec):
        self.calls += 1
        return get_backend("naive").conv2d(x, w, b, spec)

    def pool2d(self, x, spec):
        self.calls += 1
        return get_backend("naive").pool2d(x, spec)


@pytest.fixture
def fakes():
    made = []

    def register(*args, **kwargs):
        backend = Fake(*args, **kwargs)
        fastcnn.register_backend(backend)
        made.append(backend)
        return backend

    yield register
    for backend in made:
        fastcnn.unregister_backend(backend.name)
    select.clear_autotune_cache()
    select.set_autotune(False)


X = np.random.default_rng(0).standard_normal((1, 2, 9, 9))
W = np.random.default_rng(1).standard_normal((2, 2, 3, 3))


def test_auto_takes_the_lowest_estimate(fakes):
    fast = fakes("zz_fast")
    fastcnn.conv2d(X, W, backend="auto")
    assert fast.calls == 1
    assert select.explain("conv2d", X.shape, W.shape, dtype="float64").choice == "zz_fast"


def test_auto_never_picks_a_backend_that_cannot_run_the_call(fakes):
    fast = fakes("zz_nodilation", no_dilation=True)
    y = fastcnn.conv2d(X, W, dilation=2, padding=2, backend="auto")
    assert fast.calls == 0
    np.testing.assert_allclose(y, fastcnn.conv2d(X, W, dilation=2, padding=2, backend="naive"))
    why = select.explain("conv2d", X.shape, W.shape, dilation=2, padding=2)
    assert why.choice != "zz_nodilation" and "no dilation" in why.vetoed["zz_nodilation"]
    assert "cannot (it has no dilation)" in str(why)


def test_auto_avoids_nan_spreading_backends_only_on_non_finite_input(fakes):
    fast = fakes("zz_spreads", spreads_nan=True)
    x = X.copy()
    fastcnn.conv2d(x, W, backend="auto")
    assert fast.calls == 1
    x[0, 0, 4, 4] = np.nan
    y = fastcnn.conv2d(x, W, backend="auto")
    assert fast.calls == 1
    assert np.isnan(y).sum() == 2 * 9  # local, as the reference keeps it
    assert "NaN" in select.explain("conv2d", X.shape, W.shape, finite=False).vetoed["zz_spreads"]


def test_only_incapable_backends_means_a_clear_error():
    with pytest.raises(fastcnn.BackendUnsupported, match="no available backend"):
        select.choose("conv3d", None, finite=lambda: True)


def test_autotune_measures_then_remembers_and_round_trips(fakes, tmp_path):
    slow = fakes("zz_liar", estimate=1e-12)  # claims fast, is naive underneath
    with select.autotuning():
        y = fastcnn.max_pool2d(X, 3, backend="auto")
    cache = select.autotune_cache()
    assert len(cache) == 1
    (((op, spec), winner),) = cache.items()
    assert op == "pool2d" and spec.kernel == (3, 3)
    assert winner in {b.name for b in fastcnn.registry.available_backends()}
    np.testing.assert_array_equal(y, fastcnn.max_pool2d(X, 3, backend="naive"))
    calls = slow.calls
    with select.autotuning():
        fastcnn.max_pool2d(X, 3, backend="auto")
    assert slow.calls == calls + (winner == "zz_liar")  # no re-timing the second time
    path = tmp_path / "tune.json"
    assert fastcnn.save_autotune_cache(path) == 1
    select.clear_autotune_cache()
    assert fastcnn.load_autotune_cache(path) == 1
    assert select.autotune_cache() == cache
    assert select.explain("max_pool2d", X.shape, kernel_size=3, dtype="float64").tuned == winner


def test_a_tuned_winner_runs_without_a_finiteness_pass_unless_it_spreads_nan(fakes, monkeypatch):
    spreader = fakes("zz_spreads", spreads_nan=True)
    keeper = fakes("zz_keeps", estimate=1.0)
    passes = []
    monkeypatch.setattr(fastcnn.api, "_all_finite", lambda *a: passes.append(1) or True)
    with select.autotuning():
        fastcnn.conv2d(X, W, backend="auto")  # times the candidates
    ((key, _),) = select.autotune_cache().items()
    with select._lock:
        select._tuned[key] = "zz_keeps"  # as if it had won
    keeper.calls = spreader.calls = 0
    passes.clear()
    with select.autotuning():
        fastcnn.conv2d(X, W, backend="auto")
        assert (keeper.calls, spreader.calls, passes) == (1, 0, [])  # nothing timed or scanned
        with select._lock:
            select._tuned[key] = "zz_spreads"
        fastcnn.conv2d(X, W, backend="auto")
        assert (spreader.calls, len(passes)) == (1, 1)  # the winner spreads NaN: one scan
        monkeypatch.setattr(fastcnn.api, "_all_finite", lambda *a: False)
        fastcnn.conv2d(X, W, backend="auto")  # NaN input: the best estimate keeping it local
    assert spreader.calls == 1  # not run on the NaN input
    assert select.autotune_cache()[key] == "zz_spreads"  # not re-tuned on a NaN input


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "Expecting"),
        ('{"format": "something-else"}', "not a fastcnn autotune cache"),
        ('{"format": "fastcnn-autotune", "version": 99}', "version"),
        (
            '{"format": "fastcnn-autotune", "version": 1, "fingerprint": {"machine": "vax"}}',
            "another machine",
        ),
        ("[]", "not a fastcnn autotune cache"),
    ],
)
def test_corrupt_or_foreign_cache_is_rejected_and_ignored(tmp_path, content, reason):
    path = tmp_path / "tune.json"
    path.write_text(content)
    select.clear_autotune_cache()
    with pytest.warns(UserWarning, match=reason):
        assert fastcnn.load_autotune_cache(path) == 0
    assert select.autotune_cache() == {}
    with pytest.warns(UserWarning, match="ignoring"):
        assert fastcnn.load_autotune_cache(tmp_path / "missing.json") == 0


def _cache_with(entries) -> dict:
    return {
        "format": "fastcnn-autotune",
        "version": 1,
        "fingerprint": tuning_file.fingerprint(),
        "entries": entries,
    }


GOOD_SPEC = dataclasses.asdict(
    make_pool_spec(np.zeros((1, 2, 6, 6)), "max", 2, dtype=np.dtype("float64"))
)


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        (
            [{"op": "conv2d", "kind": "ConvSpec", "spec": {"bogus": 1}, "backend": "naive"}],
            "fields",
        ),
        ([{"op": "pool2d", "kind": "PoolSpec", "spec": GOOD_SPEC, "backend": "gone"}], "'gone'"),
        ([{"op": "blur", "kind": "PoolSpec", "spec": GOOD_SPEC, "backend": "naive"}], "'blur'"),
        ([{"op": "pool2d", "kind": "Spec", "spec": GOOD_SPEC, "backend": "naive"}], "kind"),
        ([{"op": "pool2d", "kind": "PoolSpec", "spec": [], "backend": "naive"}], "not an object"),
        (
            [
                {
                    "op": "pool2d",
                    "kind": "PoolSpec",
                    "spec": {**GOOD_SPEC, "batch": "1"},
                    "backend": "naive",
                }
            ],
            "batch='1'",
        ),
        (
            [
                {
                    "op": "pool2d",
                    "kind": "PoolSpec",
                    "spec": {**GOOD_SPEC, "kernel": [2]},
                    "backend": "naive",
                }
            ],
            "kernel",
        ),
        (
            [
                {
                    "op": "pool2d",
                    "kind": "PoolSpec",
                    "spec": {**GOOD_SPEC, "mode": "avg"},
                    "backend": "naive",
                }
            ],
            "mode='avg'",
        ),
        (
            [
                {
                    "op": "pool2d",
                    "kind": "PoolSpec",
                    "spec": {**GOOD_SPEC, "kernel": [[1], 2]},
                    "backend": "naive",
                }
            ],
            "kernel",
        ),
        (["pool2d"], "entry 0: is not an object"),
        ({"a": 1}, "not a list"),
    ],
)
def test_bad_entries_in_a_right_looking_cache_are_rejected(tmp_path, entries, reason):
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(_cache_with(entries)))
    select.clear_autotune_cache()
    with pytest.warns(UserWarning, match=re.escape(reason)):
        assert fastcnn.load_autotune_cache(path) == 0
    assert select.autotune_cache() == {}


def test_a_right_entry_is_taken_and_a_deeply_nested_file_is_ignored(tmp_path):
    path = tmp_path / "tune.json"
    good = {"op": "pool2d", "kind": "PoolSpec", "spec": GOOD_SPEC, "backend": "naive"}
    path.write_text(json.dumps(_cache_with([good])))
    select.clear_autotune_cache()
    assert fastcnn.load_autotune_cache(path) == 1
    ((key, name),) = select.autotune_cache().items()
    assert key[0] == "pool2d" and key[1].kernel == (2, 2) and name == "naive"
    select.clear_autotune_cache()
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.warns(UserWarning, match="nested too deeply"):
        assert fastcnn.load_autotune_cache(path) == 0
    assert select.autotune_cache() == {}


def test_autotune_from_many_threads_at_once(fakes):
    results = []
    barrier = threading.Barrier(6)

    def worker():
        barrier.wait()
        with select.autotuning():
            results.append(fastcnn.conv2d(X, W, padding=1, backend="auto"))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    for r in results:
        np.testing.assert_allclose(r, results[0], rtol=1e-12)
    assert len(select.autotune_cache()) == 1


def test_explain_is_readable():
    text = str(select.explain("conv2d", (8, 64, 56, 56), (64, 64, 3, 3), padding=1))
    assert "auto picks" in text and "ms estimated" in text
    with pytest.raises(ValueError, match="op="):
        select.explain("conv3d", (1, 1, 4, 4))


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "error", "match"),
    [
        (np.zeros((2, 3, 8, 8)), (4, 3, 3, 3), TypeError, "x_shape must be a tuple of ints"),
        ((2, 3, 8, 8), np.zeros((4, 3, 3, 3)), TypeError, "w_shape must be a tuple of ints"),
        ((2, 3.5, 8, 8), (4, 3, 3, 3), TypeError, "x_shape must be a tuple of ints"),
        ("2, 3, 8, 8", (4, 3, 3, 3), TypeError, "got str"),
        ((2, -3, 8, 8), (4, 3, 3, 3), ValueError, "x_shape must have no negative sizes"),
    ],
)
def test_explain_refuses_what_is_not_a_shape(x_shape, w_shape, error, match):
    with pytest.raises(error, match=match):
        select.explain("conv2d", x_shape, w_shape)


def test_explain_takes_shapes_as_lists_and_numpy_ints():
    shape = [np.int64(n) for n in X.shape]
    assert (
        select.explain("conv2d", shape, list(W.shape)).spec
        == select.explain("conv2d", X.shape, W.shape).spec
    )


def test_autotuning_blocks_are_local_to_their_thread():
    seen = []
    with select.autotuning():
        worker = threading.Thread(target=lambda: seen.append(select.autotune_enabled()))
        worker.start()
        worker.join()
        assert select.autotune_enabled()
    assert seen == [False] and not select.autotune_enabled()
    select.set_autotune(True)
    try:
        with select.autotuning(False):
            assert not select.autotune_enabled()
        assert select.autotune_enabled()
    finally:
        select.set_autotune(False)


def test_the_remembered_ranking_follows_registrations():
    spec = select.explain("conv2d", X.shape, W.shape, dtype="float64").spec
    before = select.choose("conv2d", spec, finite=lambda: True)
    assert select.choose("conv2d", spec, finite=lambda: True) is before  # remembered
    fast = Fake("zz_new")
    fastcnn.register_backend(fast)
    try:
        assert select.choose("conv2d", spec, finite=lambda: True) is fast
    finally:
        fastcnn.unregister_backend("zz_new")
    assert select.choose("conv2d", spec, finite=lambda: True) is before


def test_autotune_times_the_candidates_in_interleaved_turns(monkeypatch):
    monkeypatch.setattr(select, "AUTOTUNE_MIN_SECONDS", 0.0)
    monkeypatch.setattr(select, "AUTOTUNE_SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(select, "AUTOTUNE_BLOCK_SECONDS", 0.0)  # a turn: two runs
    calls = []
    backends = [Fake("zz_a"), Fake("zz_b")]
    seconds = select._time_all(lambda b: calls.append(b.name), backends)
    assert set(seconds) == {"zz_a", "zz_b"} and all(s < 1 for s in seconds.values())
    assert calls[:2] == ["zz_a", "zz_b"]  # one warm-up call each
    # Interleaved rounds; each turn an untimed run and a timed one.
    rounds = [calls[i : i + 4] for i in range(2, len(calls), 4)]
    assert len(rounds) == MIN_ROUNDS
    assert all(sorted(r) == ["zz_a", "zz_a", "zz_b", "zz_b"] and r[0] == r[1] for r in rounds)
    calls.clear()
    monkeypatch.setattr(select, "AUTOTUNE_BLOCK_SECONDS", 0.02)
    select._time_all(lambda b: calls.append(b.name), backends)
    assert calls.count("zz_a") > 3 * MIN_ROUNDS  # runs repeat for 20 ms a turn


def test_autotune_never_picks_a_candidate_that_fails_on_the_real_input(monkeypatch):
    monkeypatch.setattr(select, "AUTOTUNE_MIN_SECONDS", 0.0)
    monkeypatch.setattr(select, "AUTOTUNE_SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(select, "AUTOTUNE_BLOCK_SECONDS", 0.0)
    runs = {"zz_a": 0}

    def run(backend):
        if backend.name == "zz_a":
            runs["zz_a"] += 1
            if runs["zz_a"] == 2:  # fine at warm-up, fails in the first round
                raise MemoryError

    seconds = select._time_all(run, [Fake("zz_a"), Fake("zz_b")])
    assert seconds["zz_a"] == float("inf") and seconds["zz_b"] < 1


@pytest.mark.parametrize(
    ("favourite_ms", "other_ms", "winner"),
    [(2.0, 2.0, "zz_z"), (2.0, 1.9, "zz_z"), (4.0, 2.0, "zz_a")],
)
def test_autotune_keeps_the_model_pick_unless_another_is_clearly_faster(
    monkeypatch, favourite_ms, other_ms, winner
):
    monkeypatch.setattr(select, "AUTOTUNE_SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(select, "AUTOTUNE_MIN_SECONDS", 0.02)
    favourite, other = Fake("zz_z", estimate=1.0), Fake("zz_a", estimate=2.0)
    pause = {"zz_z": favourite_ms / 1e3, "zz_a": other_ms / 1e3}
    key = ("conv2d", "a signature of this test")
    try:
        chosen = select._tune(
            key, [(favourite, 1.0), (other, 2.0)], lambda b: time.sleep(pause[b.name])
        )
        assert chosen.name == winner
        assert select.autotune_cache()[key] == winner
    finally:
        select.clear_autotune_cache()
