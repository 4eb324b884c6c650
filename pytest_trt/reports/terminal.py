"""The terminal summary: one aligned row per gated test, grouped by test file, fitted to the
terminal's width, and as much of it as pytest's verbosity asks for.

It reads ``TestRecord.as_dict()`` dicts, the form that also arrives from pytest-xdist workers,
so one code path serves both; every state it shows is read from an enum value, never from
message text. A test's first row is its run on the running backend; budgets for other backends
follow on their own rows, marked as not enforced.

Verbosity follows pytest: ``-q`` keeps the failed tests' rows, the warnings that doubt a
verdict and one total line per backend; the default adds every row and every warning; ``-v``
adds, under each test, how its engine was obtained, what was measured, the accuracy found and
where its inputs came from.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_trt.baselines.regression import Verdict
from pytest_trt.judge.baseline_gate import BaselineNote
from pytest_trt.judge.records import BudgetState, TestStatus
from pytest_trt.timing import gpu_clock

DEFAULT_WIDTH = 80  # pytest's own when the terminal's is unknown
_GAP = "  "
_INDENT = "  "  # rows sit under their file's line
_DETAIL = "    "  # -v lines sit under their test's rows
_MIN_TEST_WIDTH = 12
_HEADINGS = ("test", "backend", "acc", "p50 ms", "p99 ms", "qps", "budget", "status")
_RIGHT_ALIGNED = {"p50 ms", "p99 ms", "qps"}
# What a narrow terminal loses first, once budgets wrap at their clauses; the test, its backend
# and its status always stay (the status wraps at its words only when nothing else is left).
_DROP_ORDER = ("qps", "p99 ms", "p50 ms", "budget", "acc")
# Where room beyond the minimum goes first: an unwrapped status and budget, then the test name.
_GROW_ORDER = ("status", "budget", "test")


def wrap(line: str, width: int, indent: str = "    ", first: str = "") -> list[str]:
    """A summary line cut to ``width`` between words, after ``first`` and with continuation
    lines indented. A word longer than the width (a path, a long test id) stays whole on a line
    of its own: cut, it could no longer be copied."""
    return textwrap.wrap(
        line,
        max(width, len(indent) + 8),
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [""]


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


def _status(record: Mapping[str, Any]) -> TestStatus:
    return TestStatus(record["status"])


def _regressed(record: Mapping[str, Any]) -> bool:
    verdict = record.get("regression")
    return bool(verdict) and Verdict(verdict["status"]) is Verdict.REGRESSED


# ---- one-line summaries, shared with ci_report ----------------------------------------------------


def accuracy_summary(accuracy: Mapping[str, Any]) -> str:
    """``passed, worst |d| 3.2e-06`` or ``failed: 1 of 2 outputs, worst |d| 0.41``: the verdict,
    and the largest absolute difference of any output's finite elements."""
    outputs = accuracy.get("outputs") or []
    worst = [o["stats"]["max_abs"] for o in outputs if isinstance((o.get("stats") or {}).get("max_abs"), (int, float))]
    shown = [f"worst |d| {max(worst):.2g}"] if worst else []
    if accuracy.get("passed"):
        return ", ".join(["passed", *shown])
    failed = sum(not o.get("passed") for o in outputs)
    parts = [f"{failed} of {len(outputs)} outputs"] if failed else []
    problems = len(accuracy.get("problems") or [])
    if problems:
        parts.append(f"{problems} other problem{'s' if problems > 1 else ''}")
    return "failed: " + ", ".join(parts + shown)


def budget_summary(budget: Mapping[str, Any], running: str) -> str:
    """``p99 <= 2.00 ms: passed``; another backend's budget names it: ``... (tensorrt): not-enforced``."""
    owner = "" if budget["backend"] == running else f" ({budget['backend']})"
    return f"{budget['description']}{owner}: {BudgetState(budget['state']).value}"


# ---- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    name: str  # the test's name, or "" on a row for another backend's budget
    cells: tuple[str, ...]  # one per heading, the name's cell empty


def _rows(record: Mapping[str, Any]) -> list[_Row]:
    """The record's rows, without the file part of the test id (the group header shows it)."""
    name = record["nodeid"].split("::", 1)[-1]
    perf = record.get("perf") or {}
    latency = perf.get("latency") or {}
    running = record["backend"]
    budgets = record.get("budgets") or []
    own = [b for b in budgets if b["backend"] == running]
    others = [b for b in budgets if b["backend"] != running]
    test_status = _status(record)
    # The test's own verdict first: a test failed by its accuracy or a regression never reads
    # "ok" because its latency budget passed.
    if test_status is TestStatus.ERROR:
        status = "ERROR"
    elif test_status is TestStatus.FAILED:
        status = "FAIL"
    else:
        status = _budget_status(own[0]) if own else "ok"
    rows = [_Row(name, (
        "",
        running,
        _accuracy(record),
        _ms(latency.get("median")),
        _ms(latency.get("p99")) + _short_p99(perf),
        _qps(perf.get("throughput")),
        own[0]["description"] if own else "-",
        status,
    ))]
    rows += [_Row("", ("", b["backend"], "", "", "", "", b["description"], _budget_status(b))) for b in others]
    return rows


@dataclass(frozen=True)
class _Layout:
    columns: tuple[int, ...]  # indexes into _HEADINGS, in order
    widths: dict[int, int]
    dropped: tuple[str, ...]


_BUDGET = _HEADINGS.index("budget")
_STATUS = _HEADINGS.index("status")


def _clauses(text: str) -> list[str]:
    """A budget's clauses as they wrap: "p99 <= 0.50 ms," then ">= 50000 qps"."""
    parts = text.split(", ")
    return [part + "," for part in parts[:-1]] + parts[-1:]


def _budget_lines(text: str, width: int) -> list[str]:
    """A budget wrapped between its clauses, never inside one that fits a line."""
    lines: list[str] = []
    for clause in _clauses(text):
        if lines and len(lines[-1]) + 1 + len(clause) <= width:
            lines[-1] += " " + clause
        else:
            lines += textwrap.wrap(clause, width, break_on_hyphens=False) or [""]
    return lines


def _layout(rows: Sequence[_Row], width: int) -> _Layout:
    """The columns that fit ``width``: names shrink to _MIN_TEST_WIDTH (longer ones get a line
    of their own), budgets wrap at their clauses, then columns go in _DROP_ORDER and, last,
    the status wraps at its words."""
    natural = {i: max([len(h), *(len(row.cells[i]) for row in rows)]) for i, h in enumerate(_HEADINGS)}
    natural[0] = max([len(_HEADINGS[0]), *(len(_INDENT + row.name) for row in rows)])
    least = dict(natural)
    least[0] = min(natural[0], _MIN_TEST_WIDTH)
    least[_BUDGET] = max([len(_HEADINGS[_BUDGET]), *(len(c) for row in rows for c in _clauses(row.cells[_BUDGET]))])
    status_words = max([len(_HEADINGS[_STATUS]), *(len(w) for row in rows for w in row.cells[_STATUS].split())])
    steps = [(_DROP_ORDER[:n], natural[_STATUS]) for n in range(len(_DROP_ORDER) + 1)]
    for dropped, status_least in [*steps, (_DROP_ORDER, status_words)]:
        least[_STATUS] = status_least
        columns = tuple(i for i, h in enumerate(_HEADINGS) if h not in dropped)
        needed = sum(least[i] for i in columns) + len(_GAP) * (len(columns) - 1)
        if needed <= width:
            break
    widths = {i: least[i] for i in columns}
    room = width - needed
    for heading in _GROW_ORDER:
        i = _HEADINGS.index(heading)
        if i not in widths:
            continue
        grow = max(0, min(room, natural[i] - widths[i]))
        widths[i] += grow
        room -= grow
    return _Layout(columns, widths, dropped)


def _cell_lines(heading: str, text: str, width: int) -> list[str]:
    if len(text) <= width:
        return [text]
    if heading == "budget":
        return _budget_lines(text, width)
    return textwrap.wrap(text, width, break_on_hyphens=False)  # the status, on a very narrow terminal


def _render(cells: Sequence[str], layout: _Layout) -> list[str]:
    """One row as one or more lines (a wrapped cell continues below, the others stay blank)."""
    parts = {i: _cell_lines(_HEADINGS[i], cells[i], layout.widths[i]) for i in layout.columns}
    lines = []
    for k in range(max(len(p) for p in parts.values())):
        texts = []
        for i in layout.columns:
            text = parts[i][k] if k < len(parts[i]) else ""
            width = layout.widths[i]
            texts.append(text.rjust(width) if _HEADINGS[i] in _RIGHT_ALIGNED else text.ljust(width))
        lines.append(_GAP.join(texts).rstrip())
    return lines


def _table(records: Sequence[Mapping[str, Any]], width: int, verbose: bool) -> list[str]:
    grouped: dict[str, list[tuple[Mapping[str, Any], list[_Row]]]] = {}
    for record in records:
        grouped.setdefault(record["module"], []).append((record, _rows(record)))
    layout = _layout([row for group in grouped.values() for _, rows in group for row in rows], width)
    lines = _render(_HEADINGS, layout)
    for module, group in grouped.items():
        lines += wrap(module, width)
        for record, rows in group:
            for row in rows:
                cells = list(row.cells)
                shown = _INDENT + row.name if row.name else ""
                if len(shown) > layout.widths[0]:
                    # A long test id gets a line of its own rather than being cut.
                    lines += wrap(row.name, width, _INDENT * 2, first=_INDENT)
                    shown = ""
                cells[0] = shown
                lines += _render(cells, layout)
            if verbose:
                for detail in _details(record):
                    lines += wrap(detail, width, _DETAIL + "  ", first=_DETAIL)
    if layout.dropped:
        lines += wrap(f"({', '.join(layout.dropped)} left out to fit {width} columns)", width)
    return lines


# ---- -v: per-test detail ------------------------------------------------------------------------


def _engine_detail(engine: Mapping[str, Any]) -> str | None:
    how, seconds = engine.get("how"), engine.get("seconds") or 0.0
    outcome = (engine.get("cache") or {}).get("outcome")  # cache.CacheEvent's outcome names
    if how == "memory":
        return "engine: reused from earlier in this session"
    if how == "loaded":
        saved = (engine.get("cache") or {}).get("saved_s") or 0.0
        gain = f", {saved:.1f} s of building saved" if saved > 0 else ""
        return f"engine: loaded from the engine cache in {seconds:.2f} s{gain}"
    if how == "built":
        why = {
            "uncached": "engine cache off",
            "miss": "not in the engine cache; stored there",
            "replaced": "--trt-rebuild",
            "rebuilt": "the cached engine was corrupt",
        }.get(outcome or "", "")
        return f"engine: built in {seconds:.2f} s" + (f" ({why})" if why else "")
    return None


def _perf_detail(perf: Mapping[str, Any]) -> str:
    latency = perf.get("latency") or {}
    points = (("min", "min"), ("p50", "median"), ("p99", "p99"), ("max", "max"))
    spread = ", ".join(f"{label} {_ms(latency[key])}" for label, key in points if latency.get(key) is not None)
    return (
        f"measured: {perf.get('iterations', 0):,} iterations in {perf.get('duration_s', 0.0):.2f} s "
        f"({perf.get('clock', '?')} clock): {spread} ms; {_qps(perf.get('throughput'))} qps"
    )


_RANGE_SOURCE = {
    "graph": "generated within the graph's bound",
    "input_ranges": "generated in its input_ranges",
    "default": "generated in the default range",
    "both values": "generated",
}


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _input_details(record: Mapping[str, Any]) -> list[str]:
    signatures = (record.get("workload") or {}).get("inputs") or {}
    lines = []
    for name, fact in (record.get("feed") or {}).items():
        signature = signatures.get(name) or {}
        shape = signature.get("shape")
        what = " ".join(filter(None, (str(signature.get("dtype", "")), str(shape) if shape is not None else "")))
        if fact.get("source") == "file":
            origin = f"from {fact.get('file')}"
        else:
            origin = _RANGE_SOURCE.get(fact.get("range", ""), "generated")
            if fact.get("range") == "default" and str(signature.get("dtype", "")).startswith(("int", "uint")):
                origin += " (an index? input_ranges= sets it)"  # the graph did not bound it
        values = f", values {_value(fact['min'])}..{_value(fact['max'])}" if "min" in fact else ""
        lines.append(f"input {name}: {what}, {origin}{values}")
    return lines


def _details(record: Mapping[str, Any]) -> list[str]:
    lines = []
    engine = _engine_detail(record.get("engine") or {})
    if engine:
        lines.append(engine)
    if record.get("perf"):
        lines.append(_perf_detail(record["perf"]))
        if record["perf"].get("gpu_clock"):
            lines.append(gpu_clock.describe(record["perf"]["gpu_clock"]))
    if record.get("accuracy"):
        lines.append(f"accuracy: {accuracy_summary(record['accuracy'])}")
    return lines + _input_details(record)


# ---- notes and totals ---------------------------------------------------------------------------


def summary_lines(
    records: Iterable[Mapping[str, Any]], width: int = DEFAULT_WIDTH, verbosity: int = 0
) -> list[str]:
    """The table and its notes at pytest's ``verbosity`` (-1 for -q, 1 for -v), every line
    within ``width``; [] for no records. ``totals`` gives the closing lines."""
    records = sorted(records, key=lambda r: r["nodeid"])
    if not records:
        return []
    quiet = verbosity < 0
    shown = [r for r in records if _status(r) is not TestStatus.PASSED] if quiet else records
    lines = _table(shown, width, verbose=verbosity > 0) if shown else []
    return lines + [line for note in _notes(records, quiet) for line in wrap(note, width)]


def _notes(records: list[Mapping[str, Any]], quiet: bool) -> list[str]:
    """Warnings, baseline lines and the not-enforced note; at -q only what doubts a verdict."""
    notes = []
    for record in records:
        said = list(record.get("doubts") or [])
        if not quiet:
            said += record.get("warnings") or []
        notes += [f"warning: {record['nodeid']}: {warning}" for warning in said]
    notes += _baseline_notes(records, quiet)
    if quiet:
        return notes
    notes += _short_p99_note(records)
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


def _baseline_notes(records: list[Mapping[str, Any]], quiet: bool) -> list[str]:
    """One line per test compared with (or kept from) its baseline; tests without one are
    counted. At -q only regressions."""
    notes, missing = [], 0
    silent = {BaselineNote.OFF, BaselineNote.RECORDED}  # recordings are summed up by the store
    for record in records:
        verdict, note = record.get("regression"), record.get("baseline_note") or ""
        state = BaselineNote(record.get("baseline_state") or BaselineNote.OFF.value)
        if quiet and not _regressed(record):
            continue
        if verdict:
            changed = f" ({note})" if note else ""
            notes.append(f"baseline: {record['nodeid']}: {verdict['status']}, {verdict['message']}{changed}")
        elif state is BaselineNote.NO_BASELINE:
            missing += 1
        elif note and state not in silent:
            notes.append(f"baseline: {record['nodeid']}: {note}")
    if missing:
        notes.append(f"baseline: {missing} measured test(s) have no baseline here (record with --trt-update-baselines)")
    return notes


def totals(records: Iterable[Mapping[str, Any]], width: int = DEFAULT_WIDTH) -> list[str]:
    """One line per running backend: ``pytest-trt: onnxruntime: 8 gated tests, 1 failed,
    0 regressed``, with errors and budgets that were not enforced where there are any."""
    by_backend: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_backend.setdefault(record["backend"], []).append(record)
    lines = []
    for backend, group in sorted(by_backend.items()):
        statuses = [_status(r) for r in group]
        parts = [
            f"{len(group)} gated test{'s' if len(group) != 1 else ''}",
            f"{statuses.count(TestStatus.FAILED)} failed",
        ]
        errors = statuses.count(TestStatus.ERROR)
        if errors:
            parts.append(f"{errors} error{'s' if errors > 1 else ''}")
        parts.append(f"{sum(_regressed(r) for r in group)} regressed")
        budgets = [b for r in group for b in r.get("budgets") or []]
        states = [BudgetState(b["state"]) for b in budgets]
        elsewhere = sorted(b["backend"] for b in budgets if BudgetState(b["state"]) is BudgetState.NOT_ENFORCED)
        for other in sorted(set(elsewhere)):
            count = elsewhere.count(other)
            parts.append(f"{count} {other} budget{'s' if count > 1 else ''} not enforced")
        if BudgetState.NOT_MEASURED in states:
            count = states.count(BudgetState.NOT_MEASURED)
            parts.append(f"{count} budget{'s' if count > 1 else ''} not measured")
        reported = states.count(BudgetState.REPORT_WITHIN) + states.count(BudgetState.REPORT_OVER)
        if reported:
            over = states.count(BudgetState.REPORT_OVER)
            parts.append(f"{reported} budget{'s' if reported > 1 else ''} report only ({over} over)")
        lines += wrap(f"pytest-trt: {backend}: " + ", ".join(parts), width)
    return lines
