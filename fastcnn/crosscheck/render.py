"""A report as a rich table and its verdict line (what ``fastcnn check`` prints)."""

from __future__ import annotations

from typing import Any

from fastcnn.crosscheck.report import ERROR, FAIL, PASS, UNSUPPORTED, Report, Row

TITLE = "fastcnn check: every backend against the naive reference (float64)"
COLUMNS = (
    "backend",
    "op",
    "dtype",
    "status",
    "cases",
    "vs reference (tol)",
    "finite diff (tol)",
    "jacobian",
    "non-finite",
    "note",
)
_STYLE = {PASS: "green", FAIL: "bold red", ERROR: "bold red", UNSUPPORTED: "yellow"}


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1e}"


def _worst_of(row: Row, check: str) -> str:
    """A check's worst error and its tolerance, or nothing if the row has none."""
    if check not in row.worst:
        return ""
    return f"{_fmt(row.worst[check])} ({_fmt(row.tolerance.get(check))})"


def row_cells(row: Row) -> list[str]:
    """The cells of one row of the table, as rich markup."""
    from rich.markup import escape

    return [
        row.backend,
        row.op,
        row.dtype,
        f"[{_STYLE[row.status]}]{row.status}[/]",
        str(row.cases),
        _worst_of(row, "reference"),
        _worst_of(row, "finite-diff"),
        _fmt(row.worst.get("jacobian")),
        _fmt(row.worst.get("non-finite")),
        escape(row.message),
    ]


def print_report(report: Report, console: Any) -> None:
    """Render the report as a rich table, the unavailable backends and the verdict line."""
    from rich.table import Table

    table = Table(title=TITLE)
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in report.rows:
        table.add_row(*row_cells(row))
    console.print(table)
    for name, reason in report.unavailable.items():
        console.print(f"[yellow]{name}: unavailable[/] ({reason})")
    colour = "green" if report.passed else "bold red"
    console.print(f"[{colour}]{report.summary()}[/]")
