"""The audit harness: it passes correct backends and catches each kind of broken one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from broken_backends import BROKEN, MissingTapGradient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcnn
from fastcnn import crosscheck
from fastcnn.cases import Case, case_from_dict, default_cases, parse_case
from fastcnn.cli import main

SMALL = [
    "conv2d x=2x3x7x6 w=4x3x3x3 padding=1",
    "conv2d x=1x2x6x6 w=2x2x3x3 stride=2 padding=1,0,2,1 dilation=1 bias=false",
    "max_pool2d x=1x2x7x7 kernel=3 stride=2 padding=1 ceil_mode=true",
]


@pytest.fixture
def broken(request):
    """Register one broken backend for the test, as a third party would."""
    backend = request.param()
    fastcnn.register_backend(backend)
    yield backend
    fastcnn.unregister_backend(backend.name)


def test_default_set_covers_every_op_and_parameter():
    cases = default_cases()
    ops = {c.op for c in cases}
    assert ops == {"conv2d", "max_pool2d", "mean_pool2d", "min_pool2d"}
    params = {k for c in cases for k in c.params}
    assert {
        "stride",
        "padding",
        "dilation",
        "groups",
        "bias",
        "kernel",
        "ceil_mode",
        "count_include_pad",
    } <= params
    assert any(c.params.get("padding") == "same" for c in cases)
    assert any(isinstance(c.params.get("padding"), tuple) for c in cases)
    assert any(len(c.x) == 3 for c in cases)  # unbatched
    assert any(c.is_conv and c.params.get("groups") == c.x[1] for c in cases)  # depthwise
    assert any(c.expected is not None for c in cases)  # the lecture example


def test_every_available_backend_passes_the_default_set():
    report = crosscheck.run()
    assert report.passed, report.summary()
    assert set(report.backends) >= {"naive"}
    checks = {r.check for r in report.results}
    assert {
        "reference",
        "finite-diff",
        "jacobian",
        "non-finite",
        "deterministic",
        "inputs",
    } <= checks


@pytest.mark.parametrize(
    ("broken", "op", "check"), BROKEN, indirect=["broken"], ids=[b[0].__name__ for b in BROKEN]
)
def test_each_broken_backend_is_caught(broken, op, check):
    report = crosscheck.run(backends=[broken.name])
    assert not report.passed
    flagged = [r for r in report.failures if r.op == op and r.check == check]
    assert flagged, f"{broken.name}: no failure under {op}/{check}: {report.summary()}"
    assert all(r.message for r in flagged)
    row = next(r for r in report.rows if r.op == op and r.status in ("FAIL", "error"))
    assert row.message


@pytest.mark.parametrize("broken", [MissingTapGradient], indirect=True)
def test_missing_tap_is_also_caught_by_finite_differences(broken):
    report = crosscheck.run(SMALL[:1], backends=[broken.name], dtypes=["float64"])
    fd = [r for r in report.results if r.check == "finite-diff"]
    assert fd and all(r.status == "FAIL" for r in fd)


@pytest.mark.parametrize(
    ("broken", "op", "check"), BROKEN, indirect=["broken"], ids=[b[0].__name__ for b in BROKEN]
)
def test_cli_exits_1_for_each_broken_backend(broken, op, check, capsys):
    assert main(["check", "--backend", broken.name]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and broken.name in out


def test_cli_passes_exits_0_and_json_round_trips(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["check", "--case", SMALL[0], "--case", SMALL[2], "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out
    data = json.loads(path.read_text())
    report = crosscheck.Report.from_dict(data)
    assert report.passed and data["passed"]
    assert [r.__dict__ for r in report.rows] == data["rows"]
    # The table's numbers are in the file: each row's worst error and bound use.
    for row in data["rows"]:
        if "reference" not in row["worst"]:
            continue
        value = row["worst"]["reference"]
        assert f"{value:.1e}" in out, f"{row['backend']} {row['op']}: {value:.1e}"
        assert f"{row['use']['reference']:.2f}" in out
        assert any(
            r["error"] == value and r["use"] is not None
            for r in data["results"]
            if r["check"] == "reference" and r["backend"] == row["backend"] and r["op"] == row["op"]
        )


def test_cli_bad_usage_exits_2(capsys):
    assert main(["check", "--backend", "nosuch"]) == 2
    assert "valid names" in capsys.readouterr().out
    assert main(["check", "--case", "conv2d x=2x3"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["check", "--dtype", "float16"])
    assert info.value.code == 2


def test_cases_from_strings_json_and_python(tmp_path):
    case = parse_case("conv2d x=2x3x8x8 w=4x3x3x3 stride=2 padding=1,0,2,1 bias=false")
    assert case.params == {"stride": 2, "padding": (1, 0, 2, 1), "bias": False}
    assert parse_case(case.to_string()) == case
    assert case_from_dict(json.loads(json.dumps(case.to_dict()))) == case
    path = tmp_path / "cases.json"
    path.write_text(
        json.dumps([case.to_dict(), {"op": "min_pool2d", "x": [1, 2, 5, 5], "kernel": 2}])
    )
    report = crosscheck.run([case, SMALL[2]], backends=["naive"], seed=3)
    assert report.passed
    assert {r.case for r in report.results} == {case.name, parse_case(SMALL[2]).name}
    out = tmp_path / "report.json"
    assert main(["check", "--cases", str(path), "--backend", "naive", "--json", str(out)]) == 0
    ran = {r["case"] for r in json.loads(out.read_text())["results"]}
    assert ran == {case.name, "min_pool2d x=1x2x5x5 kernel=2"}  # the file's cases, no others
    for bad in ("conv2d x=2x3x8x8", "blur x=1x1x3x3", "conv2d x=2x3x8x8 w=4x3x3x3 size=2"):
        with pytest.raises(ValueError):
            parse_case(bad)


def test_seed_makes_runs_reproducible():
    def errors(seed: int) -> list[float | None]:
        report = crosscheck.run(SMALL, backends=["naive"], dtypes=["float32"], seed=seed)
        return [r.error for r in report.results if r.check == "reference"]

    first = errors(5)
    assert errors(5) == first
    # Float32 rounding errors depend on the inputs: another seed draws other inputs.
    other = errors(6)
    assert len(other) == len(first) and other != first


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 2]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(dilation[0] * (kh - 1) + 1, 9))
    w = draw(st.integers(dilation[1] * (kw - 1) + 1, 9))
    return Case(
        "conv2d",
        (draw(st.integers(1, 2)), cin, h, w),
        (cout, cin // groups, kh, kw),
        {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "bias": draw(st.booleans()),
        },
    )


@st.composite
def pool_cases(draw):
    mode = draw(st.sampled_from(["max", "mean", "min"]))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    params = {
        "kernel": (kh, kw),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))),
        "ceil_mode": draw(st.booleans()),
    }
    if mode == "mean":
        params["count_include_pad"] = draw(st.booleans())
    shape = (
        draw(st.integers(1, 2)),
        draw(st.integers(1, 2)),
        draw(st.integers(3, 8)),
        draw(st.integers(3, 8)),
    )
    return Case(f"{mode}_pool2d", shape, None, params)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(conv_cases(), pool_cases()), st.integers(0, 2**16))
def test_random_parameter_combinations_pass_for_every_backend(case, seed):
    report = crosscheck.run([case], seed=seed, finite_differences=False)
    assert report.passed, report.summary()
    assert np.isfinite([r.error for r in report.results if r.error is not None]).all()
