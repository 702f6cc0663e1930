"""A bench result as a rich table (what ``fastcnn bench`` prints) and as a bar chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastcnn.bench.peers import NOT_INSTALLED
from fastcnn.bench.rows import (
    AUTOTUNED,
    COPY,
    GEMM,
    PEER,
    BenchResult,
    BenchRow,
    PeerRatio,
    Timing,
    peer_summary,
    with_combined,
)

TITLE = (
    "fastcnn bench: median time, GFLOP/s and its share of a GEMM's timed beside it "
    "(memory-bound rows: GB/s and its share of a same-size copy's), time / fastest backend"
)
#: Layer-op groups per panel of ``--plot``'s chart.
PLOT_ROWS_PER_PANEL = 16


def _machine_line(context: dict[str, Any]) -> str:
    torch = f", torch {context['torch']}" if context.get("torch") else ""
    return (
        f"machine: {context['cores']} cores, {context['threads']} threads, "
        f"numpy {context['numpy']} ({context['blas']}), numpy float32 GEMM "
        f"{context['gemm_gflops_float32']:.0f} GFLOP/s measured in this run{torch}"
    )


def _columns(rows: list[BenchRow]) -> list[str]:
    """Every column of the rows, in the order they first appear."""
    return list(dict.fromkeys(name for row in rows for name in row.timings))


def _cell(row: BenchRow, name: str, timing: Timing | None) -> str:
    """One column's cell: time, GFLOP/s, ratio (and auto's pick), or why there is none."""
    if timing is None or timing.seconds is None:
        return "[dim]-[/]" if timing is None or not timing.note else "[dim]n/a[/]"
    yardstick = name in (COPY, GEMM)
    text = f"{timing.seconds * 1e3:.2f} ms "
    if timing.gbps is None:
        text += f"{timing.gflops:.1f} GF/s"
        if timing.gemm_share is not None and not yardstick:
            text += f" {timing.gemm_share:.2f} GEMM"
    else:  # a memory-bound row: its roof is the copy's bytes per second
        text += f"{timing.gbps:.1f} GB/s"
        if timing.copy_share is not None and not yardstick:
            text += f" {timing.copy_share:.2f} copy"
    if timing.ratio is not None and not yardstick:
        text += f" {timing.ratio:.2f}x"
    if timing.picked:
        text += f" ({timing.picked})"
    return f"[bold green]{text}[/]" if name == row.fastest else text


def _first_calls(result: BenchResult, columns: list[str]) -> str:
    """Each column's slowest first call of the run."""
    firsts = {}
    for name in columns:
        times = [r.timings[name].first_call for r in result.rows if name in r.timings]
        known = [t for t in times if t is not None]
        if known:
            firsts[name] = max(known)
    return "first call (warm-up, JIT compile included; slowest in the run): " + ", ".join(
        f"{k} {v:.2f} s" for k, v in firsts.items()
    )


def print_result(result: BenchResult, console: Any) -> None:
    """The table, a row per layer x op (and forward+backward), a column per backend."""
    from rich.table import Table

    console.print(_machine_line(result.context))
    rows = with_combined(result)
    columns = _columns(rows)
    table = Table(title=TITLE)
    table.add_column("layer", no_wrap=True)  # the row's key: never folded
    for name in ("op", "dtype", *columns):
        table.add_column(name, overflow="fold")
    for row in rows:
        cells = [_cell(row, name, row.timings.get(name)) for name in columns]
        table.add_row(row.layer, row.op, row.dtype, *cells)
    console.print(table)
    console.print(_first_calls(result, columns))
    summary = peer_summary(result)
    if summary:
        console.print(_peer_table(summary))
    if any(PEER in r.timings and r.timings[PEER].note == NOT_INSTALLED for r in rows):
        console.print(
            "[yellow]--peer torch: torch is not installed, so there is no torch column[/]"
        )


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _peer_table(summary: list[PeerRatio]) -> Any:
    """Auto's time over the peer's, per suite and kind of layer, then per layer class."""
    from rich.table import Table

    table = Table(title=f"auto's time / {PEER}'s (geometric mean; below 1: fastcnn faster)")
    for name in ("group", "layers", "forward", "fwd+bwd", "worst fwd", "worst fwd+bwd"):
        table.add_column(name)
    for r in summary:
        table.add_row(
            r.group,
            str(r.layers),
            _ratio(r.forward),
            _ratio(r.forward_backward),
            _ratio(r.worst_forward),
            _ratio(r.worst_forward_backward),
        )
    return table


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError(
            "--plot needs matplotlib: pip install 'fastcnn[plot]' (or matplotlib)"
        ) from None
    return plt


def _plot_panel(ax: Any, panel: list[BenchRow], columns: list[str]) -> None:
    """One panel: a group of bars per row, a bar per column, on a log scale."""
    width = 0.8 / max(len(columns), 1)
    for i, column in enumerate(columns):
        ratios = [
            r.timings[column].ratio if column in r.timings and r.timings[column].ratio else math.nan
            for r in panel
        ]
        x = [k + i * width for k in range(len(panel))]
        ax.bar(x, ratios, width, label=column, color=f"C{i}")
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(panel))])
    ax.set_xticklabels([f"{r.layer}\n{r.op}" for r in panel], rotation=35, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("time / fastest (log)")


def plot_result(result: BenchResult, path: str | Path) -> None:
    """A grouped bar chart of each backend's time / fastest, per layer and op."""
    plt = _pyplot()
    rows = [r for r in with_combined(result) if r.fastest]
    columns = [c for c in _columns(rows) if c != AUTOTUNED]
    # Long runs are cut into panels of a readable number of rows, stacked vertically.
    panels = [rows[i : i + PLOT_ROWS_PER_PANEL] for i in range(0, len(rows), PLOT_ROWS_PER_PANEL)]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(14, 4.5 * len(panels)), squeeze=False, sharey=True
    )
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        _plot_panel(ax, panel, columns)
    axes[0, 0].set_title(
        f"fastcnn bench: each backend's time / the fastest backend's, per layer and op "
        f"({result.context['threads']} threads; 1 = fastest)"
    )
    axes[0, 0].legend(ncol=len(columns), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
