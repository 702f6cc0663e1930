"""What a bench run measured: a row per layer, op and dtype, a timing per column.

The data model of :mod:`fastcnn.bench`, apart from timing and from rendering. A column is
a backend, ``auto`` (what the library picks), ``auto+tune`` (with autotuning) or the peer
(``torch``); rates and ratios are filled in once a row is measured.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastcnn.ops import forward_of, is_backward

AUTO = "auto"
AUTOTUNED = "auto+tune"
PEER = "torch"
#: The op of a row that adds a layer's forward and backward times.
COMBINED_SUFFIX = "+backward"


@dataclass
class Timing:
    """One backend on one row: seconds, or why there is no number."""

    seconds: float | None = None
    best: float | None = None
    repeats: int = 0
    first_call: float | None = None
    gflops: float | None = None
    ratio: float | None = None
    picked: str | None = None
    note: str = ""


@dataclass
class BenchRow:
    """One layer, one op, one dtype: a timing per column."""

    suite: str
    layer: str
    op: str
    dtype: str
    flops: int
    batch: int
    timings: dict[str, Timing] = field(default_factory=dict)

    @property
    def fastest(self) -> str | None:
        """The fastest fastcnn backend of the row (auto and the peer excluded)."""
        own = {
            k: t.seconds
            for k, t in self.timings.items()
            if t.seconds is not None and k not in (AUTO, AUTOTUNED, PEER)
        }
        return min(own, key=own.__getitem__) if own else None


@dataclass
class BenchResult:
    """Everything a bench run measured, with the machine context."""

    context: dict[str, Any]
    rows: list[BenchRow]

    def to_dict(self) -> dict[str, Any]:
        """Every number of the run, JSON-ready (each row names its fastest backend)."""
        return {
            "context": self.context,
            "rows": [asdict(row) | {"fastest": row.fastest} for row in self.rows],
        }

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


def add_rates(row: BenchRow) -> None:
    """Each timing's GFLOP/s and its ratio to the row's fastest backend."""
    fastest = row.fastest
    best = row.timings[fastest].seconds if fastest else None
    for timing in row.timings.values():
        if timing.seconds is not None:
            timing.gflops = row.flops / timing.seconds / 1e9
            timing.ratio = timing.seconds / best if best else None


def _combined(fwd: BenchRow, bwd: BenchRow) -> BenchRow:
    """A layer's forward+backward row: each column's two times added."""
    op = fwd.op + COMBINED_SUFFIX
    both = BenchRow(bwd.suite, bwd.layer, op, bwd.dtype, fwd.flops + bwd.flops, bwd.batch)
    for column in bwd.timings:
        a, b = fwd.timings.get(column), bwd.timings.get(column)
        if a and b and a.seconds is not None and b.seconds is not None:
            both.timings[column] = Timing(a.seconds + b.seconds, picked=a.picked)
        else:
            both.timings[column] = Timing(note=(b.note if b else "") or (a.note if a else ""))
    add_rates(both)
    return both


def with_combined(result: BenchResult) -> list[BenchRow]:
    """Rows plus a forward+backward row per layer (the sum of the two times)."""
    out: list[BenchRow] = []
    by_key = {(r.layer, r.op, r.dtype): r for r in result.rows}
    for row in result.rows:
        out.append(row)
        if not is_backward(row.op):
            continue
        fwd = by_key.get((row.layer, forward_of(row.op), row.dtype))
        if fwd is not None:
            out.append(_combined(fwd, row))
    return out
