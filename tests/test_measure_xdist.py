"""Under pytest-xdist, measurements of one device never overlap: each worker's timed windows
(warm-up and timed chunks) wait for the others'."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

pytest.importorskip("xdist")

# Each timed session logs when it opened and closed; its chunks sleep, so windows are long
# enough that two workers would overlap without the lock.
CONFTEST = '''
import json
import os
import time

from pytest_trt.backends import onnxruntime
from pytest_trt.backends.base import IterationTimes

LOG = os.environ["MEASURE_WINDOW_LOG"]


class Window:
    clock = "host"

    def __init__(self):
        self.mode, self.warnings = {"clock": "host"}, []
        self.opened = time.monotonic()

    def run(self, iterations):
        time.sleep(0.04 * iterations)
        return IterationTimes(latency=[40.0] * iterations, span_ms=40.0 * iterations)

    def close(self):
        closed = time.monotonic()
        name = f"{os.getpid()}-{len(os.listdir(LOG))}-{self.opened}.json"
        with open(os.path.join(LOG, name), "w") as f:
            json.dump({"pid": os.getpid(), "opened": self.opened, "closed": closed}, f)


onnxruntime.OnnxRuntimeRunner.timed_session = lambda self, feed, settings: Window()
'''

TESTS = '''
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=2)
@pytest.mark.trt_perf(max_latency_ms=1e6, backend="onnxruntime")
@pytest.mark.parametrize("i", range(6))
def test_window(trt_engine, i):
    pass
'''


def test_xdist_workers_never_time_at_the_same_moment(
    trt_pytester: Any, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path_factory.mktemp("windows")
    monkeypatch.setenv("MEASURE_WINDOW_LOG", str(log))
    # A temp dir of this test's own: its lock folder is not shared with other runs on the host.
    monkeypatch.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmp")))
    trt_pytester.pytester.makeconftest(CONFTEST)
    trt_pytester.pytester.makepyfile(test_windows=TESTS)
    result = trt_pytester.run_subprocess(
        "-n", "2", "--trt-baseline=off", "--trt-report-json=report.json", "--trt-min-iterations=5"
    )
    result.assert_outcomes(passed=6)
    windows = sorted((json.loads(p.read_text()) for p in log.iterdir()), key=lambda w: w["opened"])
    assert len(windows) == 6
    assert len({w["pid"] for w in windows}) == 2  # both workers measured
    for before, after in itertools.pairwise(windows):
        assert after["opened"] >= before["closed"], f"windows overlap: {before} and {after}"
    report = json.loads((trt_pytester.path / "report.json").read_text())
    waits = [t["perf"]["lock_wait_s"] for t in report["tests"]]
    assert len(waits) == 6 and all(w >= 0 for w in waits)
