"""The terminal summary: one aligned row per gated test, grouped by test file.

It reads ``TestRecord.as_dict()`` dicts, the form that also arrives from pytest-xdist workers,
so one code path serves both. A test's first row is its run on the running backend; budgets for
other backends follow on their own rows, marked as not enforced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .regression import BaselineNote
from .results import BudgetState, TestStatus

DEFAULT_WIDTH = 100
_GAP = "  "
_INDENT = "  "  # rows sit under their file's line
_MIN_TEST_WIDTH = 12
_HEADINGS = ("test", "backend", "acc", "p50 ms", "p99 ms", "qps", "budget", "status")
_RIGHT_ALIGNED = {"p50 ms", "p99 ms", "qps"}


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _qps(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _short_p99(perf: Mapping[str, Any]) -> str:
    """``*`` after a p99 taken from fewer samples than a p99 needs (a note under the table says
    so), so it is never shown bare."""
    return "*" if "p99" in (perf.get("short_percentiles") or ()) else ""


def _short_p99_note(records: list[Mapping[str, Any]]) -> list[str]:
    counts = sorted(
        int(perf.get("budget_samples") or 0)
        for r in records
        if _short_p99(perf := r.get("perf") or {})
    )
    if not counts:
        return []
    n = f"n={counts[0]}" if counts[0] == counts[-1] else f"n={counts[0]}-{counts[-1]}"
    return [f"note: * p99 from fewer than the 100 samples a p99 needs ({n}): it reads low"]


def _accuracy(record: Mapping[str, Any]) -> str:
    result = record.get("accuracy")
    if result is None:
        return "-"
    return "ok" if result.get("passed") else "FAIL"


_BUDGET_STATUS = {
    BudgetState.PASSED: "ok",
    BudgetState.FAILED: "FAIL",
    BudgetState.REPORT_WITHIN: "ok (report only)",
    BudgetState.REPORT_OVER: "over (report only)",
    BudgetState.NOT_MEASURED: "not measured",
    BudgetState.NOT_ENFORCED: "not enforced",  # the row's backend column names the budget's backend
}


def _budget_status(outcome: Mapping[str, Any]) -> str:
    return _BUDGET_STATUS[BudgetState(outcome["state"])]


def _rows(record: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The record's rows, without the file part of the test id (the group header shows it)."""
    name = record["nodeid"].split("::", 1)[-1]
    perf = record.get("perf") or {}
    latency = perf.get("latency") or {}
    running = record["backend"]
    budgets = record.get("budgets") or []
    own = [b for b in budgets if b["backend"] == running]
    others = [b for b in budgets if b["backend"] != running]
    test_status = TestStatus(record["status"])
    if test_status is TestStatus.ERROR:
        status = "ERROR"
    elif own:
        status = _budget_status(own[0])
    else:
        status = "FAIL" if test_status is TestStatus.FAILED else "ok"
    rows = [(
        name,
        running,
        _accuracy(record),
        _ms(latency.get("median")),
        _ms(latency.get("p99")) + _short_p99(perf),
        _qps(perf.get("throughput")),
        own[0]["description"] if own else "-",
        status,
    )]
    rows += [("", b["backend"], "", "", "", "", b["description"], _budget_status(b)) for b in others]
    return rows


def _line(cells: Iterable[str], widths: list[int]) -> str:
    parts = []
    for heading, cell, width in zip(_HEADINGS, cells, widths, strict=True):
        parts.append(cell.rjust(width) if heading in _RIGHT_ALIGNED else cell.ljust(width))
    return _GAP.join(parts).rstrip()


def summary_lines(records: Iterable[Mapping[str, Any]], width: int = DEFAULT_WIDTH) -> list[str]:
    """The table, its notes (high CV, budgets not enforced) and nothing else; [] for no records."""
    records = sorted(records, key=lambda r: r["nodeid"])
    if not records:
        return []
    grouped: dict[str, list[tuple[str, ...]]] = {}
    for record in records:
        grouped.setdefault(record["module"], []).extend(_rows(record))
    all_rows = [row for rows in grouped.values() for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in all_rows)) for i, h in enumerate(_HEADINGS)]
    widths[0] += len(_INDENT)
    room = width - (sum(widths[1:]) + len(_GAP) * (len(widths) - 1))
    widths[0] = min(widths[0], max(room, _MIN_TEST_WIDTH))
    lines = [_line(_HEADINGS, widths)]
    for module, rows in grouped.items():
        lines.append(module)
        for name, *cells in rows:
            shown = _INDENT + name if name else ""
            if len(shown) > widths[0]:
                # A long test id gets a line of its own rather than being cut.
                lines.append(shown)
                shown = ""
            lines.append(_line((shown, *cells), widths))
    lines += _notes(records)
    return lines


def _notes(records: list[Mapping[str, Any]]) -> list[str]:
    notes = _short_p99_note(records)
    for record in records:
        for warning in record.get("warnings") or []:
            notes.append(f"warning: {record['nodeid']}: {warning}")
    notes += _baseline_notes(records)
    skipped = sorted({
        (b["backend"], r["backend"])
        for r in records
        for b in r.get("budgets") or []
        if b["backend"] != r["backend"]
    })
    for budget_backend, running in skipped:
        notes.append(
            f"note: {budget_backend} budgets are reported, not enforced, while {running} runs the models"
        )
    return notes


def _baseline_notes(records: list[Mapping[str, Any]]) -> list[str]:
    """One line per test compared with (or kept from) its baseline; tests without one are counted."""
    notes, missing = [], 0
    quiet = {BaselineNote.OFF, BaselineNote.RECORDED}  # recordings are summed up by the store
    for record in records:
        verdict, note = record.get("regression"), record.get("baseline_note") or ""
        state = BaselineNote(record.get("baseline_state") or BaselineNote.OFF.value)
        if verdict:
            changed = f" ({note})" if note else ""
            notes.append(f"baseline: {record['nodeid']}: {verdict['status']}, {verdict['message']}{changed}")
        elif state is BaselineNote.NO_BASELINE:
            missing += 1
        elif note and state not in quiet:
            notes.append(f"baseline: {record['nodeid']}: {note}")
    if missing:
        notes.append(f"baseline: {missing} measured test(s) have no baseline here (record with --trt-update-baselines)")
    return notes
