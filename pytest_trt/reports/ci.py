"""Reports for CI: a JSON file with everything, a Markdown table for pull requests (also appended
to ``$GITHUB_STEP_SUMMARY``), and per-test JUnit properties.

Records are ``TestRecord`` objects or their ``as_dict()`` form (what pytest-xdist workers send),
so the controller can report tests from every worker through one path.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_trt.baselines.regression import Verdict
from pytest_trt.judge.records import TestRecord, TestStatus
from pytest_trt.reports.terminal import accuracy_summary, budget_summary
from pytest_trt.store.files import write_atomic

# 2: budgets carry "state", records "baseline_state" and "failures" (enum values, see results.py).
# 3: records carry "doubts" (warnings that a verdict may be wrong) and "feed" (inputs' origin).
SCHEMA = 3
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"

Record = TestRecord | Mapping[str, Any]


def _plain(record: Record) -> dict[str, Any]:
    return record.as_dict() if isinstance(record, TestRecord) else dict(record)


def _json_default(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _nan_free(value: Any) -> Any:
    """NaN/inf become None: strict JSON readers (jq, browsers) reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_free(v) for v in value]
    return value


def write_json(path: Path, records: Sequence[Record], meta: Mapping[str, Any]) -> None:
    """Every measured test with its full statistics, baseline comparison and verdict; ``meta``
    carries run facts (machine fingerprint, hardware class, commit, options)."""
    data = {"schema": SCHEMA, "meta": dict(meta), "tests": [_plain(r) for r in records]}
    text = json.dumps(_nan_free(json.loads(json.dumps(data, default=_json_default))), indent=1, sort_keys=True)
    write_atomic(Path(path), text + "\n")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _ms(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else ""


def comparison(record: Mapping[str, Any]) -> tuple[str, str]:
    """(what the baseline comparison found, verdict) for one record dict."""
    regression = record.get("regression")
    note = record.get("baseline_note") or ""
    if regression:
        found = regression.get("message", "")
        if note:
            found += f" [{note}]"
        return found, regression.get("status", "")
    return note or "not compared", "-"


def markdown(records: Sequence[Record], meta: Mapping[str, Any]) -> str:
    plain = [_plain(r) for r in records]
    verdicts = [comparison(r)[1] for r in plain]
    failed = sum(TestStatus(r["status"]) is not TestStatus.PASSED for r in plain)
    lines = [
        (
            f"## pytest-trt: {len(plain)} tests, {failed} failed, {verdicts.count(Verdict.REGRESSED.value)} regressed, "
            f"{verdicts.count(Verdict.IMPROVED.value)} improved"
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
    for record, verdict in zip(plain, verdicts):
        perf = record.get("perf") or {}
        latency, throughput = perf.get("latency") or {}, perf.get("throughput")
        # A p99 from fewer samples than a p99 needs says so (measure.PerfResult.short_of).
        short = f" (n={perf.get('budget_samples')})" if "p99" in (perf.get("short_percentiles") or ()) else ""
        found, _ = comparison(record)
        lines.append(
            "| " + " | ".join(_cell(c) for c in (
                record["nodeid"], record.get("backend", ""), record.get("status", ""),
                _ms(latency.get("median")), _ms(latency.get("p99")) + short,
                f"{throughput:,.0f}" if isinstance(throughput, (int, float)) else "", found, verdict,
            )) + " |"
        )
        said = [*(record.get("doubts") or []), *(record.get("warnings") or [])]
        notes += [f"- `{_cell(record['nodeid'])}`: {_cell(w)}" for w in said]
        if TestStatus(record["status"]) is not TestStatus.PASSED and record.get("failures"):
            failures += _failure_block(record)
    if notes:
        lines += ["", "**Warnings**", "", *notes]
    if failures:
        lines += ["", "### Failures", *failures]
    return "\n".join(lines) + "\n"


def _failure_block(record: Mapping[str, Any]) -> list[str]:
    """The failed test's reasons as its failure shows them, in a code block (they are indented
    text: accuracy reports, histograms), fenced longer than any backtick run inside."""
    text = "\n".join(record["failures"])
    fence = "```"
    while fence in text:
        fence += "`"
    return ["", f"**`{_cell(record['nodeid'])}`** ({record['status']})", "", f"{fence}text", text, fence]


def write_markdown(path: Path, records: Sequence[Record], meta: Mapping[str, Any]) -> None:
    """The summary table to ``path`` (atomically), and appended to ``$GITHUB_STEP_SUMMARY``
    when that is set, as GitHub Actions expects."""
    text = markdown(records, meta)
    write_atomic(Path(path), text)
    summary = os.environ.get(STEP_SUMMARY)
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text)


def junit_properties(record: Record) -> list[tuple[str, str]]:
    """Properties for ``item.user_properties``: the test's status, its accuracy, one
    ``trt_budget`` per budget with its verdict, latency percentiles, throughput, baseline delta
    and verdict, named ``trt_*`` so they sort together in CI viewers."""
    plain = _plain(record)
    running = str(plain.get("backend", ""))
    props = [("trt_backend", running), ("trt_status", TestStatus(plain["status"]).value)]
    if plain.get("accuracy"):
        props.append(("trt_accuracy", accuracy_summary(plain["accuracy"])))
    props += [("trt_budget", budget_summary(budget, running)) for budget in plain.get("budgets") or []]
    perf = plain.get("perf") or {}
    latency = perf.get("latency") or {}
    for label, key in (("p50", "median"), ("p90", "p90"), ("p99", "p99")):
        if isinstance(latency.get(key), (int, float)):
            props.append((f"trt_latency_{label}_ms", f"{latency[key]:.4f}"))
    if isinstance(perf.get("throughput"), (int, float)):
        props.append(("trt_throughput_qps", f"{perf['throughput']:.1f}"))
    regression = plain.get("regression")
    if regression:
        change = regression.get("change")
        if isinstance(change, (int, float)) and math.isfinite(change):
            props.append(("trt_baseline_delta", f"{change * 100:+.1f}%"))
        props.append(("trt_baseline_verdict", str(regression.get("status", ""))))
        props.append(("trt_baseline_message", str(regression.get("message", ""))))
    if plain.get("baseline_note"):
        props.append(("trt_baseline_note", str(plain["baseline_note"])))
    return props
