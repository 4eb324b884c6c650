"""Reports for CI: a JSON file with everything, a Markdown table for pull requests (also appended
to ``$GITHUB_STEP_SUMMARY``), and per-test JUnit properties.

Records are ``TestRecord`` objects: the controller rebuilds those of pytest-xdist workers, so
tests from every worker are reported through one path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_trt.baselines.regression import Verdict
from pytest_trt.judge.records import SweepPoint, TestRecord, TestStatus
from pytest_trt.reports.terminal import accuracy_summary, budget_summary
from pytest_trt.serde import dumps
from pytest_trt.store.files import write_atomic

# 2: budgets carry "state", records "baseline_state" and "failures" (enum values, see records.py).
# 3: records carry "doubts" (warnings that a verdict may be wrong) and "feed" (inputs' origin).
# 4: tests whose engine could not be made are records too: "at_setup", and "step" that failed.
SCHEMA = 4
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def write_json(path: Path, records: Sequence[TestRecord], meta: Mapping[str, Any]) -> None:
    """Every measured test with its full statistics, baseline comparison and verdict; ``meta``
    carries run facts (machine fingerprint, hardware class, commit, options)."""
    data = {"schema": SCHEMA, "meta": dict(meta), "tests": [r.as_dict() for r in records]}
    write_atomic(Path(path), dumps(data, indent=1) + "\n")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _ms(value: float | None) -> str:
    return f"{value:.3f}" if _finite(value) is not None else ""


def comparison(record: TestRecord) -> tuple[str, str]:
    """(what the baseline comparison found, verdict) for one record."""
    regression, note = record.regression, record.baseline_note
    if regression is not None:
        found = regression.message + (f" [{note}]" if note else "")
        return found, regression.status.value
    return note or "not compared", "-"


def markdown(records: Sequence[TestRecord], meta: Mapping[str, Any]) -> str:
    verdicts = [comparison(r)[1] for r in records]
    outcomes = [r.pytest_outcome for r in records]
    errors = f", {outcomes.count('error')} errors" if "error" in outcomes else ""
    lines = [
        (
            f"## pytest-trt: {len(records)} tests, {outcomes.count('failed')} failed{errors}, "
            f"{sum(r.regressed for r in records)} regressed, {verdicts.count(Verdict.IMPROVED.value)} improved"
        ),
        "",
    ]
    facts = [f"{key}: `{_cell(meta[key])}`" for key in ("hardware", "backend", "commit") if meta.get(key)]
    if facts:
        lines += [", ".join(facts), ""]
    lines += [
        "| test | backend | status | p50 ms | p99 ms | qps | vs baseline | verdict |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    notes, failures = [], []
    for record in records:
        lines.append(_row(record))
        lines += [_point_row(record, point) for point in record.sweep]
        notes += [f"- `{_cell(record.nodeid)}`: {_cell(w)}" for w in (*record.doubts, *record.warnings)]
        if record.status is not TestStatus.PASSED and record.failures:
            failures += _failure_block(record)
    if notes:
        lines += ["", "**Warnings**", "", *notes]
    if failures:
        lines += ["", "### Failures", *failures]
    return "\n".join(lines) + "\n"


def _row(record: TestRecord) -> str:
    perf = record.perf
    p50 = p99 = qps = ""
    if perf is not None:
        # A p99 from fewer samples than a p99 needs says so (measure.PerfResult.short_of).
        short = f" (n={len(perf.budget_samples_ms)})" if "p99" in perf.short_percentiles else ""
        p50, p99 = _ms(perf.latency.median), _ms(perf.latency.p99) + short
        qps = f"{perf.throughput:,.0f}" if _finite(perf.throughput) is not None else ""
    found, verdict = comparison(record)
    status = record.status.value + (f" ({record.step.value})" if record.step is not None else "")
    cells = (record.nodeid, record.backend, status, p50, p99, qps, found, verdict)
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _point_row(record: TestRecord, point: SweepPoint) -> str:
    """One batch size of a sweep, under its test's row."""
    found, verdict = "not compared", "-"
    if point.regression is not None:
        found, verdict = point.regression.message, point.regression.status.value
    status = "failed" if point.failed else "passed"
    qps = f"{point.throughput:,.0f}" if _finite(point.throughput) is not None else ""
    cells = (f"{record.nodeid} batch {point.batch}", record.backend, status, _ms(point.latency.median),
             _ms(point.latency.p99), qps, found, verdict)
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _failure_block(record: TestRecord) -> list[str]:
    """The failed test's reasons as its failure shows them, in a code block (they are indented
    text: accuracy reports, histograms), fenced longer than any backtick run inside."""
    text = "\n".join(record.failures)
    fence = "```"
    while fence in text:
        fence += "`"
    return ["", f"**`{_cell(record.nodeid)}`** ({record.status.value})", "", f"{fence}text", text, fence]


def write_markdown(path: Path, records: Sequence[TestRecord], meta: Mapping[str, Any]) -> None:
    """The summary table to ``path`` (atomically), and appended to ``$GITHUB_STEP_SUMMARY``
    when that is set, as GitHub Actions expects."""
    text = markdown(records, meta)
    write_atomic(Path(path), text)
    summary = os.environ.get(STEP_SUMMARY)
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text)


def junit_properties(record: TestRecord) -> list[tuple[str, str]]:
    """Properties for ``item.user_properties``: the test's status, its accuracy, one
    ``trt_budget`` per budget with its verdict, latency percentiles, throughput, baseline delta
    and verdict, named ``trt_*`` so they sort together in CI viewers."""
    running = record.backend
    props = [("trt_backend", running), ("trt_status", record.status.value)]
    if record.accuracy is not None:
        props.append(("trt_accuracy", accuracy_summary(record.accuracy)))
    props += [("trt_budget", budget_summary(budget, running)) for budget in record.budgets]
    return props + _perf_properties(record) + _baseline_properties(record)


def _perf_properties(record: TestRecord) -> list[tuple[str, str]]:
    perf = record.perf
    if perf is None:
        return []
    latency = perf.latency
    props = [
        (f"trt_latency_{label}_ms", f"{value:.4f}")
        for label, value in (("p50", latency.median), ("p90", latency.p90), ("p99", latency.p99))
        if _finite(value) is not None
    ]
    if _finite(perf.throughput) is not None:
        props.append(("trt_throughput_qps", f"{perf.throughput:.1f}"))
    return props


def _baseline_properties(record: TestRecord) -> list[tuple[str, str]]:
    props = []
    regression = record.regression
    if regression is not None:
        if _finite(regression.change) is not None:
            props.append(("trt_baseline_delta", f"{regression.change * 100:+.1f}%"))
        props.append(("trt_baseline_verdict", regression.status.value))
        props.append(("trt_baseline_message", regression.message))
    if record.baseline_note:
        props.append(("trt_baseline_note", record.baseline_note))
    return props
