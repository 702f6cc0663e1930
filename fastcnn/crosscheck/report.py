"""What an audit found: one result per check, summarised per backend x op x dtype.

The data model of :mod:`fastcnn.crosscheck`, apart from running the checks and from
rendering them: :class:`CheckResult` (one check of one backend on one case in one dtype),
:class:`Row` (the table's line: the worst error of each check over every case) and
:class:`Report` (the verdict, and every number as JSON).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastcnn.ops import PUBLIC_OPS
from fastcnn.tolerances import FD_TOLERANCE, FORWARD_TOLERANCE

#: The backend every other is compared with, computing in float64.
REFERENCE = "naive"
DTYPES: tuple[str, ...] = ("float32", "float64")
REPORT_VERSION = 1

PASS, FAIL, UNSUPPORTED, ERROR = "pass", "FAIL", "unsupported", "error"


@dataclass
class CheckResult:
    """One check of one backend on one case in one dtype."""

    backend: str
    op: str
    dtype: str
    check: str
    case: str
    status: str
    error: float | None = None
    tolerance: float | None = None
    message: str = ""


def describe(exc: BaseException) -> str:
    """How a result names an exception a backend raised."""
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Recorder:
    """Builds and collects the results of one backend on one case in one dtype."""

    backend: str
    dtype: str
    case: str
    sink: list[CheckResult] = field(default_factory=list)

    def record(
        self,
        op: str,
        check: str,
        status: str,
        error: float | None = None,
        tolerance: float | None = None,
        message: str = "",
    ) -> None:
        """Add one result."""
        error = None if error is None else float(error)
        result = CheckResult(
            self.backend, op, self.dtype, check, self.case, status, error, tolerance, message
        )
        self.sink.append(result)

    def judge(
        self,
        op: str,
        check: str,
        problems: list[str],
        error: float | None = None,
        tolerance: float | None = None,
    ) -> None:
        """Add a pass, or a failure that lists the problems found."""
        status = FAIL if problems else PASS
        self.record(op, check, status, error, tolerance, "; ".join(problems))

    def bounded(self, op: str, check: str, error: float, tolerance: float, what: str) -> None:
        """Add a pass if ``error`` is within ``tolerance``, else a failure naming ``what``."""
        problems = [] if error <= tolerance else [f"{what} {error:.3g} > {tolerance:.3g}"]
        self.judge(op, check, problems, error, tolerance)


@dataclass
class Row:
    """The report's summary of one backend x op x dtype over every case."""

    backend: str
    op: str
    dtype: str
    status: str
    cases: int
    worst: dict[str, float] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    message: str = ""


@dataclass
class Report:
    """Everything an audit found; ``passed`` is the verdict."""

    seed: int
    backends: list[str]
    unavailable: dict[str, str]
    results: list[CheckResult]

    @property
    def rows(self) -> list[Row]:
        """Results grouped per backend x op x dtype, in a stable order."""
        groups: dict[tuple[str, str, str], list[CheckResult]] = {}
        for result in self.results:
            groups.setdefault((result.backend, result.op, result.dtype), []).append(result)
        order = {op: i for i, op in enumerate(PUBLIC_OPS)}

        def key(item: tuple[tuple[str, str, str], list[CheckResult]]) -> tuple:
            (backend, op, dtype), _ = item
            return backend, order.get(op, len(order)), dtype

        return [summarise(*group, results) for group, results in sorted(groups.items(), key=key)]

    @property
    def failures(self) -> list[CheckResult]:
        """The results that failed or raised."""
        return [r for r in self.results if r.status in (FAIL, ERROR)]

    @property
    def passed(self) -> bool:
        """True when every supported check of every backend passed."""
        return not self.failures

    def summary(self) -> str:
        """The one-line verdict."""
        rows = self.rows
        counts = {s: sum(r.status == s for r in rows) for s in (PASS, FAIL, ERROR, UNSUPPORTED)}
        head = "PASS" if self.passed else "FAIL"
        text = (
            f"{head}: {len(self.backends)} backends, {counts[PASS]} passed, {counts[FAIL]} failed, "
            f"{counts[ERROR]} errors, {counts[UNSUPPORTED]} unsupported (backend x op x dtype)"
        )
        if not self.passed:
            first = self.failures[0]
            text += (
                f"; first: {first.backend} {first.op} {first.dtype} [{first.case}]: {first.message}"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        """Every number of the report, JSON-ready."""
        return {
            "version": REPORT_VERSION,
            "seed": self.seed,
            "backends": self.backends,
            "unavailable": self.unavailable,
            "tolerances": {"forward": FORWARD_TOLERANCE, "finite_difference": FD_TOLERANCE},
            "passed": self.passed,
            "verdict": self.summary(),
            "rows": [asdict(row) for row in self.rows],
            "results": [asdict(result) for result in self.results],
        }

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, allow_nan=True))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The report that :meth:`to_dict` wrote (its rows are recomputed from the results)."""
        if data.get("version") != REPORT_VERSION:
            raise ValueError(f"report version {data.get('version')!r} is not {REPORT_VERSION}")
        return cls(
            seed=data["seed"],
            backends=list(data["backends"]),
            unavailable=dict(data["unavailable"]),
            results=[CheckResult(**item) for item in data["results"]],
        )

    @classmethod
    def read_json(cls, path: str | Path) -> Report:
        """The report in a file that :meth:`write_json` wrote."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _row_status(results: list[CheckResult]) -> str:
    """An error outranks a failure; a row is unsupported only if every check was."""
    statuses = {r.status for r in results}
    for status in (ERROR, FAIL):
        if status in statuses:
            return status
    return UNSUPPORTED if statuses == {UNSUPPORTED} else PASS


def summarise(backend: str, op: str, dtype: str, results: list[CheckResult]) -> Row:
    """The row of one backend x op x dtype: its status, worst errors and first note."""
    status = _row_status(results)
    worst: dict[str, float] = {}
    tolerance: dict[str, float] = {}
    for r in results:
        if r.error is not None:
            worst[r.check] = max(worst.get(r.check, 0.0), r.error)
        if r.tolerance is not None:
            tolerance[r.check] = r.tolerance
    noted = [r for r in results if r.status == status and r.message]
    if not noted:
        message = ""
    elif status in (FAIL, ERROR):
        message = f"{noted[0].check}: {noted[0].message} (case: {noted[0].case})"
    else:
        message = noted[0].message
    cases = len({r.case for r in results})
    return Row(backend, op, dtype, status, cases, worst, tolerance, message)
