"""Batch sweeps and concurrent streams on a real GPU, through the plugin as users run them: the
example encoder swept over batch 1..64 on one engine, and ``streams=(1, 2, 4)``, each stream an
onnxruntime CUDA session (or a TensorRT execution context) on a CUDA stream of its own, timed by
CUDA events. Skipped where the backend is unavailable, with its reason.

    pytest tests/gpu/test_throughput_gpu.py -v -s      # -s shows the summaries with the numbers
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_trt import backends
from pytest_trt.backends.onnxruntime_cuda import OnnxRuntimeCudaBackend
from pytest_trt.model import load_model
from pytest_trt.prepare.inputs import make_inputs
from pytest_trt.specs import BuildSpec, MeasureSettings
from pytest_trt.timing.concurrent import measure_concurrent

pytestmark = pytest.mark.needs_gpu
MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"

GPU_BACKENDS = ("onnxruntime-cuda", "tensorrt")
ENCODER = """
import pytest

@pytest.mark.trt_model("encoder.onnx", profile={"tokens": ((1, 16), (16, 16), (64, 16))})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
@pytest.mark.trt_perf(batch_sizes=(1, 8, 16, 32, 64), backend="BACKEND", percentile=99, max_latency_ms=5.0)
def test_encoder_sweep(trt_engine):
    pass

@pytest.mark.trt_model("encoder.onnx", batch_size=8)
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
@pytest.mark.trt_perf(streams=(1, 2, 4), backend="BACKEND", percentile=99, max_device_memory_mb=4096)
def test_encoder_streams(trt_engine):
    pass
"""


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_the_encoder_swept_and_run_on_concurrent_streams(trt_pytester, backend):
    _skip_unless_available(backend)
    trt_pytester.pytester.makepyfile(test_encoder=ENCODER.replace("BACKEND", backend))
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run(f"--trt-backend={backend}", f"--trt-report-json={path}", "--trt-baseline=off", fast=False)
    print(result.stdout.str())
    tests = {t["nodeid"].rsplit("::", 1)[-1]: t for t in json.loads(path.read_text())["tests"]}
    sweep = tests["test_encoder_sweep"]
    assert sweep["engine"]["how"] == "built" and [p["batch"] for p in sweep["sweep"]] == [1, 8, 16, 32, 64]
    for point in sweep["sweep"]:
        assert point["accuracy_passed"] is True and point["throughput"] > 0
        assert point["device_memory"] is not None and point["device_memory"] > 0
    streams = tests["test_encoder_streams"]
    assert [p["streams"] for p in streams["streams"]] == [1, 2, 4]
    for point in streams["streams"]:
        assert point["clock"] == "cuda-events"  # each stream timed by its own CUDA events
        assert len(point["per_stream"]) == point["streams"] and min(point["per_stream"]) >= 1
        assert point["accuracy_passed"] is True and point["device_memory"] > 0
    # The summary lists the tests by name (streams before the sweep): each line is looked for alone.
    result.stdout.fnmatch_lines(["*best within p99 <= 5 ms: *"])
    result.stdout.fnmatch_lines(["*4 streams*"])


def test_concurrent_cuda_sessions_each_on_its_own_stream_are_timed_by_events():
    backend = OnnxRuntimeCudaBackend()
    status = backend.availability()
    if not status.ok:
        pytest.skip(status.reason)
    model = load_model(MODELS / "encoder.onnx")
    build = BuildSpec(shapes=(("tokens", (8, 16)),))
    artifact = backend.build(model, build)
    runners = [backend.load(artifact, model, build) for _ in range(3)]
    try:
        assert len({id(r._stream) for r in runners}) == 3  # a CUDA stream each
        feeds = [make_inputs(model, {"tokens": (8, 16)}, seed=i) for i in range(3)]
        result = measure_concurrent(runners, feeds, MeasureSettings(warmup_ms=50, min_iterations=20, min_duration_ms=200), 8)
        assert result.clock == "cuda-events" and result.streams == 3
        assert all(n >= 20 for n in result.per_stream) and result.iterations == sum(result.per_stream)
        assert result.throughput > 0 and result.latency.p99 >= result.latency.median > 0
    finally:
        for runner in runners:
            runner.close()


def _skip_unless_available(name: str) -> None:
    """Skip with the backend's own reason where it cannot run here."""
    from pytest_trt.types import BackendContext

    status = backends.get(name).factory(BackendContext()).availability()
    if not status.ok:
        pytest.skip(f"{name}: {status.reason}")


BASELINED = """
import pytest

@pytest.mark.trt_model("encoder.onnx", batch_size=8)
@pytest.mark.trt_perf(backend="onnxruntime-cuda", max_device_memory_mb=4096)
def test_encoder(trt_engine):
    pass
"""


def test_the_device_memory_a_baseline_keeps_is_compared_on_the_next_run(trt_pytester):
    _skip_unless_available("onnxruntime-cuda")
    trt_pytester.pytester.makepyfile(test_encoder=BASELINED)
    trt_pytester.run("--trt-backend=onnxruntime-cuda", "--trt-update-baselines").assert_outcomes(passed=1)
    (stored,) = (trt_pytester.path / "baselines").glob("*/*.json")
    (kept,) = json.loads(stored.read_text())["tests"].values()
    assert kept["device_memory_bytes"] > 0
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run("--trt-backend=onnxruntime-cuda", f"--trt-report-json={path}")
    (entry,) = json.loads(path.read_text())["tests"]
    memory = entry["memory"]
    print(f"\ndevice memory: baseline {memory['baseline_bytes']} B, this run {memory['new_bytes']} B")
    assert memory["baseline_bytes"] == kept["device_memory_bytes"] and memory["new_bytes"] > 0
    assert memory["engine_own"] is False  # onnxruntime's figure is the GPU's growth since the session opened
    result.assert_outcomes(passed=1)  # the pytester runs compare at a +90% threshold: no timing verdict here
