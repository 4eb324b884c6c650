"""The pytest-trt command line as users meet it: ``python -m pytest_trt`` in a subprocess, on
reports and baselines that real pytest runs wrote."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = """
import pytest

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (8, 256)}, intra_op_threads=1)
@pytest.mark.trt_perf(backend="onnxruntime")
def test_a(trt_engine):
    pass

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (4, 256)}, intra_op_threads=1)
@pytest.mark.trt_perf(backend="onnxruntime")
def test_b(trt_engine):
    pass
"""
MEASURE = ("--trt-backend=onnxruntime", "--trt-min-iterations=60", "--trt-regression-threshold=0.9")


REPO = Path(__file__).resolve().parents[1]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "pytest_trt", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False, env=env)


@pytest.fixture
def shards(trt_pytester) -> Path:
    """Two shard reports, a.json (test_a) and b.json (test_b), as two CI runners write them."""
    trt_pytester.pytester.makepyfile(test_perf=TESTS)
    for shard, name in (("a.json", "test_a"), ("b.json", "test_b")):
        trt_pytester.run(*MEASURE, "-k", name, f"--trt-report-json={trt_pytester.path / shard}").assert_outcomes(passed=1)
    return trt_pytester.path


def slowed(report: Path, target: Path, nodeid: str, factor: float) -> None:
    """``report`` with ``nodeid``'s latencies ``factor`` times longer, its host read as quiet."""
    data = json.loads(report.read_text())
    for test in data["tests"]:
        if test["nodeid"] == nodeid:
            test["perf"]["samples_ms"] = [t * factor for t in test["perf"]["samples_ms"]]
            test["perf"]["contention"] = None
    target.write_text(json.dumps(data))


def test_two_shards_merged_then_compared_give_the_table_and_the_exit_status(shards):
    merged = cli(shards, "merge", "a.json", "b.json", "-o", "all.json")
    assert merged.returncode == 0, merged.stderr
    assert "merged 2 tests from 2 reports into all.json" in merged.stdout
    data = json.loads((shards / "all.json").read_text())
    assert [t["nodeid"] for t in data["tests"]] == ["test_perf.py::test_a", "test_perf.py::test_b"]
    assert data["schema"] == 4 and data["meta"]["merged_from"] == ["a.json", "b.json"]

    same = cli(shards, "compare", "all.json", "all.json")
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.count("unchanged") == 3  # two rows and the totals line

    slowed(shards / "all.json", shards / "new.json", "test_perf.py::test_b", 3.0)
    result = cli(shards, "compare", "all.json", "new.json", "--threshold", "0.5")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "all.json -> new.json (threshold 50%)"
    assert lines[1].split() == ["test", "old", "min", "ms", "new", "min", "ms", "change", "verdict"]
    row_a = next(line for line in lines if line.startswith("test_perf.py::test_a")).split()
    row_b = next(line for line in lines if line.startswith("test_perf.py::test_b")).split()
    # The old side is the sample a baseline entry rebuilds from its quantiles: within rounding.
    assert row_a[1] == row_a[2] and row_a[4] == "unchanged" and abs(float(row_a[3].rstrip("%"))) < 1
    assert row_b[4] == "regressed" and 150 < float(row_b[3].rstrip("%")) < 250
    assert float(row_b[2]) == pytest.approx(3 * float(row_b[1]), rel=1e-3)
    assert lines[-1] == "2 tests: 1 regressed, 1 unchanged"


def test_a_test_in_two_shards_or_shards_that_disagree_are_errors(shards):
    result = cli(shards, "merge", "a.json", "b.json", "a.json", "-o", "all.json")
    assert result.returncode == 2 and "a report is given twice" in result.stderr
    (shards / "a2.json").write_text((shards / "a.json").read_text())
    result = cli(shards, "merge", "a.json", "a2.json", "-o", "all.json")
    assert result.returncode == 2
    assert "test_perf.py::test_a is in both a.json and a2.json" in result.stderr
    data = json.loads((shards / "b.json").read_text())
    data["meta"]["hardware"] = "nvidia-h100"
    (shards / "b2.json").write_text(json.dumps(data))
    result = cli(shards, "merge", "a.json", "b2.json", "-o", "all.json")
    assert result.returncode == 2 and "disagree on 'hardware'" in result.stderr and "b2.json" in result.stderr
    result = cli(shards, "merge", "a.json", "b.json", "-o", "a.json")
    assert result.returncode == 2 and "-o a.json: is one of the reports to merge" in result.stderr
    assert not (shards / "all.json").exists()


@pytest.mark.parametrize(("text", "said"), [
    ("{not json", "bad.json: not JSON (line 1, column 2"),
    ('{"schema": 3, "tests": []}', "bad.json: report schema 3, this pytest-trt reads schema 4"),
    ('{"schema": 4, "tests": {}}', "bad.json: not a pytest-trt JSON report"),
    ('{"schema": 4, "tests": [{"nodeid": "t::x", "status": "passed"}]}', "bad.json: tests[0] (t::x):"),
])
def test_a_bad_report_is_an_error_naming_the_file(tmp_path, text, said):
    (tmp_path / "bad.json").write_text(text)
    (tmp_path / "empty.json").write_text('{"schema": 4, "meta": {}, "tests": []}')
    result = cli(tmp_path, "compare", "empty.json", "bad.json")
    assert result.returncode == 2, result.stdout
    assert said in result.stderr and result.stderr.startswith("pytest-trt compare: error: ")
    missing = cli(tmp_path, "compare", "empty.json", "gone.json")
    assert missing.returncode == 2 and "gone.json: no such file" in missing.stderr


def test_usage_errors_exit_2(tmp_path):
    assert cli(tmp_path).returncode == 2
    assert cli(tmp_path, "compare", "a.json").returncode == 2
    result = cli(tmp_path, "compare", "a.json", "b.json", "--threshold", "3")
    assert result.returncode == 2 and "must be a fraction" in result.stderr
    helped = cli(tmp_path, "--help")
    assert helped.returncode == 0 and all(name in helped.stdout for name in ("show", "compare", "merge", "exit status"))


def test_show_lists_this_machines_baselines_and_one_tests_history(trt_pytester):
    trt_pytester.pytester.makepyfile(test_perf=TESTS)
    for _ in range(2):
        trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    root = trt_pytester.path
    table = cli(root, "show")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].endswith(": 2 tests") and lines[1].split()[:4] == ["test", "backend", "batch", "precision"]
    row = next(line for line in lines if line.startswith("test_perf.py::test_a")).split()
    assert row[1:4] == ["onnxruntime", "8", "fp32"] and row[-2:] == ["2", "too-short"]

    history = cli(root, "show", "test_b")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert lines[0] == "test_perf.py::test_b (test_perf.py)"
    assert len([line for line in lines if "batch=4" in line]) == 2
    assert lines[-1] == "history: too-short (2 comparable recordings)"

    assert "matches 2 baselines" in cli(root, "show", "test_").stderr
    unknown = cli(root, "show", "test_z")
    assert unknown.returncode == 2 and "test 'test_z': no baseline" in unknown.stderr
    other = cli(root, "show", "--baseline-dir", "nowhere")
    assert other.returncode == 2 and "--baseline-dir nowhere: no such folder" in other.stderr


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib: pip install 'pytest-trt[report]'")
def test_html_renders_a_json_report_and_refuses_to_overwrite_it(shards):
    result = cli(shards, "html", "a.json", "-o", "a.html")
    assert result.returncode == 0 and result.stdout.strip() == "wrote a.html", result.stderr
    page = (shards / "a.html").read_text(encoding="utf-8")
    assert "test_perf.py::test_a" in page and "<svg" in page
    result = cli(shards, "html", "a.json", "-o", "a.json")
    assert result.returncode == 2 and "-o a.json: is the JSON report itself" in result.stderr
    (shards / "bad.json").write_text("{not json")
    result = cli(shards, "html", "bad.json", "-o", "bad.html")
    assert result.returncode == 2 and "bad.json: not JSON" in result.stderr and not (shards / "bad.html").exists()
