"""A baseline's history as users meet it: recordings at commits through pytester, the drift
warning (a failure under --trt-baseline=strict), and the record's history in the JSON report."""

from __future__ import annotations

import itertools
import json
import re
import statistics
import subprocess
from pathlib import Path

import pytest

from pytest_trt.baselines.git import current_commit

# A threshold no unchanged model on a busy runner trips, so only the history speaks.
MEASURE = ("--trt-backend=onnxruntime", "--trt-min-iterations=100")

TEST = """
import pytest

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (8, 256)}, intra_op_threads=1)
@pytest.mark.trt_perf(backend="onnxruntime")
def test_a(trt_engine):
    pass
"""
NODEID = "test_perf.py::test_a"


def git(root: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(root)}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


def commit(root: Path, message: str) -> str:
    (root / "CHANGES").write_text(message)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    current_commit.cache_clear()  # the plugin reads the commit once per process
    return git(root, "rev-parse", "HEAD")


def stored(root: Path) -> dict:
    (path,) = sorted((root / "baselines").glob("*/*.json"))
    return json.loads(path.read_text())


def report_entry(trt_pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run(*MEASURE, f"--trt-report-json={path}", *args)
    (entry,) = json.loads(path.read_text())["tests"]
    return result, entry


def test_three_recordings_at_three_commits_give_three_history_points(trt_pytester):
    root = trt_pytester.path
    trt_pytester.pytester.makepyfile(test_perf=TEST)
    git(root, "init", "-q")
    (root / ".gitignore").write_text("baselines/\ntrt.json\n__pycache__/\n")
    commits = []
    for i in range(3):
        commits.append(commit(root, f"change {i}"))
        result, entry = report_entry(trt_pytester, "--trt-update-baselines", "--trt-regression-threshold=0.9")
        result.assert_outcomes(passed=1)
    saved = stored(root)["tests"][NODEID]
    assert [p["commit"] for p in saved["history"]] == commits[:2] and saved["commit"] == commits[2]
    # The record carries the whole series, the latest recording last, for reports to plot.
    assert [p["commit"] for p in entry["history"]] == commits
    assert all(p["settings"]["batch"] == "8" and p["floor_ms"] > 0 for p in entry["history"])
    # A later comparison carries it too.
    _, compared = report_entry(trt_pytester, "--trt-regression-threshold=0.9")
    assert [p["commit"] for p in compared["history"]] == commits
    # Three recordings of one model: their floors' spread widens the bound where it passes the
    # sessions' (baselines/spread.py); which one is larger is the host's doing.
    assert len({p["settings"]["model"] for p in entry["history"]}) == 1
    recordings = [p["floor_ms"] for p in entry["history"]]
    widest = max(relative_range(recordings), relative_range(saved["session_floors_ms"]))
    assert compared["regression"]["bound"] == pytest.approx(0.9 + widest, abs=1e-4)
    current_commit.cache_clear()


def relative_range(floors: list[float]) -> float:
    return (max(floors) - min(floors)) / statistics.median(floors)


def drifting_history(root: Path, per_recording: float = 0.01, recordings: int = 10) -> list[float]:
    """Rewrite the stored entry's history as ``recordings - 1`` earlier recordings, each
    ``per_recording`` faster than the next, ending at the entry's own floor."""
    (path,) = sorted((root / "baselines").glob("*/*.json"))
    data = json.loads(path.read_text())
    entry = data["tests"][NODEID]
    floor = entry["latency_ms"]["quantiles"]["p0"]
    earlier = recordings - 1
    points = [
        {"floor_ms": round(floor / (1 + per_recording) ** (earlier - k), 6),
         "median_ms": round(floor / (1 + per_recording) ** (earlier - k), 6),
         "recorded_at": f"2026-11-{k + 1:02d}T10:00:00+00:00", "commit": f"c{k}",
         "settings": {"backend": "onnxruntime", "batch": "8", "precision": "fp32"}}
        for k in range(earlier)
    ]
    entry["history"] = points
    path.write_text(json.dumps(data))
    return [p["floor_ms"] for p in points] + [floor]


def test_a_one_percent_drift_over_ten_recordings_is_flagged_while_no_comparison_fails(trt_pytester):
    trt_pytester.pytester.makepyfile(test_perf=TEST)
    result, _ = report_entry(trt_pytester, "--trt-update-baselines", "--trt-regression-threshold=0.9")
    result.assert_outcomes(passed=1)
    floors = drifting_history(trt_pytester.path)
    # Each recording against the one before it: never beyond the threshold.
    assert max(b / a - 1 for a, b in itertools.pairwise(floors)) < 0.05

    _, entry = report_entry(trt_pytester, "--trt-regression-threshold=0.05")
    drift = [w for w in entry["warnings"] if "steady drift" in w]
    assert len(drift) == 1, entry["warnings"]
    assert re.search(r"drift of \+(0\.9\d|1\.0\d)% per recording", drift[0]) and "last 10 recordings" in drift[0]
    assert len(entry["history"]) == 10

    result, entry = report_entry(trt_pytester, "--trt-regression-threshold=0.05", "--trt-baseline=strict")
    assert any("steady drift" in f and "--trt-baseline=strict" in f for f in entry["failures"]), entry["failures"]
    result.assert_outcomes(failed=1)


def test_the_history_option_bounds_the_stored_points(trt_pytester):
    trt_pytester.pytester.makepyfile(test_perf=TEST)
    for _ in range(3):
        trt_pytester.run(*MEASURE, "--trt-update-baselines", "--trt-regression-threshold=0.9",
                         "--trt-baseline-history=2").assert_outcomes(passed=1)
    assert len(stored(trt_pytester.path)["tests"][NODEID]["history"]) == 1
    result = trt_pytester.run(*MEASURE, "--trt-baseline-history=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-baseline-history*"])


def test_recordings_under_xdist_keep_every_tests_history(trt_pytester):
    pytest.importorskip("xdist")
    trt_pytester.pytester.makepyfile(test_perf=TEST + TEST.replace("test_a", "test_b").replace("import pytest\n", ""))
    for extra in ((), ("-n", "2")):
        trt_pytester.run(*MEASURE, "--trt-update-baselines", "--trt-regression-threshold=0.9", *extra).assert_outcomes(passed=2)
    tests = stored(trt_pytester.path)["tests"]
    assert sorted(tests) == [NODEID, "test_perf.py::test_b"]
    for entry in tests.values():
        assert len(entry["history"]) == 1 and entry["history"][0]["recorded_at"] <= entry["recorded_at"]
