"""What a user reads, through pytester runs of real test files: the summary at each verbosity,
fitted to 80 and 120 columns, progress lines, JUnit properties and the Markdown report."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

import pytest_trt.prepare.progress

TWO_TESTS = """
import pytest

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (32, 256)}, intra_op_threads=1)
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
@pytest.mark.trt_perf(max_latency_ms=1e6, percentile=99, backend="onnxruntime")
@pytest.mark.trt_perf(max_latency_ms=0.5, percentile=99, min_throughput=50_000, backend="tensorrt")
def test_mlp(trt_engine):
    pass

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (32, 256)}, intra_op_threads=1)
@pytest.mark.trt_perf(max_latency_ms=0.000001, percentile=99, backend="onnxruntime")
def test_mlp_too_slow(trt_engine):
    pass
"""
TOTAL = "pytest-trt: onnxruntime: 2 gated tests, 1 failed, 0 regressed, 1 tensorrt budget not enforced"


def _summary(lines: list[str]) -> list[str]:
    """The pytest-trt summary section, without its separator and pytest's closing line."""
    start = next(i for i, line in enumerate(lines) if "pytest-trt summary" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("=") or lines[i].startswith("FAILED"))
    return lines[start + 1:end]


def _header(lines: list[str]) -> list[str]:
    """pytest-trt's header lines and their indented continuations."""
    start = next(i for i, line in enumerate(lines) if line.startswith("pytest-trt: backend"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    return lines[start:end]


@pytest.mark.parametrize("columns", [80, 120])
def test_header_and_summary_fit_the_terminal(trt_pytester, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    # --trt-backend=auto: where TensorRT is missing, the header says why at length.
    result = trt_pytester.run_subprocess("--color=no", "--trt-backend=auto")
    result.assert_outcomes(passed=1, failed=1)
    lines = result.stdout.lines
    summary = _summary(lines)
    assert summary and all(len(line) <= columns for line in summary), "\n".join(summary)
    assert all(len(line) <= columns for line in _header(lines)), "\n".join(_header(lines))
    heading = summary[0].split()
    assert heading[0] == "test" and heading[-1] == "status"
    assert ("qps" in heading) is (columns == 120)  # qps is what 80 columns leave out first
    status_at = summary[0].index("status")

    def status(name: str) -> str:
        at = next(i for i, line in enumerate(summary) if line.startswith(f"  {name} ") or line == f"  {name}")
        row = summary[at] if len(summary[at]) > status_at else summary[at + 1]  # a long name has its own line
        return row[status_at:]

    assert status("test_mlp") == "ok"
    assert status("test_mlp_too_slow") == "FAIL"
    total = summary[summary.index(next(line for line in summary if line.startswith("pytest-trt: "))):]
    assert " ".join(line.strip() for line in total) == TOTAL


def test_quiet_keeps_the_failure_and_a_total_default_the_table_verbose_the_detail(trt_pytester):
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    quiet = trt_pytester.run("-q", "--color=no")
    quiet.assert_outcomes(passed=1, failed=1)
    summary = _summary(quiet.stdout.lines)
    assert [line for line in summary if line.startswith("  test_")] == [
        next(line for line in summary if line.startswith("  test_mlp_too_slow"))
    ]
    assert summary[-1] == TOTAL
    assert not [line for line in summary if line.startswith(("engine cache", "note:", "baseline:"))]

    default = _summary(trt_pytester.run("--color=no").stdout.lines)
    assert [line.split()[0] for line in default if line.startswith("  test_")] == ["test_mlp", "test_mlp_too_slow"]
    assert any(line.startswith("engine cache off") for line in default)
    assert "note: tensorrt budgets are reported, not enforced, while onnxruntime runs the models" in default
    assert not [line for line in default if re.match(r"    \S", line)]  # no per-test detail
    assert default[-1] == TOTAL

    verbose = _summary(trt_pytester.run("-v", "--color=no").stdout.lines)
    detail = [line.strip() for line in verbose if re.match(r"    \S", line)]
    assert re.fullmatch(r"engine: built in \d+\.\d\d s \(engine cache off\)", detail[0])
    assert re.fullmatch(
        r"measured: [\d,]+ iterations in \d+\.\d\d s \(host clock\): min [\d.]+, p50 [\d.]+, p99 [\d.]+, "
        r"max [\d.]+ ms; [\d,]+ qps",
        detail[1],
    )
    assert detail[2] == "accuracy: passed, worst |d| 0"
    assert re.fullmatch(r"input x: float32 \[32, 256\], generated in the default range, values -0\.\d+\.\.0\.\d+", detail[3])
    assert detail[4] == "engine: reused from earlier in this session"
    assert verbose[-1] == TOTAL


def test_long_phases_print_a_line_of_their_own_past_the_capture(trt_pytester, monkeypatch):
    monkeypatch.setattr(pytest_trt.prepare.progress, "THRESHOLD_S", 0.0)  # every phase counts as long
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    result = trt_pytester.run("--color=no")
    result.assert_outcomes(passed=1, failed=1)
    said = [line for line in result.stdout.lines if line.startswith("pytest-trt: ") and " in " in line]
    assert [re.sub(r"\d+\.\d s", "N s", re.sub(r"\(\d+ iterations\)", "(K iterations)", line)) for line in said] == [
        "pytest-trt: built mlp.onnx for onnxruntime in N s",
        "pytest-trt: computed the reference outputs of mlp.onnx in N s",
        "pytest-trt: measured test_user.py::test_mlp on onnxruntime in N s (K iterations)",
        "pytest-trt: measured test_user.py::test_mlp_too_slow on onnxruntime in N s (K iterations)",
    ]
    # Never inside the progress dots: the dots line is closed first and carries on below.
    assert not [line for line in result.stdout.lines if "pytest-trt: " in line and not line.startswith("pytest-trt: ")]
    quiet = trt_pytester.run("-q", "--color=no")
    assert not [line for line in quiet.stdout.lines if line.startswith("pytest-trt: ") and " in " in line]


def test_junit_properties_name_status_accuracy_and_budget_verdicts(trt_pytester):
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    xml = trt_pytester.path / "junit.xml"
    trt_pytester.run(f"--junitxml={xml}").assert_outcomes(passed=1, failed=1)
    cases = {case.get("name"): case for case in ET.parse(xml).getroot().iter("testcase")}

    def props(name: str) -> list[tuple[str, str]]:
        return [(p.get("name"), p.get("value")) for p in cases[name].iter("property")]

    passed = props("test_mlp")
    assert ("trt_status", "passed") in passed
    assert ("trt_accuracy", "passed, worst |d| 0") in passed
    assert sorted(v for k, v in passed if k == "trt_budget") == [
        "p99 <= 0.50 ms, >= 50000 qps (tensorrt): not-enforced",
        "p99 <= 1000000.00 ms: passed",
    ]
    failed = props("test_mlp_too_slow")
    assert ("trt_status", "failed") in failed
    assert not [k for k, _ in failed if k == "trt_accuracy"]  # no accuracy gate
    assert [v for k, v in failed if k == "trt_budget"] == ["p99 <= 0.000001 ms: failed"]


def test_markdown_report_gives_the_reason_of_a_failed_row(trt_pytester):
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    md = trt_pytester.path / "trt.md"
    trt_pytester.run(f"--trt-report-md={md}").assert_outcomes(passed=1, failed=1)
    lines = md.read_text().splitlines()
    assert lines[0] == "## pytest-trt: 2 tests, 1 failed, 0 regressed, 0 improved"
    at = lines.index("### Failures")
    assert lines[at + 1:at + 5] == ["", "**`test_user.py::test_mlp_too_slow`** (failed)", "", "```text"]
    assert re.fullmatch(r"perf \(onnxruntime\): p99 latency [\d.]+ ms > budget 0\.000001 ms \(n=\d+, cv [\d.]+%\)", lines[at + 5])
    # A missed budget is profiled: the failure names where the time is spent.
    assert re.fullmatch(r"  slowest layers: '.+' \(\w+\) [\d.]+ ms, \d+%.*", lines[at + 6])
    assert lines[at + 7] == "```" and len(lines) == at + 8


def test_a_doubted_verdict_is_shown_at_quiet_and_kept_in_the_json(trt_pytester, monkeypatch):
    import json

    import pytest_trt.judge.budgets

    def doubts(result, budget, *, threads_advice=False):
        assert threads_advice is False  # the tests run on one thread already
        return [f"{budget.percentile:g} doubted"]

    monkeypatch.setattr(pytest_trt.judge.budgets, "budget_doubts", doubts)
    trt_pytester.pytester.makepyfile(test_user=TWO_TESTS)
    path = trt_pytester.path / "trt.json"
    quiet = trt_pytester.run("-q", "--color=no", f"--trt-report-json={path}")
    quiet.assert_outcomes(passed=1, failed=1)
    # Only the running backend's budgets are judged, each test's once.
    summary = _summary(quiet.stdout.lines)
    assert [line for line in summary if line.startswith("warning:")] == [
        "warning: test_user.py::test_mlp: 99 doubted",
        "warning: test_user.py::test_mlp_too_slow: 99 doubted",
    ]
    tests = {t["nodeid"]: t for t in json.loads(path.read_text())["tests"]}
    assert tests["test_user.py::test_mlp"]["doubts"] == ["99 doubted"]
    assert tests["test_user.py::test_mlp"]["feed"]["x"]["source"] == "generated"


def test_a_run_without_gated_tests_imports_no_report_modules(trt_pytester):
    # The summary and the reports import their modules (numpy with them) only when there is
    # something to show. At -q no header asks which backend runs, so nothing else imports them.
    trt_pytester.pytester.makeconftest(
        """
        import sys

        def pytest_unconfigure(config):
            print("LOADED:", sorted(m for m in ("numpy", "pytest_trt.reports.ci", "pytest_trt.reports.terminal") if m in sys.modules))
        """
    )
    trt_pytester.pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = trt_pytester.run_subprocess("-s", "-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["LOADED: []"])
    assert "pytest-trt" not in result.stdout.str()
