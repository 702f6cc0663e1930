"""`fastcnn check --sweep`: random cases over every parameter, in-process and over Dask."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from broken_backends import PaddedBorderOffByOne

import fastcnn
from fastcnn import crosscheck
from fastcnn.cli import main
from fastcnn.ops import FORWARD_OPS


def _by_case(report: crosscheck.Report) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in report.results:
        out.setdefault(r.case, []).append((r.backend, r.op, r.dtype, r.check, r.status, r.error))
    return out


def test_random_cases_cover_every_op_and_parameter_form_and_are_valid():
    cases = crosscheck.random_cases(300, np.random.default_rng(0))
    again = crosscheck.random_cases(300, np.random.default_rng(0))
    other = crosscheck.random_cases(300, np.random.default_rng(1))
    assert cases == again and cases != other
    assert {c.op for c in cases} == set(FORWARD_OPS)
    convs = [c for c in cases if c.is_conv]
    pools = [c for c in cases if not c.is_conv]
    paddings = {type(c.params["padding"]).__name__ for c in convs}
    assert paddings == {"int", "tuple", "str"}
    assert {c.params["padding"] for c in convs if isinstance(c.params["padding"], str)} == {
        "same",
        "valid",
    }
    assert {len(c.params["padding"]) for c in convs if isinstance(c.params["padding"], tuple)} == {
        2,
        4,
    }
    assert {c.params["groups"] for c in convs} == {1, 2, 3}
    assert any(c.params["dilation"] != (1, 1) for c in convs)
    assert any(c.params["stride"] != (1, 1) for c in convs)
    assert {c.params["bias"] for c in convs} == {True, False}
    assert {len(c.x) for c in cases} == {3, 4}
    assert {c.params["ceil_mode"] for c in pools} == {True, False}
    means = [c for c in pools if c.mode == "mean"]
    assert {c.params["count_include_pad"] for c in means} == {True, False}
    assert any(c.params.get("dilation", (1, 1)) != (1, 1) for c in pools)
    assert len({c.name for c in cases}) == len(cases)
    for case in cases[:40]:  # the front end takes every drawn case
        x = np.ones(case.x)
        if case.is_conv:
            y = fastcnn.conv2d(x, np.ones(case.w), backend="naive", **case.call_params())
        else:
            pool = getattr(fastcnn, case.op)
            y = pool(x, case.params["kernel"], backend="naive", **case.call_params())
        assert y.size > 0


def test_an_in_process_sweep_audits_each_case_once_and_the_seed_fixes_everything():
    report = crosscheck.sweep(6, seed=4, backends=["naive", "numba"], dtypes=["float32"])
    assert report.passed, report.summary()
    cases = _by_case(report)
    assert len(cases) == 6 and all(name.startswith(f"#{i} ") for i, name in enumerate(cases))
    assert {r.backend for r in report.results} == {"naive", "numba"}
    again = crosscheck.sweep(6, seed=4, backends=["naive", "numba"], dtypes=["float32"])
    assert _by_case(again) == cases
    other = crosscheck.sweep(6, seed=5, backends=["naive", "numba"], dtypes=["float32"])
    assert _by_case(other) != cases


def test_a_sweep_catches_a_broken_backend():
    fastcnn.register_backend(PaddedBorderOffByOne())
    try:
        report = crosscheck.sweep(40, seed=0, backends=["broken_border"], dtypes=["float64"])
    finally:
        fastcnn.unregister_backend("broken_border")
    assert not report.passed
    # Its forward is wrong; its gradients then disagree with finite differences of it.
    assert {f.op for f in report.failures} == {"conv2d", "conv2d_backward"}
    assert any(f.op == "conv2d" and f.check == "reference" for f in report.failures)


def test_the_command_line_sweeps_and_refuses_a_scheduler_without_a_sweep(capsys):
    assert main(["check", "--sweep", "3", "--seed", "2", "--backend", "naive"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["check", "--scheduler", "local"]) == 2
    assert "give --sweep N" in capsys.readouterr().out
    assert main(["check", "--sweep", "3", "--case", "conv2d x=1x1x3x3 w=1x1x1x1"]) == 2


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


def test_a_sweep_over_dask_workers_equals_the_in_process_one(cluster):
    kwargs = dict(seed=7, backends=["naive", "im2col"], dtypes=["float64"])
    here = crosscheck.sweep(8, **kwargs)
    there = crosscheck.sweep(8, scheduler=cluster.scheduler_address, **kwargs)
    assert there.passed and _by_case(there) == _by_case(here)


def test_a_worker_killed_mid_sweep_loses_no_case(cluster):
    from distributed import Client

    killed: list[int] = []
    with Client(cluster, set_as_default=False) as client:
        pids = client.run(os.getpid)

        def kill_a_busy_worker(label: str) -> None:
            if killed:
                return
            for _ in range(200):  # wait until some worker holds a task, then kill it
                busy = [w for w, keys in client.processing().items() if keys]
                if busy:
                    killed.append(pids[busy[0]])
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    return
                time.sleep(0.01)

        report = crosscheck.sweep(
            16,
            seed=11,
            backends=["naive"],
            dtypes=["float64"],
            scheduler=cluster.scheduler_address,
            progress=kill_a_busy_worker,
        )
    assert killed, "no worker was busy: the test did not kill one"
    cases = _by_case(report)
    assert len(cases) == 16 and report.passed
    expected = _by_case(crosscheck.sweep(16, seed=11, backends=["naive"], dtypes=["float64"]))
    assert cases == expected  # every case once, with the results it has anywhere
