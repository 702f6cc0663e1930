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
REPORT_VERSION = 2

PASS, FAIL, UNSUPPORTED, ERROR = "pass", "FAIL", "unsupported", "error"
#: A case that ran and passed but proves little (its reference output is mostly zeros).
MISTRUSTED = "mistrusted"


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
    #: The error's share of its bound from analysis (at most 1 passes), where one applies.
    use: float | None = None


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
        use: float | None = None,
    ) -> None:
        """Add one result."""
        error = None if error is None else float(error)
        use = None if use is None else float(use)
        result = CheckResult(
            self.backend, op, self.dtype, check, self.case, status, error, tolerance, message, use
        )
        self.sink.append(result)

    def judge(
        self,
        op: str,
        check: str,
        problems: list[str],
        error: float | None = None,
        tolerance: float | None = None,
        *,
        use: float | None = None,
    ) -> None:
        """Add a pass, or a failure that lists the problems found."""
        status = FAIL if problems else PASS
        self.record(op, check, status, error, tolerance, "; ".join(problems), use)

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
    #: Per check, the worst share of the bound from analysis.
    use: dict[str, float] = field(default_factory=dict)
    #: Cases that passed but prove little (mostly-zero outputs).
    mistrusted: int = 0


@dataclass
class Report:
    """Everything an audit found; ``passed`` is the verdict."""

    seed: int
    backends: list[str]
    unavailable: dict[str, str]
    results: list[CheckResult]
    #: Backends that declare results may change with the thread count (not checked).
    thread_variant: list[str] = field(default_factory=list)

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

    def case_counts(self) -> dict[str, int]:
        """Outcomes per backend x op x dtype x case: passed, mistrusted, failed, ..."""
        outcomes: dict[tuple[str, str, str, str], set[str]] = {}
        for r in self.results:
            outcomes.setdefault((r.backend, r.op, r.dtype, r.case), set()).add(r.status)
        counts = dict.fromkeys((PASS, MISTRUSTED, FAIL, ERROR, UNSUPPORTED), 0)
        for statuses in outcomes.values():
            for status in (ERROR, FAIL, MISTRUSTED, PASS, UNSUPPORTED):
                if status in statuses:
                    counts[status] += 1
                    break
        return counts

    def summary(self) -> str:
        """The verdict: counts per case run (a backend, op, dtype and case each)."""
        counts = self.case_counts()
        head = "PASS" if self.passed else "FAIL"
        text = (
            f"{head}: {len(self.backends)} backends; case runs: {counts[PASS]} passed, "
            f"{counts[MISTRUSTED]} mistrusted (passed, but mostly zero outputs prove little), "
            f"{counts[FAIL]} failed, {counts[ERROR]} errors, {counts[UNSUPPORTED]} unsupported"
        )
        if not self.passed:
            first = self.failures[0]
            text += (
                f"; first: {first.backend} {first.op} {first.dtype} {first.check} "
                f"[{first.case}]: {first.message}"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        """Every number of the report, JSON-ready."""
        return {
            "version": REPORT_VERSION,
            "seed": self.seed,
            "backends": self.backends,
            "unavailable": self.unavailable,
            "tolerances": {"former_forward": FORWARD_TOLERANCE, "finite_difference": FD_TOLERANCE},
            "thread_variant": self.thread_variant,
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
            thread_variant=list(data.get("thread_variant", [])),
        )

    @classmethod
    def read_json(cls, path: str | Path) -> Report:
        """The report in a file that :meth:`write_json` wrote."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _row_status(results: list[CheckResult]) -> str:
    """An error outranks a failure; a row is unsupported only if every check was."""
    statuses = {r.status for r in results} - {MISTRUSTED}
    for status in (ERROR, FAIL):
        if status in statuses:
            return status
    return UNSUPPORTED if statuses == {UNSUPPORTED} else PASS


def summarise(backend: str, op: str, dtype: str, results: list[CheckResult]) -> Row:
    """The row of one backend x op x dtype: its status, worst errors and first note."""
    status = _row_status(results)
    worst: dict[str, float] = {}
    tolerance: dict[str, float] = {}
    use: dict[str, float] = {}
    for r in results:
        if r.error is not None:
            worst[r.check] = max(worst.get(r.check, 0.0), r.error)
        if r.tolerance is not None:
            tolerance[r.check] = r.tolerance
        if r.use is not None:
            use[r.check] = max(use.get(r.check, 0.0), r.use)
    noted = [r for r in results if r.status == status and r.message]
    if not noted:
        message = ""
    elif status in (FAIL, ERROR):
        message = f"{noted[0].check}: {noted[0].message} (case: {noted[0].case})"
    else:
        message = noted[0].message
    cases = len({r.case for r in results})
    mistrusted = len({r.case for r in results if r.status == MISTRUSTED})
    return Row(backend, op, dtype, status, cases, worst, tolerance, message, use, mistrusted)
