"""Sessions measured in fresh processes (--trt-fresh-processes=on): a baseline recording's
further sessions and the sessions that confirm a regression."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_baseline_plugin import MEASURE, report, slower_mlp, stored, write_tests

from pytest_trt import backends
from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend
from pytest_trt.errors import BackendError
from pytest_trt.judge import gates
from pytest_trt.model import load_model
from pytest_trt.specs import BuildSpec, MeasureSettings
from pytest_trt.timing import fresh_process
from pytest_trt.timing.fresh_process import ProcessJob, RuntimeSettings, measure_in_fresh_process

ON = "--trt-fresh-processes=on"
FAST = MeasureSettings(warmup_ms=0, min_iterations=20, min_duration_ms=0)


def job(trt_pytester, backend: str = "onnxruntime") -> ProcessJob:
    model = load_model(trt_pytester.path / "mlp.onnx")
    build = BuildSpec(shapes=(("x", (8, 256)),))
    artifact = OnnxRuntimeBackend().build(model, build)
    feed = {"x": np.ones((8, 256), np.float32)}
    return ProcessJob(backend, RuntimeSettings(), 0, artifact, model, build, feed, FAST, 8, (), 60.0, 10.0)


def test_a_fresh_process_loads_the_artifact_and_measures_it(trt_pytester):
    result = measure_in_fresh_process(job(trt_pytester))
    assert result.backend == "onnxruntime" and result.iterations >= 20 and len(result.samples_ms) == result.iterations
    assert min(result.samples_ms) > 0


def test_a_failing_fresh_process_says_what_it_said(trt_pytester):
    with pytest.raises(BackendError, match=r"a measurement in a fresh process failed \(exit 1\): .*unknown backend 'no-such'"):
        measure_in_fresh_process(job(trt_pytester, backend="no-such"))


def test_only_backends_a_fresh_interpreter_knows_are_measured_there():
    assert {"onnxruntime", "tensorrt", "onnxruntime-cuda"} <= backends.registered_at_start()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every measurement the gates hand to a fresh process (each still runs for real)."""
    calls: list[int] = []

    def measured(job: ProcessJob):
        calls.append(job.batch)
        return fresh_process.measure_in_fresh_process(job)

    monkeypatch.setattr(gates, "measure_in_fresh_process", measured)
    return calls


def test_a_recording_and_a_confirmation_sample_fresh_processes(trt_pytester, quiet_host, counted):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, ON, "--trt-update-baselines").assert_outcomes(passed=2)
    recorded = len(counted)
    assert recorded >= 4  # each test's further sessions, beside the one timed in this process
    assert all(len(entry["session_floors_ms"]) >= 2 for entry in stored(trt_pytester.path)["tests"].values())
    (trt_pytester.path / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    _, tests = report(trt_pytester, ON)
    verdict = tests["test_perf.py::test_a"]["regression"]
    # The fresh process reads the host's real counters: on a busy host it may leave it undecided.
    assert verdict["status"] in ("regressed", "inconclusive") and verdict["remeasured"], json.dumps(verdict)
    assert len(counted) > recorded  # the confirmation was measured in a fresh process


def test_a_fresh_process_that_fails_leaves_the_session_to_this_process(trt_pytester, quiet_host, monkeypatch):
    tried: list[ProcessJob] = []

    def failing(job: ProcessJob):
        tried.append(job)
        raise BackendError("a measurement in a fresh process failed (exit 1): no room")

    monkeypatch.setattr(gates, "measure_in_fresh_process", failing)
    write_tests(trt_pytester)
    result, _ = report(trt_pytester, ON, "--trt-update-baselines")
    result.assert_outcomes(passed=2)
    assert tried and all(len(entry["session_floors_ms"]) >= 2 for entry in stored(trt_pytester.path)["tests"].values())


def test_by_default_every_session_is_measured_in_this_process(trt_pytester, quiet_host, counted):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    assert counted == []
