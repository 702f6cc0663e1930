"""The command line's shared parts: `fastcnn backends`, `python -m fastcnn`, bad usage."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fastcnn
from fastcnn import registry
from fastcnn.cli import main

BUILT_IN = ("naive", "im2col", "fft", "numba")


def _cells(out: str, name: str) -> list[str]:
    """The cells of the table line whose first cell is ``name``."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    found = [cells for cells in rows if cells[:1] == [name]]
    assert len(found) == 1, f"no single line for {name!r} in:\n{out}"
    return found[0]


def test_backends_lists_each_backend_with_its_ops(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    infos = {info.name: info for info in fastcnn.list_backends()}
    assert set(BUILT_IN) <= set(infos)
    for name in BUILT_IN:
        cells = _cells(out, name)
        assert cells[1] == "yes"
        assert cells[2] == ", ".join(infos[name].ops)
        assert cells[3] and cells[3] in infos[name].summary
    assert "pool2d" not in _cells(out, "fft")[2]  # fft has no pooling


def test_backends_shows_a_broken_plugin_as_unavailable_with_its_reason(
    tmp_path, monkeypatch, capsys
):
    info = tmp_path / "fastcnn_cli_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fastcnn_cli_broken\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[fastcnn.backends]\ncli_broken = fastcnn_cli_missing_module:backend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry.rediscover()
        assert main(["backends"]) == 0
    finally:
        fastcnn.unregister_backend("cli_broken")
        monkeypatch.undo()
        registry.rediscover()
    out = capsys.readouterr().out
    cells = _cells(out, "cli_broken")
    assert cells[1] == "no" and cells[2] == ""
    assert "ModuleNotFoundError" in out and "fastcnn_cli_missing_module" in out
    assert _cells(out, "naive")[1] == "yes"


def test_python_dash_m_runs_the_same_command(tmp_path):
    done = subprocess.run(  # outside the clone, whose source folder would shadow the install
        [sys.executable, "-m", "fastcnn", "backends"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    for name in BUILT_IN:
        assert _cells(done.stdout, name)[1] == "yes"


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as info:  # argparse reports usage errors by exiting with 2
        main(["no-such-command"])
    assert info.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err
