"""The ``fastcnn`` command: ``check``, ``bench`` and ``backends`` (argparse)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from fastcnn import registry


def _cmd_backends(args: argparse.Namespace, console: Console) -> int:
    table = Table(title="fastcnn backends")
    for column in ("name", "available", "ops", "summary / why unavailable"):
        table.add_column(column)
    for info in registry.list_backends():
        if info.available:
            table.add_row(info.name, "yes", ", ".join(info.ops), info.summary)
        else:
            table.add_row(info.name, "[red]no[/red]", "", info.reason or "")
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fastcnn`` command."""
    parser = argparse.ArgumentParser(
        prog="fastcnn",
        description="Audit and compare 2-D convolution and pooling backends.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    backends = sub.add_parser("backends", help="list backends, what they support, and why not")
    backends.set_defaults(run=_cmd_backends)
    # Each job owns its subcommand's arguments; imported here so `import fastcnn` stays light.
    from fastcnn import bench, crosscheck

    crosscheck.add_command(sub)
    bench.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failures, 2 bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs and pipes get a wide table rather than 80 folded columns.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    try:
        return int(args.run(args, console))
    except (ValueError, TypeError, registry.BackendUnsupported) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
