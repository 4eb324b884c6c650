"""Warm-up to the working clock and the recorded SM clock on a real GPU, through NVML, with the
onnxruntime CUDA backend. Skipped without onnxruntime-gpu or nvidia-ml-py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_trt.backends.onnxruntime_cuda import OnnxRuntimeCudaBackend
from pytest_trt.model import load_model
from pytest_trt.specs import BuildSpec, MeasureSettings
from pytest_trt.timing import gpu_clock
from pytest_trt.timing.gpu_clock import ClockSource, Settled
from pytest_trt.timing.measure import measure

pytestmark = pytest.mark.needs_gpu
WIDTH = 2048


@pytest.fixture(scope="module")
def backend() -> OnnxRuntimeCudaBackend:
    pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
    backend = OnnxRuntimeCudaBackend()
    status = backend.availability()
    if not status.ok:
        pytest.skip(status.reason)
    return backend


def matmuls(path: Path, blocks: int = 4) -> Path:
    """A few 2048x2048 fp32 MatMuls: enough work for the GPU to leave its idle clock."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
    nodes = [helper.make_node("MatMul", [f"h{i}", "w"], [f"h{i + 1}"]) for i in range(blocks)]
    nodes[0].input[0] = "x"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes, "matmuls",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [WIDTH, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [WIDTH, WIDTH])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_a_measurement_on_the_gpu_records_the_sm_clock_nvml_reads(backend, tmp_path: Path) -> None:
    model = load_model(matmuls(tmp_path / "matmuls.onnx"))
    runner = backend.load(backend.build(model, BuildSpec()), model, BuildSpec())
    feed = {"x": np.random.default_rng(1).standard_normal((WIDTH, WIDTH)).astype(np.float32)}
    try:
        result = measure(runner, feed, MeasureSettings(min_iterations=20, min_duration_ms=300), batch=WIDTH)
    finally:
        runner.close()
    clock = result.gpu_clock
    assert clock is not None and clock.source is ClockSource.NVML, clock
    reader, _ = gpu_clock.reader_for("cuda:0")
    assert reader is not None and clock.max_mhz == reader.max_mhz
    assert clock.settled in (Settled.CLOCK_AT_MAX, Settled.CLOCK_STEADY), (clock, result.warnings)
    assert clock.start_mhz is not None and clock.start_mhz >= gpu_clock.STEADY_FLOOR * clock.max_mhz
    assert not [w for w in result.warnings if w.startswith("GPU warm-up stopped")]
