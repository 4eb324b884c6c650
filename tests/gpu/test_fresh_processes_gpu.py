"""``--trt-fresh-processes=on`` on a real GPU: a baseline recording's further sessions load the
onnxruntime-cuda artifact in fresh Python processes and time it there with CUDA events, and a
comparison's confirming session does the same."""

from __future__ import annotations

import json

import pytest
from test_throughput_gpu import BASELINED, _skip_unless_available

from pytest_trt.judge import gates
from pytest_trt.timing import fresh_process
from pytest_trt.timing.fresh_process import ProcessJob
from pytest_trt.timing.measure import PerfClock, PerfResult

pytestmark = pytest.mark.needs_gpu
ON = "--trt-fresh-processes=on"


def test_a_recording_on_the_gpu_measures_its_further_sessions_in_fresh_processes(trt_pytester, monkeypatch):
    _skip_unless_available("onnxruntime-cuda")
    measured: list[PerfResult] = []

    def in_fresh_process(job: ProcessJob) -> PerfResult:
        result = fresh_process.measure_in_fresh_process(job)  # a real process: a failure raises here
        measured.append(result)
        return result

    monkeypatch.setattr(gates, "measure_in_fresh_process", in_fresh_process)
    trt_pytester.pytester.makepyfile(test_encoder=BASELINED)
    path = trt_pytester.path / "trt.json"
    # Warmed and timed over the default window: a fresh process's first iterations time CUDA's
    # first launches, not the engine, and 50 iterations of this 0.25 ms model last only 12 ms.
    args = ("--trt-backend=onnxruntime-cuda", ON, f"--trt-report-json={path}", "--trt-warmup-ms=200",
            "--trt-min-iterations=50", "--trt-min-duration-ms=300")
    trt_pytester.run(*args, "--trt-update-baselines").assert_outcomes(passed=1)
    (stored,) = (trt_pytester.path / "baselines").glob("*/*.json")
    (entry,) = json.loads(stored.read_text())["tests"].values()
    print(f"\nrecorded session floors (ms): {entry['session_floors_ms']}; fresh processes: {len(measured)}")
    assert len(measured) >= 2 and len(entry["session_floors_ms"]) >= 3
    for result in measured:
        assert result.backend == "onnxruntime-cuda" and result.clock is PerfClock.CUDA_EVENTS
        assert result.gpu_clock is not None and result.iterations == len(result.samples_ms) > 0
    # The fresh processes time the same engine as this process: their floors lie with its own.
    floors = entry["session_floors_ms"]
    assert max(floors) / min(floors) < 1.5, floors
    (report,) = json.loads(path.read_text())["tests"]
    said = [*report["doubts"], *report["warnings"]]
    assert not any("measured in this process" in w for w in said), said
