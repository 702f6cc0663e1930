"""The command line's shared parts: `fastcnn backends`, `python -m fastcnn`, bad usage."""

from __future__ import annotations

import subprocess
import sys

from fastcnn.cli import main


def test_backends_lists_every_backend_with_availability(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "naive" in out and "available" in out
    assert "pool2d_backward" in out


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "fastcnn", "backends"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "naive" in done.stdout


def test_bad_usage_exits_2(capsys):
    try:
        main(["no-such-command"])
    except SystemExit as exc:  # argparse reports usage errors by exiting with 2
        assert exc.code == 2
    else:
        raise AssertionError("argparse accepted an unknown command")
