"""What a bench run measured: a row per layer, op and dtype, a timing per column.

The data model of :mod:`fastcnn.bench`, apart from timing and from rendering. A column is
a backend, ``auto`` (what the library picks), ``auto+tune`` (with autotuning) or the peer
(``torch``); rates and ratios are filled in once a row is measured.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastcnn.ops import forward_of, is_backward

AUTO = "auto"
AUTOTUNED = "auto+tune"
PEER = "torch"
#: The memory yardstick's column on memory-bound rows: ``numpy.copyto`` of a buffer as
#: large as the bytes the row must move (half read, half written).
COPY = "copy"
#: The compute yardstick's column on the other rows: numpy's GEMM of about the row's
#: FLOPs in the row's dtype, timed in the same rounds as the row's columns.
GEMM = "gemm"
#: Columns that are not fastcnn backends: never a row's fastest.
NOT_BACKENDS = (AUTO, AUTOTUNED, PEER, COPY, GEMM)
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
    gbps: float | None = None
    copy_share: float | None = None
    gemm_share: float | None = None
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
    layer_class: str = ""
    #: Bytes a memory-bound row must move at least (0 on compute-bound rows): the input
    #: read and the output written, for a backward the incoming gradient read too.
    bytes_moved: int = 0
    #: FLOPs of the row's GEMM column (0 where there is none: memory-bound rows).
    gemm_flops: int = 0
    timings: dict[str, Timing] = field(default_factory=dict)

    @property
    def fastest(self) -> str | None:
        """The fastest fastcnn backend of the row (auto and the peer excluded)."""
        own = {
            k: t.seconds
            for k, t in self.timings.items()
            if t.seconds is not None and k not in NOT_BACKENDS
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
            "peer_summary": [asdict(r) for r in peer_summary(self)],
        }

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


def _seconds(row: BenchRow, column: str) -> float | None:
    timing = row.timings.get(column)
    return timing.seconds if timing is not None else None


def add_rates(row: BenchRow) -> None:
    """Each timing's GFLOP/s and ratio to the row's fastest backend; on memory-bound rows
    also its GB/s and that as a share of the copy's (the copy moved the same bytes), on
    the others its GFLOP/s as a share of the GEMM column's."""
    fastest = row.fastest
    best = row.timings[fastest].seconds if fastest else None
    copy_seconds, gemm_seconds = _seconds(row, COPY), _seconds(row, GEMM)
    gemm_gflops = row.gemm_flops / gemm_seconds / 1e9 if gemm_seconds else None
    for name, timing in row.timings.items():
        if timing.seconds is not None:
            flops = row.gemm_flops if name == GEMM else row.flops  # the GEMM's own rate
            timing.gflops = flops / timing.seconds / 1e9
            timing.ratio = timing.seconds / best if best else None
            if row.bytes_moved:
                timing.gbps = row.bytes_moved / timing.seconds / 1e9
                timing.copy_share = copy_seconds / timing.seconds if copy_seconds else None
            if gemm_gflops:
                timing.gemm_share = timing.gflops / gemm_gflops


def _combined(fwd: BenchRow, bwd: BenchRow) -> BenchRow:
    """A layer's forward+backward row: each column's two times added."""
    op = fwd.op + COMBINED_SUFFIX
    both = BenchRow(
        bwd.suite,
        bwd.layer,
        op,
        bwd.dtype,
        fwd.flops + bwd.flops,
        bwd.batch,
        bwd.layer_class,
        fwd.bytes_moved + bwd.bytes_moved,
        fwd.gemm_flops + bwd.gemm_flops,
    )
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


def _geomean(values: list[float]) -> float | None:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def _auto_over_peer(row: BenchRow) -> float | None:
    auto, peer = row.timings.get(AUTO), row.timings.get(PEER)
    if auto is None or peer is None or auto.seconds is None or peer.seconds is None:
        return None
    return auto.seconds / peer.seconds


@dataclass
class PeerRatio:
    """Geometric mean of auto's time over the peer's on a group of layers."""

    group: str
    layers: int
    forward: float | None
    forward_backward: float | None
    worst_forward: float | None
    worst_forward_backward: float | None


def _peer_ratio(group: str, rows: list[BenchRow]) -> PeerRatio | None:
    fwd = [r for r in rows if not is_backward(r.op) and not r.op.endswith(COMBINED_SUFFIX)]
    both = [r for r in rows if r.op.endswith(COMBINED_SUFFIX)]
    fwd_ratios = [x for x in map(_auto_over_peer, fwd) if x is not None]
    both_ratios = [x for x in map(_auto_over_peer, both) if x is not None]
    if not fwd_ratios and not both_ratios:
        return None
    layers = len({r.layer for r in fwd + both})
    return PeerRatio(
        group,
        layers,
        _geomean(fwd_ratios),
        _geomean(both_ratios),
        max(fwd_ratios, default=None),
        max(both_ratios, default=None),
    )


def peer_summary(result: BenchResult) -> list[PeerRatio]:
    """Auto's time over the peer's, as geometric means: per suite for convolution layers
    and for pooling layers apart, then per layer class over all suites (each class is
    judged on its own: a win on pooling must not average away a loss on convolutions).
    """
    rows = with_combined(result)
    groups: dict[str, list[BenchRow]] = {}
    for row in rows:
        kind = "pooling" if row.layer_class == "pooling" else "convolution"
        groups.setdefault(f"{row.suite} {kind} layers", []).append(row)
    for row in rows:
        groups.setdefault(f"class {row.layer_class}", []).append(row)
    out = [_peer_ratio(name, members) for name, members in groups.items()]
    return [r for r in out if r is not None]
