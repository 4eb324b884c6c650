"""The terminal summary table (report.summary_lines) on hand-made records."""

from __future__ import annotations

from pytest_trt.report import summary_lines
from pytest_trt.results import BudgetOutcome, BudgetState


def _record(nodeid: str, *, budgets=(), perf=True, accuracy=True, status="passed", warnings=()):
    return {
        "nodeid": nodeid,
        "module": nodeid.split("::")[0],
        "backend": "onnxruntime",
        "accuracy": {"passed": accuracy} if accuracy is not None else None,
        "perf": {"latency": {"median": 0.1234, "p99": 12.345}, "throughput": 25931.7} if perf else None,
        "budgets": list(budgets),
        "status": status,
        "warnings": list(warnings),
    }


def _budget(backend, description, state, message=""):
    return BudgetOutcome(backend, description, state, message).as_dict()


def test_rows_are_grouped_by_file_aligned_and_fit_100_columns():
    records = [
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
            status="failed",
            warnings=["latency CV 24.5% > 10%: results may be unstable"],
        ),
        _record("tests/test_other.py::test_accuracy_only", perf=False, accuracy=False, status="failed"),
    ]
    lines = summary_lines(records, width=100)
    assert all(len(line) <= 100 for line in lines[:9])  # the table; notes may wrap
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
    assert lines[9] == (
        "warning: tests/test_models.py::test_a_very_long_test_name_that_does_not_fit_the_column[param-one]: "
        "latency CV 24.5% > 10%: results may be unstable"
    )
    assert lines[10] == "note: tensorrt budgets are reported, not enforced, while onnxruntime runs the models"
    assert len(lines) == 11


def test_report_only_and_unmeasured_budgets_have_their_own_status():
    def unenforced(state, message):
        return [_budget("onnxruntime", "p50 <= 9 ms", state, message)]

    records = [
        _record("t.py::test_over", budgets=unenforced(BudgetState.REPORT_OVER, "report only: p50 latency 10 ms > budget 9 ms")),
        _record("t.py::test_under", budgets=unenforced(BudgetState.REPORT_WITHIN, "report only: within budget")),
        _record("t.py::test_off", perf=False, budgets=unenforced(BudgetState.NOT_MEASURED, "not measured (--trt-perf=off)")),
        _record("t.py::test_broken", status="error", accuracy=None, perf=False),
    ]
    rows = {line.split()[0]: line for line in summary_lines(records)[2:]}
    assert rows["test_over"].endswith("over (report only)")
    assert rows["test_under"].endswith("ok (report only)")
    assert rows["test_off"].endswith("not measured")
    assert rows["test_broken"].endswith("ERROR")


def test_no_records_no_table():
    assert summary_lines([]) == []
