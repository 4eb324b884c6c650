"""The SM clock of a GPU measurement as users meet it: ``-v`` prints it under the test and the
JSON report holds it, from a GPU backend installed through the ``pytest_trt.backends`` entry
point (timed on CUDA events by a scripted session) and a stand-in for NVML whose clock ramps
from idle."""

from __future__ import annotations

import json

BACKEND_MODULE = '''
import sys
import types

from pytest_trt.backends import BackendInfo, DeviceKind
from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend
from pytest_trt.types import IterationTimes

WORK = {"ms": 0.0}  # GPU time run so far


def sm_clock():
    return 345.0 if WORK["ms"] < 400.0 else 1980.0  # idle until 400 ms of work


class Nvml(types.ModuleType):
    NVML_CLOCK_SM = 1

    class NVMLError(Exception):
        pass

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return sm_clock()

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        return 1980.0


sys.modules["pynvml"] = Nvml("pynvml")


class EventSession:
    clock = "cuda-events"

    def __init__(self):
        self.mode = {"clock": "cuda-events"}
        self.warnings = []

    def run(self, iterations):
        latency = []
        for _ in range(iterations):
            latency.append(1.0 * 1980.0 / sm_clock())
            WORK["ms"] += latency[-1]
        return IterationTimes(latency=latency, span_ms=sum(latency))

    def close(self):
        pass


class FakeGpuBackend(OnnxRuntimeBackend):
    name = "fakegpu"

    def load(self, artifact, model, build):
        runner = super().load(artifact, model, build)
        runner.backend = self.name
        runner.device = "cuda:0"
        runner.timed_session = lambda feed, settings: EventSession()
        return runner


def _factory(context):
    return FakeGpuBackend()


INFO = BackendInfo("fakegpu", _factory, device=DeviceKind.GPU)
'''

ENTRY_POINTS = """
[pytest_trt.backends]
fakegpu = fakegpu_backend:INFO
"""

TESTS = '''
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=2)
@pytest.mark.trt_perf(backend="fakegpu")
def test_timed(trt_engine):
    pass
'''


def test_verbose_output_and_the_json_report_carry_the_sm_clock(trt_pytester, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (trt_pytester.path / "fakegpu_backend.py").write_text(BACKEND_MODULE)
    dist = trt_pytester.path / "fakegpu_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakegpu-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    trt_pytester.pytester.makepyfile(test_gpu=TESTS)
    report = trt_pytester.path / "report.json"
    result = trt_pytester.run_subprocess(
        "-v", "--trt-backend=fakegpu", "--trt-baseline=off", f"--trt-report-json={report}",
        "--trt-warmup-ms=200", "--trt-min-iterations=20", "--trt-min-duration-ms=50", fast=False,
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*measured: * iterations in * s (cuda-events clock): min 1.00*",
        "*SM clock 1980 -> 1980 MHz (lowest 1980, max 1980; nvml); warm-up 0.4* s, until the SM clock reached its maximum",
    ])
    (test,) = json.loads(report.read_text())["tests"]
    clock = test["perf"]["gpu_clock"]
    assert {k: clock[k] for k in ("source", "settled", "start_mhz", "end_mhz", "max_mhz")} == {
        "source": "nvml", "settled": "clock-at-max", "start_mhz": 1980.0, "end_mhz": 1980.0, "max_mhz": 1980.0,
    }
    assert clock["warmup_ms"] >= 400.0
    assert min(test["perf"]["samples_ms"]) == max(test["perf"]["samples_ms"]) == 1.0
