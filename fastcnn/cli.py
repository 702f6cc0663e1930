"""The ``fastcnn`` command: ``check``, ``bench`` and ``backends`` (argparse).

The only module that parses arguments. Each command calls a tool's run
(:func:`fastcnn.crosscheck.run`, :func:`fastcnn.bench.run_bench`) and its rendering.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

from fastcnn import bench, crosscheck, registry
from fastcnn.cases import Case, as_case, load_cases
from fastcnn.ops import PUBLIC_OPS
from fastcnn.suites import SUITES

JSON_HELP = "write every number to this JSON file"


@contextmanager
def _progress(console: Console, what: str) -> Iterator[Callable[[str], None]]:
    """A transient progress line on a terminal; yields the callback a run reports to."""
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=None)
        yield lambda label: bar.update(task, description=label, advance=1)


def _save(console: Console, path: str | None, write: Callable[[str], None]) -> None:
    """Write a file if its option was given, and say so."""
    if path:
        write(path)
        console.print(f"wrote {path}")


# --- fastcnn backends --------------------------------------------------------------------------


def _cmd_backends(args: argparse.Namespace, console: Console) -> int:
    table = Table(title="fastcnn backends")
    # Only the prose column folds, so each backend's name and ops stay on its line.
    for column in ("name", "available", "ops"):
        table.add_column(column, no_wrap=True)
    table.add_column("summary / why unavailable")
    for info in registry.list_backends():
        if info.available:
            table.add_row(info.name, "yes", ", ".join(info.ops), info.summary)
        else:
            table.add_row(info.name, "[red]no[/red]", "", info.reason or "")
    console.print(table)
    return 0


# --- fastcnn check -----------------------------------------------------------------------------


def _cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    if args.case or args.cases or args.full or args.op:
        raise ValueError("--sweep draws its own cases: it takes no --case, --cases, --full or --op")
    with _progress(console, "sweeping") as progress:
        report = crosscheck.sweep(
            args.sweep,
            seed=args.seed,
            backends=args.backend,
            dtypes=args.dtype or crosscheck.DTYPES,
            scheduler=args.scheduler,
            progress=progress,
        )
    crosscheck.print_report(report, console)
    _save(console, args.json, report.write_json)
    return 0 if report.passed else 1


def _cmd_check(args: argparse.Namespace, console: Console) -> int:
    if args.sweep is not None:
        return _cmd_sweep(args, console)
    if args.scheduler is not None:
        raise ValueError("--scheduler runs a sweep over Dask workers: give --sweep N too")
    cases: list[Case] | None = None
    if args.case or args.cases:
        cases = [as_case(text) for text in args.case or []]
        for path in args.cases or []:
            cases += load_cases(path)
    with _progress(console, "auditing") as progress:
        report = crosscheck.run(
            cases,
            backends=args.backend,
            ops=args.op,
            dtypes=args.dtype or crosscheck.DTYPES,
            seed=args.seed,
            full=args.full,
            progress=progress,
        )
    crosscheck.print_report(report, console)
    _save(console, args.json, report.write_json)
    return 0 if report.passed else 1


def _add_check(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check",
        help="audit every backend against the reference (the main job)",
        description="Run every available backend on identical inputs and compare it with "
        "the naive reference in float64, including gradients by finite differences. "
        "Exit status: 0 all supported checks passed, 1 something failed, 2 bad usage.",
    )
    parser.add_argument("--full", action="store_true", help="the larger built-in sweep")
    parser.add_argument("--backend", action="append", help="audit only this backend (repeatable)")
    parser.add_argument(
        "--op", action="append", choices=PUBLIC_OPS, help="only this op (repeatable)"
    )
    parser.add_argument(
        "--dtype", action="append", choices=crosscheck.DTYPES, help="only this dtype"
    )
    parser.add_argument(
        "--case",
        action="append",
        metavar="SPEC",
        help="a case such as 'conv2d x=2x3x8x8 w=4x3x3x3 stride=2 padding=1' (repeatable)",
    )
    parser.add_argument("--cases", action="append", metavar="FILE", help="a JSON list of cases")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random inputs (and of --sweep's cases)"
    )
    parser.add_argument(
        "--sweep", type=int, metavar="N", help="audit N random cases over every parameter"
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run --sweep's cases on a Dask cluster: a scheduler address, or 'local' for a "
        "LocalCluster started for the sweep (needs fastcnn[dask])",
    )
    parser.add_argument("--json", metavar="PATH", help=JSON_HELP)
    parser.set_defaults(run=_cmd_check)


# --- fastcnn bench -----------------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace, console: Console) -> int:
    with _progress(console, "benchmarking") as progress:
        result = bench.run_bench(
            args.suite or ["quick"],
            batch=args.batch,
            backends=args.backend,
            ops=args.op,
            dtypes=args.dtype or ["float32"],
            peer=args.peer,
            autotune=args.autotune,
            budget=args.budget,
            progress=progress,
        )
    bench.print_result(result, console)
    _save(console, args.json, result.write_json)
    _save(console, args.plot, functools.partial(bench.plot_result, result))
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="time backends on real layer shapes",
        description="Time every backend on the layers of named suites, as ratios to the "
        "fastest backend and beside numpy's GEMM throughput measured in the same run.",
    )
    parser.add_argument(
        "--suite",
        action="append",
        choices=list(SUITES),
        help="suite to run (repeatable; default quick)",
    )
    parser.add_argument("--batch", type=int, help="images per layer (default: per suite)")
    parser.add_argument("--backend", action="append", help="only this backend (repeatable)")
    parser.add_argument(
        "--op",
        action="append",
        choices=PUBLIC_OPS,
        help="only this op (repeatable); a pooling op also runs on pooling layers of another mode",
    )
    parser.add_argument("--dtype", action="append", choices=crosscheck.DTYPES)
    parser.add_argument("--peer", choices=[bench.PEER], help="add torch.nn.functional as a column")
    parser.add_argument("--autotune", action="store_true", help="add autotuned auto as a column")
    parser.add_argument(
        "--budget",
        type=float,
        default=bench.DEFAULT_BUDGET,
        help="seconds of timed runs per cell after the warm-up (0: a smoke test)",
    )
    parser.add_argument("--json", metavar="PATH", help=JSON_HELP)
    parser.add_argument("--plot", metavar="PATH", help="draw a bar chart of the ratios (PNG)")
    parser.set_defaults(run=_cmd_bench)


# --- the command -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fastcnn`` command."""
    parser = argparse.ArgumentParser(
        prog="fastcnn",
        description="Audit and compare 2-D convolution and pooling backends.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    backends = sub.add_parser("backends", help="list backends, what they support, and why not")
    backends.set_defaults(run=_cmd_backends)
    _add_check(sub)
    _add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failures, 2 bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs and pipes get $COLUMNS if set, else a wide table rather than 80 folded columns.
    width = int(os.environ.get("COLUMNS") or 160)
    console = Console() if sys.stdout.isatty() else Console(width=width)
    try:
        return int(args.run(args, console))
    except (ValueError, TypeError, registry.BackendUnsupported) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
