"""The terminal summary (report.summary_lines, report.totals) on hand-made records: layout at
several widths, verbosity, and the one-line summaries JUnit shares."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from pytest_trt.baselines.regression import RegressionVerdict, Verdict
from pytest_trt.baselines.subject import (
    BuildFacts,
    InputFacts,
    InputRange,
    InputSource,
    ModelRef,
    TensorSignature,
    TestSubject,
    Workload,
)
from pytest_trt.judge.accuracy import AccuracyResult, OutputReport
from pytest_trt.judge.baseline_gate import BaselineNote
from pytest_trt.judge.output_errors import OutputStats
from pytest_trt.judge.records import BudgetOutcome, BudgetState, TestRecord, TestStatus
from pytest_trt.reports.terminal import accuracy_summary, budget_summary, summary_lines, totals
from pytest_trt.timing.measure import PerfClock, PerfResult
from pytest_trt.timing.stats import LatencyStats
from pytest_trt.types import SetupStep

_SUBJECT_FIELDS = {f.name for f in fields(TestSubject)}


def _perf(**changes) -> PerfResult:
    """A host-clock measurement of 100 samples (enough for every shown percentile): p50 0.1234 ms,
    p99 12.345 ms, 25,932 qps."""
    latency = LatencyStats(n=100, min=0.1, mean=0.2, median=0.1234, p90=1.0, p95=2.0, p99=12.345, max=20.5,
                           stdev=0.1, cv=0.5)
    perf = PerfResult(
        backend="onnxruntime", clock=PerfClock.HOST, mode={"clock": "host"}, batch=1, iterations=100,
        duration_s=0.02, latency=latency, compute=None, h2d=None, d2h=None, enqueue=None, throughput=25931.7,
        samples_ms=[0.1234] * 100,
    )
    return replace(perf, **changes)


def _record(nodeid: str, *, perf=True, accuracy=True, status=TestStatus.PASSED, **extra) -> TestRecord:
    """A record as the gates assemble it: ``perf`` and ``accuracy`` a result, or whether there is
    one and whether it passed; ``extra`` fills the subject's fields and the record's."""
    subject = TestSubject(**{
        "nodeid": nodeid, "module": nodeid.split("::")[0], "backend": "onnxruntime",
        "runtime_version": "onnxruntime 1.31.0", "model": ModelRef("mlp.onnx", "3f2a"), "build": BuildFacts("fp32"),
        "workload": Workload({}, {}, 1, "fp32"),
        **{k: v for k, v in extra.items() if k in _SUBJECT_FIELDS},
    })
    return TestRecord(
        subject=subject,
        status=status,
        accuracy=AccuracyResult(accuracy) if isinstance(accuracy, bool) else accuracy,
        perf=(_perf() if perf else None) if isinstance(perf, bool) else perf,
        **{k: tuple(v) if isinstance(v, list) else v for k, v in extra.items() if k not in _SUBJECT_FIELDS},
    )


def _budget(backend, description, state, message=""):
    return BudgetOutcome(backend, description, state, message)


def _verdict(status: Verdict, message: str) -> RegressionVerdict:
    return RegressionVerdict(status, 0.2, 0.15, 0.25, 0.1, True, message)


def _demo_like():
    """Records shaped like the demo suite's: a budget per backend, one test failing."""
    return [
        _record(
            "tests/test_models.py::test_mlp",
            budgets=[
                _budget("onnxruntime", "p99 <= 50.00 ms", BudgetState.PASSED),
                _budget("tensorrt", "p99 <= 0.50 ms, >= 50000 qps", BudgetState.NOT_ENFORCED, "not enforced (running onnxruntime)"),
            ],
        ),
        _record(
            "tests/test_models.py::test_a_very_long_test_name_that_does_not_fit_the_column[param-one]",
            budgets=[_budget("onnxruntime", "p50 <= 1.00 ms", BudgetState.FAILED, "p50 latency 2 ms > budget 1 ms")],
            status=TestStatus.FAILED,
            warnings=["enqueue-bound: the host may be starving the GPU"],
            doubts=["p50 1.010 ms is too close to its budget 1.00 ms to judge"],
        ),
        _record("tests/test_other.py::test_accuracy_only", perf=False, accuracy=False, status=TestStatus.FAILED),
    ]


def test_rows_are_grouped_by_file_aligned_and_fit_100_columns():
    lines = summary_lines(_demo_like(), width=100)
    assert all(len(line) <= 100 for line in lines)
    header = lines[0]
    assert header.split() == ["test", "backend", "acc", "p50", "ms", "p99", "ms", "qps", "budget", "status"]
    assert lines[1] == "tests/test_models.py"
    long_name = "  test_a_very_long_test_name_that_does_not_fit_the_column[param-one]"
    assert lines[2] == long_name  # on its own line, not cut
    assert lines[3].split() == ["onnxruntime", "ok", "0.123", "12.3", "25,932", "p50", "<=", "1.00", "ms", "FAIL"]
    assert lines[4].split()[:2] == ["test_mlp", "onnxruntime"] and lines[4].endswith("ok")
    assert lines[5].split()[0] == "tensorrt" and lines[5].endswith("not enforced")
    # Columns line up: every row's status starts where the header's does.
    status_at = header.index("status")
    assert lines[4][status_at:] == "ok" and lines[5][status_at:] == "not enforced"
    assert lines[6] == "tests/test_other.py"
    assert lines[7] == "  test_accuracy_only"
    assert lines[8].split() == ["onnxruntime", "FAIL", "-", "FAIL"]
    # Doubts first, then advice; a line longer than the terminal continues, indented.
    nodeid = "tests/test_models.py::test_a_very_long_test_name_that_does_not_fit_the_column[param-one]"
    assert lines[9:13] == [
        f"warning: {nodeid}:",
        "    p50 1.010 ms is too close to its budget 1.00 ms to judge",
        f"warning: {nodeid}:",
        "    enqueue-bound: the host may be starving the GPU",
    ]
    assert lines[13] == "note: tensorrt budgets are reported, not enforced, while onnxruntime runs the models"
    assert len(lines) == 14


def test_at_80_columns_budgets_wrap_and_qps_goes_never_the_status():
    lines = summary_lines(_demo_like(), width=80)
    assert all(len(line) <= 80 or " " not in line.strip() for line in lines)  # the long test id stays whole
    header = lines[0]
    assert header.split() == ["test", "backend", "acc", "p50", "ms", "p99", "ms", "budget", "status"]
    status_at = header.index("status")
    mlp = lines.index(next(line for line in lines if line.startswith("  test_mlp")))
    assert lines[mlp][status_at:] == "ok"
    # The other backend's budget wraps between its clauses, its status on the first line.
    assert lines[mlp + 1].split()[0] == "tensorrt" and lines[mlp + 1][status_at:] == "not enforced"
    assert lines[mlp + 1].split()[1:] == ["p99", "<=", "0.50", "ms,", "not", "enforced"]
    assert lines[mlp + 2].strip() == ">= 50000 qps"
    assert "(qps left out to fit 80 columns)" in lines


@pytest.mark.parametrize("width", [40, 50, 60, 120])
def test_every_width_keeps_each_test_its_backend_and_status(width):
    lines = summary_lines(_demo_like(), width=width)
    # Only a word longer than the width (here the 88-character test id) may stick out, whole.
    assert all(len(line) <= width or " " not in line.strip() for line in lines)
    table = lines[: next(i for i, line in enumerate(lines) if line.startswith(("(", "warning:")))]
    assert table[0].split()[:2] == ["test", "backend"] and table[0].split()[-1] == "status"
    assert "  test_a_very_long_test_name_that_does_not_fit_the_column[param-one]" in table
    assert sum(line.endswith("  FAIL") for line in table) == 2  # that test and test_accuracy_only
    assert any(line.startswith("  test_mlp ") and line.endswith("  ok") for line in table)


def test_a_failed_test_reads_fail_though_its_budget_passed():
    # Failed by accuracy, by a regression or by an error: the row's status is the test's.
    budgets = [_budget("onnxruntime", "p99 <= 50.00 ms", BudgetState.PASSED)]
    records = [
        _record("t.py::test_inaccurate", budgets=budgets, accuracy=False, status=TestStatus.FAILED),
        _record("t.py::test_slower", budgets=budgets, status=TestStatus.FAILED, regression=_verdict(Verdict.REGRESSED, "min +20%")),
    ]
    rows = {line.split()[0]: line for line in summary_lines(records, width=120)[2:] if line.startswith("  ")}
    assert rows["test_inaccurate"].endswith("FAIL")
    assert rows["test_slower"].endswith("FAIL")


def test_report_only_and_unmeasured_budgets_have_their_own_status():
    def unenforced(state, message):
        return [_budget("onnxruntime", "p50 <= 9 ms", state, message)]

    records = [
        _record("t.py::test_over", budgets=unenforced(BudgetState.REPORT_OVER, "report only: p50 latency 10 ms > budget 9 ms")),
        _record("t.py::test_under", budgets=unenforced(BudgetState.REPORT_WITHIN, "report only: within budget")),
        _record("t.py::test_off", perf=False, budgets=unenforced(BudgetState.NOT_MEASURED, "not measured (--trt-perf=off)")),
        _record("t.py::test_broken", status=TestStatus.ERROR, accuracy=None, perf=False),
    ]
    rows = {line.split()[0]: line for line in summary_lines(records, width=100)[2:]}
    assert rows["test_over"].endswith("over (report only)")
    assert rows["test_under"].endswith("ok (report only)")
    assert rows["test_off"].endswith("not measured")
    assert rows["test_broken"].endswith("ERROR")


def test_quiet_keeps_failed_rows_doubts_and_regressions_only():
    records = [
        *_demo_like(),
        _record("tests/test_b.py::test_kept", baseline_state=BaselineNote.COMPARED,
                regression=_verdict(Verdict.UNCHANGED, "min +0.1%")),
        _record("tests/test_b.py::test_slow", status=TestStatus.FAILED, baseline_state=BaselineNote.COMPARED,
                regression=_verdict(Verdict.REGRESSED, "min +20.0%")),
    ]
    lines = summary_lines(records, width=120, verbosity=-1)
    text = " ".join(line.strip() for line in lines)
    assert "test_mlp" not in text and "test_kept" not in text  # passed tests have no row
    assert "  test_a_very_long_test_name_that_does_not_fit_the_column[param-one]" in lines
    assert any(line.startswith("  test_accuracy_only ") and line.endswith("FAIL") for line in lines)
    assert "too close to its budget" in text  # a doubt about a verdict stays
    assert "enqueue-bound" not in text  # advice does not
    assert "baseline: tests/test_b.py::test_slow: regressed, min +20.0%" in lines
    assert "unchanged" not in text and "note: tensorrt" not in text


def test_quiet_with_everything_passing_shows_nothing_but_totals():
    records = [_record("t.py::test_ok", warnings=["enqueue-bound"])]
    assert summary_lines(records, width=80, verbosity=-1) == []
    assert totals(records) == ["pytest-trt: onnxruntime: 1 gated test, 0 failed, 0 regressed"]


def test_totals_count_failures_errors_regressions_and_budgets_not_enforced():
    records = [
        *_demo_like(),
        _record("t.py::test_broken", status=TestStatus.ERROR, step=SetupStep.BUILD, at_setup=True),
        _record("t.py::test_slow", status=TestStatus.FAILED, regression=_verdict(Verdict.REGRESSED, "min +20%")),
        _record("t.py::test_report", budgets=[_budget("onnxruntime", "p50 <= 9 ms", BudgetState.REPORT_OVER)]),
    ]
    assert totals(records, width=200) == [
        "pytest-trt: onnxruntime: 6 gated tests, 3 failed, 1 error, 1 regressed, 1 tensorrt budget not enforced, "
        "1 budget report only (1 over)"
    ]
    assert max(len(line) for line in totals(records, width=80)) <= 80


def test_verbose_adds_engine_measurement_accuracy_and_inputs_under_each_test():
    record = _record(
        "t.py::test_cnn",
        accuracy=AccuracyResult(True, [OutputReport("y", True, stats=OutputStats(max_abs=3.2e-06))]),
        perf=_perf(iterations=1400, duration_s=0.301),
        budgets=[_budget("onnxruntime", "p99 <= 5.00 ms", BudgetState.PASSED)],
        engine={"how": "loaded", "seconds": 0.0512, "cache": {"outcome": "hit", "saved_s": 10.24}},
        workload=Workload(
            inputs={"image": TensorSignature((8, 3), "float32"), "ids": TensorSignature((8,), "int64")},
            outputs={}, batch=8, precision="fp32",
        ),
        feed={
            "image": InputFacts(InputSource.GENERATED, range=InputRange.DEFAULT, min=-0.99, max=0.98),
            "ids": InputFacts(InputSource.GENERATED, range=InputRange.DEFAULT, min=0, max=99),
        },
    )
    lines = summary_lines([record], width=120, verbosity=1)
    assert lines[2:] == [
        "  test_cnn  onnxruntime  ok    0.123    12.3  25,932  p99 <= 5.00 ms  ok",
        "    engine: loaded from the engine cache in 0.05 s, 10.2 s of building saved",
        "    measured: 1,400 iterations in 0.30 s (host clock): min 0.100, p50 0.123, p99 12.3, max 20.5 ms; 25,932 qps",
        "    accuracy: passed, worst |d| 3.2e-06",
        "    input image: float32 [8, 3], generated in the default range, values -0.99..0.98",
        "    input ids: int64 [8], generated in the default range (an index? input_ranges= sets it), values 0..99",
    ]
    assert all(len(line) <= 80 for line in summary_lines([record], width=80, verbosity=1))
    assert summary_lines([record], width=120) == lines[:3]  # the default shows no detail


def test_accuracy_and_budget_summaries():
    failed = AccuracyResult(False, [
        OutputReport("y", False, "output 'y': bad", stats=OutputStats(max_abs=0.41)),
        OutputReport("z", True, stats=OutputStats(max_abs=1e-7)),
    ])
    assert accuracy_summary(failed) == "failed: 1 of 2 outputs, worst |d| 0.41"
    missing = AccuracyResult(False, problems=["output 'y' is missing"])
    assert accuracy_summary(missing) == "failed: 1 other problem"
    # A statistic that is not finite (read back from the JSON report's null) is no worst difference.
    unknown = AccuracyResult(True, [OutputReport("y", True, stats=OutputStats(max_abs=float("nan")))])
    assert accuracy_summary(unknown) == "passed"
    own = _budget("onnxruntime", "p99 <= 2.00 ms", BudgetState.PASSED)
    other = _budget("tensorrt", "p99 <= 0.30 ms", BudgetState.NOT_ENFORCED)
    assert budget_summary(own, "onnxruntime") == "p99 <= 2.00 ms: passed"
    assert budget_summary(other, "onnxruntime") == "p99 <= 0.30 ms (tensorrt): not-enforced"


def test_no_records_no_table():
    assert summary_lines([]) == []
    assert totals([]) == []


def test_the_summary_shows_every_wait_for_the_measurement_lock():
    waited = [_record(f"t.py::test_{i}", perf=_perf(lock_wait_s=w)) for i, w in enumerate((2.5, 0.0, 0.004, 1.25))]
    notes = [line for line in summary_lines(waited, width=300) if "measurement lock" in line]
    assert notes == [
        "note: 2 measurements waited 3.8 s for the measurement lock (t.py::test_0 2.5 s, t.py::test_3 1.2 s); "
        "waits are not part of any timing"
    ]
    many = [_record(f"t.py::test_{i}", perf=_perf(lock_wait_s=1.0 + i)) for i in range(7)]
    (note,) = [line for line in summary_lines(many, width=300) if "measurement lock" in line]
    assert note.startswith("note: 7 measurements waited 28.0 s") and "longest t.py::test_6 7.0 s" in note
    # Nobody waited: nothing is said.
    assert not [line for line in summary_lines(waited[1:3], width=300) if "measurement lock" in line]
