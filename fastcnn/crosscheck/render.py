"""A report as its verdict, a table that fits 100 columns, and notes (``fastcnn check``).

The summary comes first; the table has one row per backend x op x dtype with its worst
error and bound use; what failed, what was not checked and why follow as wrapped lines.
``--json`` holds every number, per case and check.
"""

from __future__ import annotations

from typing import Any

from fastcnn.crosscheck.report import ERROR, FAIL, PASS, UNSUPPORTED, Report, Row

TITLE = "fastcnn check: every backend against the naive reference (float64)"
COLUMNS = ("backend", "op", "dtype", "status", "cases", "error", "bound use", "fd err", "exact")
_STYLE = {PASS: "green", FAIL: "bold red", ERROR: "bold red", UNSUPPORTED: "yellow"}
_SHORT = {UNSUPPORTED: "n/a"}
LEGEND = (
    "error: worst max|y - ref| / max|ref| over the cases; bound use: worst error as a share of "
    "its bound from analysis (direct, FFT or Winograd model, as the backend declares; at most "
    "1 passes); fd err: gradients against finite differences; exact: integer data, bit for "
    "bit (mean pooling: up to its one division)."
)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1e}"


def _use(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}" if value < 100 else f"{value:.1e}"


def row_cells(row: Row) -> list[str]:
    """The cells of one row of the table, as rich markup."""
    fd = max((row.worst[k] for k in ("finite-diff", "jacobian") if k in row.worst), default=None)
    exact = row.use.get("exact")
    return [
        row.backend,
        row.op,
        row.dtype,
        f"[{_STYLE[row.status]}]{_SHORT.get(row.status, row.status)}[/]",
        str(row.cases) + (f" ({row.mistrusted}?)" if row.mistrusted else ""),
        _fmt(row.worst.get("reference")),
        _use(row.use.get("reference")),
        _fmt(fd),
        "" if exact is None else ("bits" if exact == 0 else _use(exact)),
    ]


def _notes(report: Report) -> list[str]:
    """What failed, what was not checked, and the mistrusted cases, as markup lines."""
    from rich.markup import escape

    lines = [
        f"[bold red]{r.backend} {r.op} {r.dtype}:[/] {escape(r.message)}"
        for r in report.rows
        if r.status in (FAIL, ERROR)
    ]
    threads = sorted(set(report.backends) - set(report.thread_variant))
    lines.append(f"thread-count invariance (1, 2, 3 threads) checked: {', '.join(threads)}")
    if report.thread_variant:
        lines.append(
            "[yellow]not thread-invariant (declared, so not checked):[/] "
            + ", ".join(report.thread_variant)
        )
    mistrusted = sorted({r.case for r in report.results if r.status == "mistrusted"})
    if mistrusted:
        lines.append(
            "[yellow]mistrusted (mostly zero outputs, counted apart):[/] "
            + escape("; ".join(mistrusted))
        )
    for name, why in report.unavailable.items():
        lines.append(f"[yellow]{name}: unavailable[/] ({escape(why)})")
    return lines


def print_report(report: Report, console: Any) -> None:
    """Render the verdict line, the table, then notes and the legend."""
    from rich.table import Table

    colour = "green" if report.passed else "bold red"
    console.print(f"[{colour}]{report.summary()}[/]")
    # No box-drawing characters: every line is as many bytes as columns (logs, awk).
    table = Table(title=TITLE, box=None, pad_edge=False, header_style="bold underline")
    for column in COLUMNS:
        table.add_column(column, no_wrap=True)
    for row in report.rows:
        table.add_row(*row_cells(row))
    console.print(table)
    for line in _notes(report):
        console.print(line)
    console.print(f"[dim]{LEGEND}[/]")
