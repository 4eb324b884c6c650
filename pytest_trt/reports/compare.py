"""Two JSON reports side by side, judged by the gate's own rule.

Each test of the old report is made the baseline entry a recording of it would store
(``entry.entry_from_measurement``); the new report's measurement is compared with it by
``regression.assess`` (floors, the host probe, a busy host) after the same staleness check the
gate makes. A report holds one measurement per test, so there is no fresh session to confirm a
reading: the verdict is that one session's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from pytest_trt.baselines.comparability import staleness
from pytest_trt.baselines.entry import BaselineInput, entry_from_measurement
from pytest_trt.baselines.regression import Verdict, assess
from pytest_trt.judge.records import TestRecord
from pytest_trt.reports.report_files import ReportFile


class Compared(str, Enum):
    """What one test's row says."""

    REGRESSED = "regressed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"
    STALE = "stale"  # another workload was measured: not compared
    NOT_MEASURED = "not-measured"  # one side has no latency sample
    ADDED = "added"  # only in the new report
    REMOVED = "removed"  # only in the old report


_FROM_VERDICT = {
    Verdict.REGRESSED: Compared.REGRESSED,
    Verdict.IMPROVED: Compared.IMPROVED,
    Verdict.UNCHANGED: Compared.UNCHANGED,
    Verdict.INCONCLUSIVE: Compared.INCONCLUSIVE,
}


@dataclass(frozen=True)
class ComparedTest:
    """One row: the test, both floors (ms, None where not measured), the change and why."""

    nodeid: str
    state: Compared
    old_floor_ms: float | None = None
    new_floor_ms: float | None = None
    change: float | None = None
    message: str = ""


def _floor(record: TestRecord | None) -> float | None:
    if record is None or record.perf is None or not record.perf.samples_ms:
        return None
    return min(record.perf.samples_ms)


def compare_records(nodeid: str, old: TestRecord | None, new: TestRecord | None, threshold: float) -> ComparedTest:
    """One test of both reports (None where a report lacks it)."""
    floors = {"old_floor_ms": _floor(old), "new_floor_ms": _floor(new)}
    if old is None:
        return ComparedTest(nodeid, Compared.ADDED, **floors, message="only in the new report")
    if new is None:
        return ComparedTest(nodeid, Compared.REMOVED, **floors, message="only in the old report")
    if old.perf is None or new.perf is None or not old.perf.samples_ms or not new.perf.samples_ms:
        side = "old" if old.perf is None or not old.perf.samples_ms else "new"
        return ComparedTest(nodeid, Compared.NOT_MEASURED, **floors, message=f"no latency sample in the {side} report")
    entry = entry_from_measurement(BaselineInput(old.subject, old.perf), None)
    reason = staleness(entry, BaselineInput(new.subject, new.perf))
    if reason is not None:
        return ComparedTest(nodeid, Compared.STALE, **floors, message=f"not compared: {reason}")
    verdict = assess(entry, new.perf, threshold)
    return ComparedTest(nodeid, _FROM_VERDICT[verdict.status], **floors, change=verdict.change, message=verdict.message)


def compare_reports(old: ReportFile, new: ReportFile, threshold: float) -> list[ComparedTest]:
    """Every test of either report, in the new report's order, then those only in the old."""
    before, after = old.by_nodeid(), new.by_nodeid()
    order = [*after, *(nodeid for nodeid in before if nodeid not in after)]
    return [compare_records(nodeid, before.get(nodeid), after.get(nodeid), threshold) for nodeid in order]


def _ms(value: float | None) -> str:
    return f"{value:.4g}" if value is not None else "-"


def table(rows: Sequence[ComparedTest]) -> str:
    """The rows as an aligned text table, with a totals line."""
    header = ("test", "old min ms", "new min ms", "change", "verdict")
    cells = [
        (r.nodeid, _ms(r.old_floor_ms), _ms(r.new_floor_ms), f"{r.change * 100:+.1f}%" if r.change is not None else "-",
         r.state.value)
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in (header, *cells)) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
             for line in (header, *cells)]
    counts = {state: sum(r.state is state for r in rows) for state in Compared}
    totals = ", ".join(f"{n} {state.value}" for state, n in counts.items() if n)
    return "\n".join([*lines, "", f"{len(rows)} tests: {totals or 'none'}"])
