"""The terminal summary: one aligned row per gated test, grouped by test file, fitted to the
terminal's width, and as much of it as pytest's verbosity asks for.

It reads ``TestRecord`` objects (the controller rebuilds pytest-xdist workers' records as
such), so one code path serves both; every state it shows is read from an enum, never from
message text. A test's first row is its run on the running backend; budgets for other backends
follow on their own rows, marked as not enforced.

Verbosity follows pytest: ``-q`` keeps the failed tests' rows, the warnings that doubt a
verdict and one total line per backend; the default adds every row and every warning; ``-v``
adds, under each test, how its engine was obtained, what was measured, the accuracy found and
where its inputs came from.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_trt.baselines.regression import RegressionVerdict, Verdict
from pytest_trt.baselines.subject import InputFacts, InputRange, InputSource, TensorSignature, TestSubject
from pytest_trt.judge.accuracy import AccuracyResult
from pytest_trt.judge.baseline_gate import BaselineNote
from pytest_trt.judge.records import GPU_BUDGET, BudgetOutcome, BudgetState, StreamsPoint, TestRecord, TestStatus
from pytest_trt.judge.sweep import best_line
from pytest_trt.serde import from_data, to_data
from pytest_trt.store.cache import CacheOutcome
from pytest_trt.timing import gpu_clock
from pytest_trt.timing.measure import PerfClock, PerfResult

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


def _short_p99(perf: PerfResult | None) -> str:
    """``*`` after a p99 taken from fewer samples than a p99 needs (a note under the table says
    so), so it is never shown bare."""
    return "*" if perf is not None and "p99" in perf.short_percentiles else ""


def _short_p99_note(records: list[TestRecord]) -> list[str]:
    counts = sorted(len(r.perf.budget_samples_ms) for r in records if r.perf is not None and _short_p99(r.perf))
    if not counts:
        return []
    n = f"n={counts[0]}" if counts[0] == counts[-1] else f"n={counts[0]}-{counts[-1]}"
    return [f"note: * p99 from fewer than the 100 samples a p99 needs ({n}): it reads low"]


def _accuracy(record: TestRecord) -> str:
    if record.accuracy is None:
        return "-"
    return "ok" if record.accuracy.passed else "FAIL"


_BUDGET_STATUS = {
    BudgetState.PASSED: "ok",
    BudgetState.FAILED: "FAIL",
    BudgetState.REPORT_WITHIN: "ok (report only)",
    BudgetState.REPORT_OVER: "over (report only)",
    BudgetState.NOT_MEASURED: "not measured",
    BudgetState.NOT_ENFORCED: "not enforced",  # the row's backend column names the budget's backend
}


def _budget_status(outcome: BudgetOutcome) -> str:
    return _BUDGET_STATUS[outcome.state]


# ---- one-line summaries, shared with ci_report ----------------------------------------------------


def accuracy_summary(accuracy: AccuracyResult) -> str:
    """``passed, worst |d| 3.2e-06`` or ``failed: 1 of 2 outputs, worst |d| 0.41``: the verdict,
    and the largest absolute difference of any output's finite elements."""
    outputs = accuracy.outputs
    worst = [o.stats.max_abs for o in outputs if o.stats.max_abs is not None and math.isfinite(o.stats.max_abs)]
    shown = [f"worst |d| {max(worst):.2g}"] if worst else []
    if accuracy.passed:
        return ", ".join(["passed", *shown])
    failed = sum(not o.passed for o in outputs)
    parts = [f"{failed} of {len(outputs)} outputs"] if failed else []
    problems = len(accuracy.problems)
    if problems:
        parts.append(f"{problems} other problem{'s' if problems > 1 else ''}")
    return "failed: " + ", ".join(parts + shown)


def budget_summary(budget: BudgetOutcome, running: str) -> str:
    """``p99 <= 2.00 ms: passed``; another backend's budget names it: ``... (tensorrt): not-enforced``."""
    owner = "" if budget.backend == running else f" ({budget.backend})"
    return f"{budget.description}{owner}: {budget.state.value}"


# ---- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    name: str  # the test's name, or "" on a row for another backend's budget
    cells: tuple[str, ...]  # one per heading, the name's cell empty


def _rows(record: TestRecord) -> list[_Row]:
    """The record's rows, without the file part of the test id (the group header shows it)."""
    name = record.nodeid.split("::", 1)[-1]
    perf = record.perf
    running = record.backend
    own = [b for b in record.budgets if b.backend == running]
    others = [b for b in record.budgets if b.backend != running]
    test_status = record.status
    # The test's own verdict first: a test failed by its accuracy or a regression never reads
    # "ok" because its latency budget passed.
    if test_status is TestStatus.ERROR:
        status = f"ERROR ({record.step.value})" if record.step is not None else "ERROR"
    elif test_status is TestStatus.FAILED:
        status = "FAIL"
    else:
        status = _budget_status(own[0]) if own else "ok"
    rows = [_Row(name, (
        "",
        running,
        _accuracy(record),
        _ms(perf.latency.median if perf is not None else None),
        _ms(perf.latency.p99 if perf is not None else None) + _short_p99(perf),
        _qps(perf.throughput if perf is not None else None),
        own[0].description if own else "-",
        status,
    ))]
    # A GPU budget and one naming the running backend both apply: the second on a row of its own.
    rows += [_Row("", ("", b.backend, "", "", "", "", b.description, _budget_status(b))) for b in own[1:] + others]
    return rows + _sweep_rows(record)


def _sweep_rows(record: TestRecord) -> list[_Row]:
    """A batch sweep: one row per batch size under the test, then the batch that gives the most
    throughput within the latency budget."""
    rows = []
    for point in record.sweep:
        budget = point.budgets[0] if point.budgets else None
        acc = "-" if point.accuracy_passed is None else "ok" if point.accuracy_passed else "FAIL"
        status = "FAIL" if point.failed else _budget_status(budget) if budget is not None else "ok"
        rows.append(_Row(f"{_INDENT}batch {point.batch}", (
            "", record.backend, acc, _ms(point.latency.median), _ms(point.latency.p99), _qps(point.throughput),
            budget.description.split(": ", 1)[-1] if budget is not None else "-", status,
        )))
    line = best_line(record.sweep)
    if line:
        rows.append(_Row(f"{_INDENT}{line}", ("",) * len(_HEADINGS)))
    return rows + [_streams_row(record, point) for point in record.streams]


def _streams_row(record: TestRecord, point: StreamsPoint) -> _Row:
    """``streams=N``: per-request latency over every stream, aggregate throughput."""
    budget = point.budgets[0] if point.budgets else None
    acc = "-" if point.accuracy_passed is None else "ok" if point.accuracy_passed else "FAIL"
    status = "FAIL" if point.failed else _budget_status(budget) if budget is not None else "ok"
    name = f"{_INDENT}{point.streams} stream{'s' if point.streams > 1 else ''}"
    return _Row(name, (
        "", record.backend, acc, _ms(point.latency.median), _ms(point.latency.p99), _qps(point.throughput),
        budget.description.split(": ", 1)[-1] if budget is not None else "-", status,
    ))


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


def _table(records: Sequence[TestRecord], width: int, verbose: bool) -> list[str]:
    grouped: dict[str, list[tuple[TestRecord, list[_Row]]]] = {}
    for record in records:
        grouped.setdefault(record.module, []).append((record, _rows(record)))
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


@dataclass(frozen=True)
class _CacheView:
    """What the summary shows of an engine's cache event (store.cache.CacheEvent)."""

    outcome: CacheOutcome | None = None
    saved_s: float = 0.0


@dataclass(frozen=True)
class _EngineView:
    """What the summary shows of how an engine was obtained (the subject's engine provenance)."""

    how: str = ""  # "built", "loaded" (from the engine cache) or "memory" (earlier in this session)
    seconds: float = 0.0
    cache: _CacheView = _CacheView()


_BUILT_BECAUSE = {
    CacheOutcome.UNCACHED: "engine cache off",
    CacheOutcome.MISS: "not in the engine cache; stored there",
    CacheOutcome.REPLACED: "--trt-rebuild",
    CacheOutcome.REBUILT: "the cached engine was corrupt",
}


def _engine_detail(provenance: Mapping[str, Any]) -> str | None:
    engine = from_data(_EngineView, dict(provenance), where="engine")
    if engine.how == "memory":
        return "engine: reused from earlier in this session"
    if engine.how == "loaded":
        saved = engine.cache.saved_s
        gain = f", {saved:.1f} s of building saved" if saved > 0 else ""
        return f"engine: loaded from the engine cache in {engine.seconds:.2f} s{gain}"
    if engine.how == "built":
        why = _BUILT_BECAUSE.get(engine.cache.outcome) if engine.cache.outcome is not None else None
        return f"engine: built in {engine.seconds:.2f} s" + (f" ({why})" if why else "")
    return None


def _perf_detail(perf: PerfResult) -> str:
    latency = perf.latency
    points = (("min", latency.min), ("p50", latency.median), ("p99", latency.p99), ("max", latency.max))
    spread = ", ".join(f"{label} {_ms(value)}" for label, value in points)
    return (
        f"measured: {perf.iterations:,} iterations in {perf.duration_s:.2f} s "
        f"({PerfClock(perf.clock).value} clock): {spread} ms; {_qps(perf.throughput)} qps"
    )


_RANGE_SOURCE = {
    InputRange.GRAPH: "generated within the graph's bound",
    InputRange.INPUT_RANGES: "generated in its input_ranges",
    InputRange.DEFAULT: "generated in the default range",
    InputRange.BOTH_VALUES: "generated",
}


def _value(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _input_detail(name: str, fact: InputFacts, signature: TensorSignature | None) -> str:
    dtype = signature.dtype if signature is not None else ""
    shape = str(list(signature.shape)) if signature is not None else ""
    what = " ".join(filter(None, (dtype, shape)))
    if fact.source is InputSource.FILE:
        origin = f"from {fact.file}"
    else:
        origin = _RANGE_SOURCE.get(fact.range, "generated") if fact.range is not None else "generated"
        if fact.range is InputRange.DEFAULT and dtype.startswith(("int", "uint")):
            origin += " (an index? input_ranges= sets it)"  # the graph did not bound it
    values = ""
    if fact.min is not None and fact.max is not None:
        values = f", values {_value(fact.min)}..{_value(fact.max)}"
    return f"input {name}: {what}, {origin}{values}"


def _input_details(subject: TestSubject) -> list[str]:
    signatures = subject.workload.inputs
    return [_input_detail(name, fact, signatures.get(name)) for name, fact in subject.feed.items()]


def _details(record: TestRecord) -> list[str]:
    lines = []
    engine = _engine_detail(record.subject.engine)
    if engine:
        lines.append(engine)
    if record.perf is not None:
        lines.append(_perf_detail(record.perf))
        if record.perf.gpu_clock is not None:
            lines.append(gpu_clock.describe(to_data(record.perf.gpu_clock)))
    if record.accuracy is not None:
        lines.append(f"accuracy: {accuracy_summary(record.accuracy)}")
    if record.layers is not None:
        layers = record.layers
        lines.append(
            f"slowest layers ({layers.source}, median of {layers.runs} runs, {layers.total_ms:.3f} ms in "
            f"{layers.total_layers} layers): " + "; ".join(layers.top_lines(5))
        )
    return lines + _input_details(record.subject)


# ---- notes and totals ---------------------------------------------------------------------------


def summary_lines(records: Iterable[TestRecord], width: int = DEFAULT_WIDTH, verbosity: int = 0) -> list[str]:
    """The table and its notes at pytest's ``verbosity`` (-1 for -q, 1 for -v), every line
    within ``width``; [] for no records. ``totals`` gives the closing lines."""
    ordered = sorted(records, key=lambda r: r.nodeid)
    if not ordered:
        return []
    quiet = verbosity < 0
    shown = [r for r in ordered if r.status is not TestStatus.PASSED] if quiet else ordered
    lines = _table(shown, width, verbose=verbosity > 0) if shown else []
    return lines + [line for note in _notes(ordered, quiet) for line in wrap(note, width)]


def _notes(records: list[TestRecord], quiet: bool) -> list[str]:
    """Warnings, baseline lines and the not-enforced note; at -q only what doubts a verdict."""
    notes = []
    for record in records:
        said = [*record.doubts, *(record.warnings if not quiet else ())]
        notes += [f"warning: {record.nodeid}: {warning}" for warning in said]
    notes += _baseline_notes(records, quiet)
    if quiet:
        return notes
    notes += _short_p99_note(records)
    notes += _lock_wait_note(records)
    skipped = sorted({(b.backend, r.backend) for r in records for b in r.budgets if b.backend != r.backend})
    for budget_backend, running in skipped:
        if budget_backend == GPU_BUDGET:
            notes.append(
                f"note: GPU budgets (trt_perf without backend=) are reported, not enforced, while {running} "
                "runs the models on the CPU; a GPU backend enforces them (--trt-require-gpu fails a run "
                "without one)"
            )
        else:
            notes.append(
                f"note: {budget_backend} budgets are reported, not enforced, while {running} runs the models"
            )
    return notes


# Waits shorter than this are the lock's own cost, not another measurement's.
_NOTICED_WAIT_S = 0.01
_LISTED_WAITS = 5  # beyond this many waiting tests the note gives the count and the longest


def _lock_wait_note(records: list[TestRecord]) -> list[str]:
    """How long measurements queued for their device's lock (another worker's or run's
    measurement): never part of a timing, but part of the run's wall time."""
    waits = sorted(
        ((r.perf.lock_wait_s, r.nodeid) for r in records if r.perf is not None and r.perf.lock_wait_s >= _NOTICED_WAIT_S),
        reverse=True,
    )
    if not waits:
        return []
    total = sum(w for w, _ in waits)
    if len(waits) <= _LISTED_WAITS:
        each = ", ".join(f"{nodeid} {wait:.1f} s" for wait, nodeid in waits)
    else:
        each = f"longest {waits[0][1]} {waits[0][0]:.1f} s"
    return [
        f"note: {_plural(len(waits), 'measurement')} waited {total:.1f} s for the measurement lock ({each}); "
        "waits are not part of any timing"
    ]


_SILENT = {BaselineNote.OFF, BaselineNote.RECORDED}  # recordings are summed up by the store


def _compared(record: TestRecord) -> list[tuple[str, RegressionVerdict | None, str, BaselineNote]]:
    """What the baseline step said of a test: of the test, or of each batch size of a sweep."""
    if record.sweep:
        return [(f"{record.nodeid} batch {p.batch}", p.regression, p.baseline_note, p.baseline_state) for p in record.sweep]
    return [(record.nodeid, record.regression, record.baseline_note, record.baseline_state)]


def _baseline_notes(records: list[TestRecord], quiet: bool) -> list[str]:
    """One line per test (per batch size of a sweep) compared with (or kept from) its baseline;
    tests without one are counted. At -q only regressions."""
    notes, missing = [], 0
    for record in records:
        for name, verdict, note, state in _compared(record):
            if quiet and (verdict is None or verdict.status not in (Verdict.REGRESSED, Verdict.INCONCLUSIVE)):
                continue
            if verdict is not None:
                changed = f" ({note})" if note else ""
                notes.append(f"baseline: {name}: {verdict.status.value}, {verdict.message}{changed}")
            elif state is BaselineNote.NO_BASELINE:
                missing += 1
            elif note and state not in _SILENT:
                notes.append(f"baseline: {name}: {note}")
    if missing:
        notes.append(f"baseline: {missing} measured test(s) have no baseline here (record with --trt-update-baselines)")
    return notes


def totals(records: Iterable[TestRecord], width: int = DEFAULT_WIDTH) -> list[str]:
    """One line per running backend: ``pytest-trt: onnxruntime: 8 gated tests, 1 failed,
    0 regressed``, with errors and budgets that were not enforced where there are any."""
    by_backend: dict[str, list[TestRecord]] = {}
    for record in records:
        by_backend.setdefault(record.backend, []).append(record)
    return [
        line
        for backend, group in sorted(by_backend.items())
        for line in wrap(f"pytest-trt: {backend}: " + ", ".join(_total_parts(group)), width)
    ]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _total_parts(group: list[TestRecord]) -> list[str]:
    # Counted as pytest counts them: a gate that cannot judge fails the test, an engine that
    # cannot be made is an error of its setup.
    outcomes = [r.pytest_outcome for r in group]
    parts = [_plural(len(group), "gated test"), f"{outcomes.count('failed')} failed"]
    errors = outcomes.count("error")
    if errors:
        parts.append(_plural(errors, "error"))
    parts.append(f"{sum(r.regressed for r in group)} regressed")
    inconclusive = sum(r.inconclusive for r in group)
    if inconclusive:
        parts.append(f"{inconclusive} inconclusive")
    return parts + _budget_parts([b for r in group for b in r.budgets])


def _budget_parts(budgets: list[BudgetOutcome]) -> list[str]:
    """The budgets that were not enforced, by why: another backend's, not measured, report only."""
    states = [b.state for b in budgets]
    elsewhere = sorted(b.backend for b in budgets if b.state is BudgetState.NOT_ENFORCED)
    parts = [
        f"{_plural(elsewhere.count(other), 'GPU budget')} not enforced (no GPU backend runs)"
        if other == GPU_BUDGET
        else f"{_plural(elsewhere.count(other), other + ' budget')} not enforced"
        for other in sorted(set(elsewhere))
    ]
    if BudgetState.NOT_MEASURED in states:
        parts.append(f"{_plural(states.count(BudgetState.NOT_MEASURED), 'budget')} not measured")
    reported = states.count(BudgetState.REPORT_WITHIN) + states.count(BudgetState.REPORT_OVER)
    if reported:
        over = states.count(BudgetState.REPORT_OVER)
        parts.append(f"{_plural(reported, 'budget')} report only ({over} over)")
    return parts
