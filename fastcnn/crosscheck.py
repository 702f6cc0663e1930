"""Placeholder: the `crosscheck` job is being written (see the open issues)."""

from __future__ import annotations

import argparse


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register the `fastcnn crosscheck` subcommand."""
