"""A p99 from fewer samples than a p99 needs is never shown or judged without saying so."""

from __future__ import annotations

import json
import re
from typing import Any

from pytest_trt.baselines.subject import BuildFacts, ModelRef, TestSubject, Workload
from pytest_trt.judge.records import TestRecord, TestStatus
from pytest_trt.reports import ci as ci_report
from pytest_trt.reports.terminal import summary_lines
from pytest_trt.timing.measure import PerfClock, PerfResult
from pytest_trt.timing.stats import LatencyStats


def _record(short: bool) -> TestRecord:
    """A record whose p99 comes from 24 samples (short of the 100 a p99 needs), or from 120."""
    n = 24 if short else 120
    latency = LatencyStats(n=n, min=160.0, mean=171.0, median=170.0, p90=178.0, p95=180.0, p99=181.5, max=182.0,
                           stdev=4.0, cv=0.02)
    perf = PerfResult(
        backend="onnxruntime", clock=PerfClock.HOST, mode={"clock": "host"}, batch=1, iterations=n,
        duration_s=n * 0.17, latency=latency, compute=None, h2d=None, d2h=None, enqueue=None, throughput=5.9,
        samples_ms=[170.0] * n,
    )
    subject = TestSubject(
        nodeid="test_m.py::test_slow", module="test_m.py", backend="onnxruntime", runtime_version="onnxruntime",
        model=ModelRef("m.onnx", "0"), build=BuildFacts("fp32"), workload=Workload({}, {}, 1, "fp32"),
    )
    return TestRecord(subject=subject, status=TestStatus.PASSED, perf=perf)


def test_the_summary_and_markdown_name_the_samples_of_a_short_p99() -> None:
    lines = summary_lines([_record(short=True)])
    assert "181.5*" in next(line for line in lines if "test_slow" in line)
    assert "note: * p99 from fewer than the 100 samples a p99 needs (n=24): it reads low" in lines
    lines = summary_lines([_record(short=False)])
    assert "181.5*" not in next(line for line in lines if "test_slow" in line)
    assert not [line for line in lines if "a p99 needs" in line]
    text = ci_report.markdown([_record(short=True)], {})
    assert "| 181.500 (n=24) |" in text


TESTS = '''
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=2)
@pytest.mark.trt_perf(max_latency_ms=1e6, percentile=99, backend="onnxruntime")
def test_p99(trt_engine):
    pass

@pytest.mark.trt_model("mlp.onnx", batch_size=2)
@pytest.mark.trt_perf(max_latency_ms=0.001, percentile=99, backend="onnxruntime")
def test_p99_over(trt_engine):
    pass
'''


def test_a_p99_budget_judged_on_too_few_samples_says_so_in_the_run(trt_pytester: Any) -> None:
    trt_pytester.pytester.makepyfile(test_p=TESTS)
    # No timed time at all: one chunk, far short of the 100 samples a p99 needs.
    result = trt_pytester.run("--trt-max-duration-ms=0", "--trt-baseline=off", "--trt-report-json=r.json")
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert re.search(r"p99 latency [\d.]+ ms > budget 0.001 ms \(n=\d+, cv [\d.]+%; p99 from \d+ samples?, "
                     r"fewer than the 100 a p99 needs: it reads low\)", text)
    assert re.search(r"warning: test_p.py::test_p99: the p99 latency budget is judged on p99 from \d+ samples?", text)
    assert re.search(r"test_p99 +onnxruntime +- +[\d.]+ +[\d.]+\* ", text)
    assert re.search(r"note: \* p99 from fewer than the 100 samples a p99 needs \(n=\d+\): it reads low", text)
    report = json.loads((trt_pytester.path / "r.json").read_text())
    perf = {t["nodeid"]: t["perf"] for t in report["tests"]}["test_p.py::test_p99"]
    assert "p99" in perf["short_percentiles"] and perf["budget_samples"] < 100
    n = perf["budget_samples"]
    assert perf["sample_notes"][-1] == f"p99 from {n} sample{'s' * (n != 1)}, fewer than the 100 a p99 needs: it reads low"
