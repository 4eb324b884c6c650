"""CI reports: JSON content, the Markdown table (and GitHub step summary), JUnit properties."""

from __future__ import annotations

import json

from test_baseline import make_record

from pytest_trt.baselines.regression import RegressionVerdict, Verdict
from pytest_trt.judge.accuracy import AccuracyResult, OutputReport
from pytest_trt.judge.baseline_gate import BaselineNote
from pytest_trt.judge.output_errors import OutputStats
from pytest_trt.judge.records import BudgetOutcome, BudgetState, TestStatus
from pytest_trt.judge.records import TestRecord as Record
from pytest_trt.reports.ci import junit_properties, markdown, write_json, write_markdown

META = {"hardware": "cpu-amd-epyc-2c", "backend": "onnxruntime", "commit": "abc123"}


def finished(nodeid: str, **fields) -> Record:
    """A record as the gates assemble it, around a measurement made by make_record."""
    measured = make_record(nodeid=nodeid)
    fields.setdefault("status", TestStatus.PASSED)
    fields.setdefault("accuracy", AccuracyResult(True, [OutputReport("y", True, stats=OutputStats(**measured.accuracy["y"]))]))
    return Record(subject=measured.subject, perf=measured.perf, **fields)


def regressed_record(**fields):
    verdict = RegressionVerdict(
        Verdict.REGRESSED, 0.15, 0.11, 0.175, 0.10, True,
        "min +14.2% vs baseline (95% CI +11.0..+17.5%, threshold 10%)", "min", 0.142,
    )
    return finished(
        "tests/test_m.py::test_slow",
        regression=verdict,
        baseline_note="model 3f2a.. -> 91c0..",
        baseline_state=BaselineNote.CHANGED,
        status=TestStatus.FAILED,
        warnings=("accuracy drift: output 'y' max_abs 5e-05 vs baseline 1e-05 (5.0x), still within tolerance",),
        **fields,
    )


def new_record(**fields):
    return finished(
        "tests/test_m.py::test_new", baseline_note="no baseline", baseline_state=BaselineNote.NO_BASELINE, **fields
    )


def test_json_holds_every_test_with_statistics_and_verdict(tmp_path):
    path = tmp_path / "out" / "trt.json"
    write_json(path, [regressed_record(), new_record()], META)
    data = json.loads(path.read_text())
    assert data["schema"] == 4 and data["meta"] == META
    slow, new = data["tests"]
    assert slow["nodeid"] == "tests/test_m.py::test_slow"
    assert slow["perf"]["latency"]["n"] == 500 and len(slow["perf"]["samples_ms"]) == 500
    assert slow["regression"]["status"] == "regressed" and slow["regression"]["ci_low"] == 0.11
    assert slow["baseline_note"] == "model 3f2a.. -> 91c0.." and slow["status"] == "failed"
    assert new["baseline_note"] == "no baseline" and new["regression"] is None
    assert [p.name for p in path.parent.iterdir()] == ["trt.json"]


def test_json_turns_nan_into_null(tmp_path):
    verdict = RegressionVerdict(Verdict.INCONCLUSIVE, float("nan"), float("nan"), float("nan"), 0.1, False, "x")
    record = new_record(regression=verdict)
    write_json(tmp_path / "r.json", [record], {})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and json.loads(text)["tests"][0]["regression"]["ci_low"] is None


def test_markdown_table_shows_verdicts_and_warnings(tmp_path, monkeypatch):
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_markdown(tmp_path / "trt.md", [regressed_record(), new_record()], META)
    text = (tmp_path / "trt.md").read_text()
    lines = text.splitlines()
    assert lines[0] == "## pytest-trt: 2 tests, 1 failed, 1 regressed, 0 improved"
    assert "hardware: `cpu-amd-epyc-2c`, backend: `onnxruntime`, commit: `abc123`" in lines
    header = lines.index("| test | backend | status | p50 ms | p99 ms | qps | vs baseline | verdict |")
    slow_row, new_row = lines[header + 2], lines[header + 3]
    assert slow_row.startswith("| tests/test_m.py::test_slow | onnxruntime | failed | 1.")
    assert "min +14.2% vs baseline (95% CI +11.0..+17.5%, threshold 10%) [model 3f2a.. -> 91c0..] | regressed |" in slow_row
    assert new_row.endswith("| no baseline | - |")
    assert "- `tests/test_m.py::test_slow`: accuracy drift: output 'y' max_abs 5e-05" in text
    assert summary.read_text() == "earlier step\n" + text


def test_markdown_escapes_pipes_in_cells():
    record = finished("tests/test_m.py::test_p[a|b]")
    assert "test_p[a\\|b]" in markdown([record], {})


def test_markdown_without_step_summary_writes_only_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_markdown(tmp_path / "trt.md", [new_record()], META)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trt.md"]


def test_junit_properties_carry_percentiles_throughput_and_delta():
    record = regressed_record()
    props = dict(junit_properties(record))
    latency = record.perf.latency
    assert props["trt_backend"] == "onnxruntime"
    assert props["trt_latency_p50_ms"] == f"{latency.median:.4f}"
    assert props["trt_latency_p90_ms"] == f"{latency.p90:.4f}"
    assert props["trt_latency_p99_ms"] == f"{latency.p99:.4f}"
    assert props["trt_throughput_qps"] == f"{record.perf.throughput:.1f}"
    assert props["trt_baseline_delta"] == "+14.2%"
    assert props["trt_baseline_verdict"] == "regressed"
    assert props["trt_baseline_note"] == "model 3f2a.. -> 91c0.."
    assert all(isinstance(v, str) for _, v in junit_properties(record))
    assert dict(junit_properties(new_record()))["trt_baseline_note"] == "no baseline"


def test_junit_properties_carry_status_accuracy_and_each_budgets_verdict():
    budgets = (
        BudgetOutcome("onnxruntime", "p99 <= 2.00 ms", BudgetState.PASSED),
        BudgetOutcome("tensorrt", "p99 <= 0.30 ms", BudgetState.NOT_ENFORCED, "not enforced (running onnxruntime)"),
    )
    props = junit_properties(finished("tests/test_m.py::test_ok", budgets=budgets))
    assert ("trt_status", "passed") in props
    assert ("trt_accuracy", "passed, worst |d| 1e-06") in props
    assert [v for k, v in props if k == "trt_budget"] == [
        "p99 <= 2.00 ms: passed",
        "p99 <= 0.30 ms (tensorrt): not-enforced",
    ]
    inaccurate = AccuracyResult(False, [
        OutputReport("y", False, "output 'y': 3 of 10 elements outside", stats=OutputStats(max_abs=0.41)),
        OutputReport("z", True, stats=OutputStats(max_abs=2e-7)),
    ])
    props = dict(junit_properties(finished("tests/test_m.py::test_bad", accuracy=inaccurate, status=TestStatus.FAILED)))
    assert props["trt_status"] == "failed"
    assert props["trt_accuracy"] == "failed: 1 of 2 outputs, worst |d| 0.41"
    assert "trt_budget" not in props


def test_markdown_gives_the_reason_of_each_failed_row_and_the_doubts():
    failures = (
        "perf (onnxruntime): p99 latency 2.500 ms > budget 2.00 ms (n=500, cv 3.1%)",
        "accuracy: output 'y': 3 of 10 elements outside atol=1e-05 + rtol=0.001*|ref|\n  worst |d|=0.41 at [0, 3]",
    )
    failed = finished("tests/test_m.py::test_slow", status=TestStatus.FAILED, failures=failures,
                      doubts=("p99 2.500 ms is too close to its budget 2.00 ms to judge",))
    broken = finished("tests/test_m.py::test_broken", status=TestStatus.ERROR,
                      failures=("pytest-trt: the model rejected the generated inputs ```x```",))
    text = markdown([failed, new_record(), broken], META)
    lines = text.splitlines()
    assert "- `tests/test_m.py::test_slow`: p99 2.500 ms is too close to its budget 2.00 ms to judge" in lines
    at = lines.index("### Failures")
    assert lines[at + 1:at + 8] == [
        "",
        "**`tests/test_m.py::test_slow`** (failed)",
        "",
        "```text",
        failures[0],
        "accuracy: output 'y': 3 of 10 elements outside atol=1e-05 + rtol=0.001*|ref|",
        "  worst |d|=0.41 at [0, 3]",
    ]
    assert lines[at + 8] == "```"
    # A reason holding a fence gets a longer one, so the block still closes where it should.
    assert lines[at + 9:] == [
        "",
        "**`tests/test_m.py::test_broken`** (error)",
        "",
        "````text",
        "pytest-trt: the model rejected the generated inputs ```x```",
        "````",
    ]
    assert "test_new" not in text.split("### Failures")[1]  # a passed test has no reason to give
