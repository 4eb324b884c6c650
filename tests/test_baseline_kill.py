"""kill -9 during baseline writes: no half file is ever read as a baseline, and the next run
removes the temp files the killed writer left. Every wait is bounded."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_baseline import make_record
from test_baseline_plugin import MEASURE, TEST_A, write_tests

from pytest_trt.baselines.entry import entry_from_measurement
from pytest_trt.baselines.hardware import hardware_for
from pytest_trt.baselines.store import PRIVATE_DIR
from pytest_trt.fingerprint import machine_fingerprint

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

TESTS_PER_FILE = 200  # a file of some 600 KB: each write takes long enough to be caught in it

WRITER = """
import json, os, sys, time
from pathlib import Path
from pytest_trt.store import files
from pytest_trt.baselines.entry import BaselineEntry
from pytest_trt.baselines.store import BaselineStore

root, hardware, stall_at, entry = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
store = BaselineStore(root, hardware)
for i in range(10**9):
    if i == stall_at:
        def stall(fd):
            (root / "stalled").write_text("")
            time.sleep(600)
        files.os.fsync = stall  # this child only: the temp file is half written when it stalls
    for k in range(int(sys.argv[5])):
        store.stage("test_perf.py", f"test_perf.py::test_{k}", BaselineEntry.from_file({**entry, "commit": str(i)}))
    outcome = store.write()
    assert not outcome.problems, outcome.problems
    (root / "written").write_text(str(i))
"""


def _start_writer(root: Path, stall_at: int = -1) -> subprocess.Popen:
    hardware, _ = hardware_for(False, machine_fingerprint())
    entry = entry_from_measurement(make_record(nodeid="test_perf.py::test_0"), None).to_file()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    args = [sys.executable, "-c", WRITER, str(root), hardware, str(stall_at), json.dumps(entry), str(TESTS_PER_FILE)]
    return subprocess.Popen(args, env=env)


def _wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the writer exited early with {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the writer did not reach {path.name} in {timeout_s} s")
        time.sleep(0.01)


def _kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _temps(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(".tmp"))


def _baseline_file(root: Path) -> Path:
    (path,) = root.glob("*/test_perf.json")
    return path


def test_a_writer_killed_mid_write_leaves_the_old_file_and_the_next_run_removes_its_temp(trt_pytester):
    root = trt_pytester.path / "baselines"
    writer = _start_writer(root, stall_at=1)
    _wait_for(root / "stalled", writer)
    _kill(writer)
    (left,) = _temps(root)
    assert left.parent.name == PRIVATE_DIR and f".{writer.pid}." in left.name
    # The half-written temp was never renamed: the baseline is the first write, whole.
    data = json.loads(_baseline_file(root).read_text())
    assert len(data["tests"]) == TESTS_PER_FILE and {e["commit"] for e in data["tests"].values()} == {"0"}

    trt_pytester.pytester.makepyfile(test_perf="import pytest\n" + TEST_A.format(shape=(8, 256)))
    result = trt_pytester.run(*MEASURE)
    result.assert_outcomes(passed=1)
    assert _temps(root) == []
    assert json.loads(_baseline_file(root).read_text()) == data  # a compare run changes no baseline


def test_writers_killed_at_random_times_never_leave_a_half_file(trt_pytester):
    root = trt_pytester.path / "baselines"
    rng = random.Random(0)
    trials, left_temp = 10, 0
    for _ in range(trials):
        writer = _start_writer(root)
        _wait_for(root / "written", writer)
        time.sleep(rng.uniform(0.0, 0.05))
        _kill(writer)
        (root / "written").unlink()
        left_temp += bool(_temps(root))
        data = json.loads(_baseline_file(root).read_text())  # whole, whatever the moment of the kill
        assert len(data["tests"]) == TESTS_PER_FILE
    write_tests(trt_pytester, tests=(TEST_A,))
    result = trt_pytester.run(*MEASURE, "--trt-update-baselines")
    result.assert_outcomes(passed=1)
    assert _temps(root) == [], f"{left_temp} of {trials} kills left a temp file"
    tests = json.loads(_baseline_file(root).read_text())["tests"]
    assert len(tests) == TESTS_PER_FILE + 1 and "test_perf.py::test_a" in tests  # merged, nothing lost
