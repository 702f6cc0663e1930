"""Suites and the bench runner (tiny sizes: correctness of the tables, not speed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastcnn
from fastcnn import bench
from fastcnn.bench import peers as bench_peers
from fastcnn.bench import run as bench_run
from fastcnn.cases import make_inputs
from fastcnn.cli import main
from fastcnn.suites import SUITES, layer_class, suite
from fastcnn.timing import MIN_ROUNDS


@pytest.fixture(autouse=True)
def small_gemm(monkeypatch):
    """Small yardstick GEMMs: these tests check the tables, not the machine."""
    monkeypatch.setattr(bench_run, "GEMM_SIZE", 128)
    monkeypatch.setattr(bench_run, "ROW_GEMM_SIZES", (64, 128))


@pytest.mark.parametrize("name", list(SUITES))
def test_every_suite_layer_builds_a_valid_spec(name):
    cases = suite(name, batch=1)
    assert cases and len({c.name for c in cases}) == len(cases)
    for case in cases:
        arrays = make_inputs(case, np.random.default_rng(0))
        spec = bench.layer_spec(case, arrays, "float32")
        assert spec.flops > 0 and min(spec.y_shape) >= 1


def test_suites_name_the_real_layers():
    names = {c.name for c in suite("resnet18")}
    assert "resnet18.stem.7x7s2.64@224" in names and "resnet18.maxpool.3x3s2.64@112" in names
    assert any(c.params.get("groups", 1) == c.x[1] for c in suite("mobilenet"))
    assert {c.w[-1] for c in suite("large-kernel")} == {15, 31}
    with pytest.raises(ValueError, match="suite="):
        suite("alexnet")
    with pytest.raises(ValueError, match="batch="):
        suite("quick", batch=0)


def test_bench_json_holds_the_numbers_of_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no cell wraps
    path = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--suite",
            "quick",
            "--batch",
            "1",
            "--budget",
            "0",
            "--op",
            "conv2d",
            "--op",
            "max_pool2d",
            "--backend",
            "im2col",
            "--backend",
            "naive",
            "--json",
            str(path),
            "--peer",
            "torch",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["context"]["gemm_gflops_float32"] > 0
    rows = data["rows"]
    assert {r["op"] for r in rows} == {"conv2d", "max_pool2d"}
    assert {r["batch"] for r in rows} == {1}
    for row in rows:
        assert row["layer"] in out
        for name, timing in row["timings"].items():
            if timing["seconds"] is not None:
                assert timing["repeats"] >= MIN_ROUNDS
                yardstick = name in ("copy", "gemm")
                assert timing["ratio"] >= 1.0 - 1e-12 or yardstick or name in ("auto", "torch")
                flops = row["gemm_flops"] if name == "gemm" else row["flops"]  # its own
                assert timing["gflops"] == pytest.approx(flops / timing["seconds"] / 1e9)
                # The table shows the file's numbers: time, rate (GB/s and the share of
                # the copy's on memory-bound rows, else GF/s and the share of the GEMM's)
                # and ratio.
                shown = [f"{timing['seconds'] * 1e3:.2f}"]
                if row["bytes_moved"]:
                    shown.append(f"{timing['gbps']:.1f} GB/s")
                    if not yardstick:
                        shown.append(f"{timing['copy_share']:.2f} copy")
                else:
                    shown.append(f"{timing['gflops']:.1f} GF/s")
                    if not yardstick:
                        shown.append(f"{timing['gemm_share']:.2f} GEMM")
                if not yardstick:
                    shown.append(f"{timing['ratio']:.2f}x")
                for text in shown:
                    assert text in out, f"{row['layer']} {name}: {text} not in the table"
        fastest = row["fastest"]
        assert row["timings"][fastest]["ratio"] == 1.0
        assert row["timings"]["auto"]["picked"] in {b.name for b in fastcnn.list_backends()}
    assert "GEMM" in out


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    result = bench.run_bench(
        ["quick"],
        batch=1,
        backends=["im2col", "numba"],
        budget=0,
        ops=["conv2d", "conv2d_backward"],
    )
    path = tmp_path / "ratios.png"
    bench.plot_result(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_combined_rows_add_forward_and_backward():
    result = bench.run_bench(
        ["quick"], batch=1, backends=["im2col"], budget=0, ops=["conv2d", "conv2d_backward"]
    )
    rows = bench.with_combined(result)
    both = [r for r in rows if r.op == "conv2d+backward"]
    assert len(both) == 4  # the quick suite's convolutions
    for row in both:
        fwd = next(r for r in rows if r.layer == row.layer and r.op == "conv2d")
        bwd = next(r for r in rows if r.layer == row.layer and r.op == "conv2d_backward")
        assert row.flops == fwd.flops + bwd.flops
        roof = {"copy"} if row.layer_class.startswith("depthwise") else {"gemm"}
        assert set(row.timings) == {"im2col", "auto"} | roof
        assert row.gemm_flops == fwd.gemm_flops + bwd.gemm_flops
        for column, timing in row.timings.items():
            assert timing.seconds == pytest.approx(
                fwd.timings[column].seconds + bwd.timings[column].seconds
            )
            flops = row.gemm_flops if column == bench.GEMM else row.flops
            assert timing.gflops == pytest.approx(flops / timing.seconds / 1e9)
        assert row.timings["im2col"].ratio == 1.0  # the only backend is the fastest


def test_a_named_pooling_mode_runs_on_the_pooling_layers_of_other_modes():
    result = bench.run_bench(
        ["quick"], batch=1, backends=["im2col"], budget=0, ops=["min_pool2d_backward"]
    )
    pools = [c for c in suite("quick", 1) if not c.is_conv]
    assert len(pools) == 2  # a max and a mean pooling layer
    assert sorted(r.layer for r in result.rows) == sorted(c.name for c in pools)
    assert {r.op for r in result.rows} == {"min_pool2d_backward"}
    for row in result.rows:
        assert row.timings["im2col"].seconds > 0
        assert row.timings["auto"].picked in ("im2col", "numba")


def test_the_peer_backward_is_its_autograd_time_minus_its_forward():
    pytest.importorskip("torch")
    result = bench.run_bench(
        ["quick"],
        batch=1,
        backends=["im2col"],
        budget=0,
        ops=["conv2d_backward", "min_pool2d"],
        peer="torch",
    )
    for row in result.rows:
        roof = {"copy"} if row.bytes_moved else {"gemm"}
        assert set(row.timings) == {"im2col", "auto", "torch"} | roof  # no helper column left
        peer = row.timings["torch"]
        if row.op == "min_pool2d":
            assert peer.seconds is None and peer.note == "no torch equivalent"
        elif peer.seconds is None:
            # On a loaded machine a tiny layer's autograd time can fall within the noise
            # of its forward's; the row then says so (both branches are tested below).
            assert peer.note.startswith("not measured: autograd took")
        else:
            assert peer.seconds > 0 and peer.note == "autograd time minus its forward"


def test_a_peer_backward_within_the_noise_of_its_forward_is_not_measured(monkeypatch):
    monkeypatch.setattr(bench_peers, "torch_version", lambda: "2.13.0")
    rows = []
    for autograd, forward in ((3e-3, 1e-3), (6.4e-3, 6.5e-3)):
        row = bench.BenchRow("s", "pool", "max_pool2d_backward", "float32", 1, 1, "pooling", 1)
        row.timings = {
            bench.PEER: bench.Timing(autograd, best=autograd),
            bench_peers.PEER_FORWARD: bench.Timing(forward),
        }
        bench_peers.finish_peer(row)
        rows.append(row.timings)
    measured, within_noise = rows
    assert set(measured) == {bench.PEER}  # the helper column is gone
    assert measured[bench.PEER].seconds == pytest.approx(2e-3)
    assert measured[bench.PEER].note == bench_peers.MINUS_FORWARD
    assert within_noise[bench.PEER].seconds is None
    assert within_noise[bench.PEER].note.startswith("not measured: autograd took 6.4 ms")


def test_layer_classes_name_each_roof():
    classes = {c.name: layer_class(c) for name in SUITES for c in suite(name, batch=1)}
    assert classes["resnet18.conv3x3.64@56"] == "3x3 s1"
    assert classes["resnet18.conv3x3s2.128@56"] == "strided kxk"
    assert classes["resnet18.stem.7x7s2.64@224"] == "strided kxk"
    assert classes["resnet18.down1x1s2.128@56"] == "1x1 s2"
    assert classes["mobilenet.pw1x1.64@112"] == "1x1 s1"
    assert classes["mobilenet.dw3x3.32@112"] == "depthwise 3x3 s1"
    assert classes["mobilenet.dw3x3s2.64@112"] == "depthwise 3x3 s2"
    assert classes["large.31x31.32@64"] == "large kernel"
    assert classes["vgg16.pool2x2.64@224"] == "pooling"


def test_memory_bound_rows_are_judged_against_a_copy_of_their_bytes():
    result = bench.run_bench(
        ["quick"], batch=1, budget=0, backends=["numba"], ops=["conv2d", "max_pool2d_backward"]
    )
    rows = {(r.layer, r.op): r for r in result.rows}
    dw = rows["quick.dw3x3.64@28", "conv2d"]
    x_bytes, w_bytes = 64 * 28 * 28 * 4, 64 * 9 * 4
    assert dw.bytes_moved == 2 * x_bytes + w_bytes  # x read, y (same size) written, w read
    copy, numba = dw.timings[bench.COPY], dw.timings["numba"]
    assert numba.gbps == pytest.approx(dw.bytes_moved / numba.seconds / 1e9)
    assert numba.copy_share == pytest.approx(copy.seconds / numba.seconds)
    assert dw.fastest == "numba"  # the copy is a yardstick, not a backend
    pool = rows["quick.maxpool3x3s2.64@56", "max_pool2d_backward"]
    x_bytes = 64 * 56 * 56 * 4
    assert pool.bytes_moved == 2 * x_bytes + 64 * 28 * 28 * 4  # x and dy read, dx written
    dense = rows["quick.conv3x3.64@28", "conv2d"]
    assert dense.bytes_moved == 0 and bench.COPY not in dense.timings
    assert dense.timings["numba"].gbps is None
    assert bench.GEMM not in dw.timings and dw.gemm_flops == 0


def test_compute_bound_rows_are_judged_against_a_gemm_timed_beside_them():
    result = bench.run_bench(["quick"], batch=1, budget=0, backends=["numba"], ops=["conv2d"])
    dense = next(r for r in result.rows if r.layer == "quick.conv3x3.64@28")
    side = bench.gemm_size(dense.flops)
    assert side in (64, 128) and dense.gemm_flops == 2 * side**3
    gemm, numba = dense.timings[bench.GEMM], dense.timings["numba"]
    assert gemm.gflops == pytest.approx(dense.gemm_flops / gemm.seconds / 1e9)  # its own
    assert numba.gemm_share == pytest.approx(numba.gflops / gemm.gflops)
    assert dense.fastest == "numba"  # the GEMM is a yardstick, not a backend


def test_a_rows_gemm_matches_its_flops_within_the_sizes_that_run_alike(monkeypatch):
    monkeypatch.setattr(bench_run, "ROW_GEMM_SIZES", (1024, 2048))
    assert bench.gemm_size(2 * 1536**3) == 1536
    assert bench.gemm_size(2 * 1530**3) == 1536  # rounded to a multiple of 64
    assert bench.gemm_size(10**6) == 1024 and bench.gemm_size(10**12) == 2048


def test_gemm_shares_of_a_combined_row_add_flops_and_times():
    rows = []
    for op, seconds, gemm_seconds in (("conv2d", 2.0, 1.0), ("conv2d_backward", 6.0, 1.0)):
        row = bench.BenchRow("s", "a", op, "float32", 100, 1, "3x3 s1", 0, 50)
        row.timings = {"numba": bench.Timing(seconds), bench.GEMM: bench.Timing(gemm_seconds)}
        bench.add_rates(row)
        rows.append(row)
    fwd, bwd = rows
    assert fwd.timings["numba"].gemm_share == pytest.approx((100 / 2.0) / (50 / 1.0))
    assert bwd.timings["numba"].gemm_share == pytest.approx((100 / 6.0) / (50 / 1.0))
    both = next(
        r for r in bench.with_combined(bench.BenchResult({}, rows)) if r.op.endswith("+backward")
    )
    assert both.gemm_flops == 100
    assert both.timings["numba"].gemm_share == pytest.approx((200 / 8.0) / (100 / 2.0))
    assert both.fastest == "numba"


def _row(layer, op, klass, auto, peer, suite_name="s"):
    row = bench.BenchRow(suite_name, layer, op, "float32", 1, 1, klass)
    row.timings = {bench.AUTO: bench.Timing(auto), bench.PEER: bench.Timing(peer)}
    return row


def test_peer_summary_takes_geometric_means_per_suite_kind_and_class():
    rows = [
        _row("a", "conv2d", "1x1 s1", 2.0, 1.0),
        _row("a", "conv2d_backward", "1x1 s1", 2.0, 4.0),
        _row("b", "conv2d", "1x1 s1", 0.5, 1.0),
        _row("b", "conv2d_backward", "1x1 s1", 1.0, 1.0),
        _row("p", "max_pool2d", "pooling", 1.0, 8.0),
    ]
    summary = {r.group: r for r in bench.peer_summary(bench.BenchResult({}, rows))}
    conv = summary["s convolution layers"]
    assert conv.layers == 2
    assert conv.forward == pytest.approx(1.0)  # sqrt(2 * 0.5)
    assert conv.forward_backward == pytest.approx((4 / 5 * 1.5 / 2) ** 0.5)
    assert conv.worst_forward == 2.0
    assert summary["s pooling layers"].forward == pytest.approx(0.125)
    assert summary["class 1x1 s1"].forward == pytest.approx(1.0)
    assert summary["class pooling"].forward_backward is None
