"""The audit's bounds from analysis, exact mode, thread invariance and mistrusted cases:
each catches a broken backend that the former fixed tolerance let through."""

from __future__ import annotations

import math

import numpy as np
import pytest
from broken_backends import (
    LastTieMaxPool,
    ThreadDependentSums,
    TruncatesInputs,
    WinogradF23,
)

import fastcnn
from fastcnn import crosscheck
from fastcnn.crosscheck import bounds
from fastcnn.registry import ErrorModel
from fastcnn.tolerances import FORWARD_TOLERANCE

#: The checks the audit ran before its bounds; a backend that passes them passed it.
FORMER_CHECKS = {"finite-diff", "jacobian", "non-finite", "deterministic", "inputs"}
MODELS = [
    ErrorModel("direct"),
    ErrorModel("fft"),
    ErrorModel("winograd", tile=2),
    ErrorModel("winograd", tile=4),
]


def _registered(backend):
    fastcnn.register_backend(backend)
    return backend


@pytest.fixture
def registered():
    added = []
    yield lambda backend: added.append(_registered(backend)) or backend
    for backend in added:
        fastcnn.unregister_backend(backend.name)


def _passes_former_audit(report) -> bool:
    """The former verdict: errors within the fixed tolerance, the other checks passed."""
    within = all(
        r.error <= FORWARD_TOLERANCE[r.dtype]
        for r in report.results
        if r.check == "reference" and r.error is not None
    )
    others = all(r.status == "pass" for r in report.results if r.check in FORMER_CHECKS)
    return within and others


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m.kind}{m.tile or ''}")
def test_truncated_inputs_are_caught_whatever_model_is_declared(registered, model):
    backend = registered(TruncatesInputs(model))
    report = crosscheck.run(backends=[backend.name], threads=False, exact=False)
    assert _passes_former_audit(report)
    caught = {(r.op, r.check, r.dtype) for r in report.failures}
    assert any(op == "conv2d" and dtype == "float32" for op, _, dtype in caught), caught
    assert all(dtype == "float32" for _, _, dtype in caught)  # float64 is not truncated


def test_thread_dependent_sums_are_caught(registered):
    backend = registered(ThreadDependentSums())
    report = crosscheck.run(backends=[backend.name], exact=False)
    assert _passes_former_audit(report)
    assert {(r.op, r.check) for r in report.failures} == {("conv2d", "threads")}


def test_last_tie_routing_is_caught_by_exact_mode(registered):
    backend = registered(LastTieMaxPool())
    report = crosscheck.run(backends=[backend.name], threads=False)
    assert _passes_former_audit(report)
    caught = {(r.op, r.check) for r in report.failures}
    assert caught == {("max_pool2d_backward", "exact"), ("min_pool2d_backward", "exact")}


def test_a_correct_winograd_passes_its_bound(registered):
    backend = registered(WinogradF23())
    cases = ["conv2d x=2x16x10x10 w=8x16x3x3 padding=1", "conv2d x=1x4x9x7 w=3x4x3x3"]

    def uses() -> list[float]:
        report = crosscheck.run(cases, backends=[backend.name], ops=["conv2d"])
        assert report.passed, report.summary()
        return [r.use for r in report.results if r.check == "reference"]

    winograd = uses()
    assert 0 < max(winograd) <= 1
    backend.error_model = ErrorModel("direct")  # the same errors, against a tighter bound
    direct = uses()
    assert all(d > w for d, w in zip(direct, winograd, strict=True))


def test_builtin_backends_pass_exact_mode_bit_for_bit_and_threads():
    report = crosscheck.run(["conv2d x=1x2x5x5 w=2x2x3x3"], exact=True, threads=True)
    assert report.passed, report.summary()
    exact = [r for r in report.results if r.check == "exact"]
    for name in ("naive", "im2col", "numba"):
        for op in ("conv2d", "conv2d_backward", "max_pool2d_backward", "mean_pool2d"):
            for dtype in ("float32", "float64"):
                mine = [r for r in exact if (r.backend, r.op, r.dtype) == (name, op, dtype)]
                assert mine, (name, op, dtype)
                if op.startswith(("conv2d", "max")):
                    assert all(r.use == 0 for r in mine)  # bit for bit
    # fft does not claim exactness: its convolutions are not run in exact mode.
    assert not [r for r in exact if r.backend == "fft" and r.op.startswith("conv2d")]
    threads = {r.backend for r in report.results if r.check == "threads"}
    assert threads == {"naive", "numba"}
    assert sorted(report.thread_variant) == ["fft", "im2col", "winograd", "winograd2", "winograd4"]


def test_mostly_zero_outputs_are_mistrusted_not_passed():
    case = "conv2d x=1x1x2x2 w=1x1x1x1 padding=3 bias=false"
    report = crosscheck.run([case], backends=["naive", "numba"])
    assert report.passed
    counts = report.case_counts()
    assert counts["mistrusted"] == 8 and counts["pass"] == 0  # 2 backends, 2 ops, 2 dtypes
    assert "8 mistrusted" in report.summary()
    ordinary = crosscheck.run(["conv2d x=1x1x4x4 w=1x1x2x2"], backends=["naive"])
    assert ordinary.case_counts()["mistrusted"] == 0


def test_bound_formulas():
    u = 2.0**-24
    assert bounds.gamma(10, u) == pytest.approx(10 * u / (1 - 10 * u))
    assert bounds.gamma(0, u) == 0
    assert math.isinf(bounds.gamma(2**24, u))
    # Higham Thm 24.2's eta = mu + gamma_4 (sqrt 2 + mu), about 6.7 u, times log2 L.
    assert bounds.fft_relative(256, u) == pytest.approx(8 * 6.66 * u, rel=0.01)
    # F(2,3): rows of |A^T| weigh the tile points (||G_k||_1 ||B^T_k||_1 = 2, 3, 3, 2) to 8.
    assert bounds.winograd_growth(ErrorModel("winograd", tile=2)) == pytest.approx((8 / 3) ** 2)
    assert bounds.winograd_growth(ErrorModel("winograd", tile=4)) == pytest.approx(16.0**2)
    assert bounds.winograd_growth(ErrorModel("winograd", tile=6, growth=900.0)) == 900.0
    with pytest.raises(ValueError, match="tile"):
        bounds.winograd_growth(ErrorModel("winograd", tile=6))
    with pytest.raises(ValueError, match="kind"):
        ErrorModel("strassen")


def test_elementwise_bound_use():
    scale = bounds.Scale(s=np.array([1.0, 2.0, 0.0]), terms=3, operands=2)
    coeff = bounds.gamma(5, 2.0**-24) + bounds.gamma(3, 2.0**-53)
    err = np.array([coeff, 0.5 * coeff, 0.0])
    assert bounds.bound_use(ErrorModel(), scale, err, "float32") == pytest.approx(1.0)
    err[2] = 1e-30  # any error where the bound is 0 is infinitely over it
    assert math.isinf(bounds.bound_use(ErrorModel(), scale, err, "float32"))
    assert bounds.bound_use(ErrorModel(), scale, np.zeros(3), "float32", exact=True) == 0
