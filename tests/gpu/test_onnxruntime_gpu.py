"""onnxruntime's GPU providers through the adapters, on a real GPU with onnxruntime-gpu.

The CUDA provider end to end (build, load, infer against the CPU reference, the event-timed
path on device buffers, CUDA graphs, TF32 off for fp32); for the TensorRT and TensorRT-RTX
providers, what availability says on this machine. Skipped where onnxruntime-gpu is missing,
with its reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_trt.backends.onnxruntime_cuda import OnnxRuntimeCudaBackend
from pytest_trt.backends.onnxruntime_tensorrt import OnnxRuntimeTensorRTBackend
from pytest_trt.backends.onnxruntime_trt_rtx import OnnxRuntimeTrtRtxBackend
from pytest_trt.cuda import runtime as cuda
from pytest_trt.model import LoadedModel, load_model
from pytest_trt.prepare.precision import apply_precision
from pytest_trt.specs import BuildSpec, MeasureSettings

pytestmark = pytest.mark.needs_gpu

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"
TIMED = MeasureSettings(warmup_ms=0, min_iterations=5, min_duration_ms=0)


@pytest.fixture(scope="module")
def backend() -> OnnxRuntimeCudaBackend:
    backend = OnnxRuntimeCudaBackend()
    status = backend.availability()
    if not status.ok and "onnxruntime-gpu is not installed" in status.reason:
        pytest.skip(status.reason)
    assert status.ok, status.reason
    return backend


def reference(model: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True))


def feed_for(model: LoadedModel, batch: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        spec.name: rng.uniform(-1, 1, tuple(batch if d is None else d for d in spec.shape)).astype(spec.dtype)
        for spec in model.inputs
    }


def runner_for(backend: OnnxRuntimeCudaBackend, model: LoadedModel, build: BuildSpec):
    return backend.load(backend.build(model, build), model, build)


@pytest.mark.parametrize("name", ["mlp.onnx", "cnn.onnx", "encoder.onnx"])
def test_example_models_match_the_cpu_reference_in_fp32(backend, name: str) -> None:
    model = load_model(MODELS / name)
    feed = feed_for(model)
    runner = runner_for(backend, model, BuildSpec())
    try:
        got, want = runner.infer(feed), reference(model.path, feed)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5)
    finally:
        runner.close()


def test_fp16_graph_runs_in_fp16_close_to_the_reference(backend, tmp_path: Path) -> None:
    model = load_model(MODELS / "mlp.onnx")
    converted = load_model(apply_precision(model.path, "fp16", tmp_path), check=False)
    feed = feed_for(model)
    runner = runner_for(backend, converted, BuildSpec(precision="fp16"))
    try:
        got, want = runner.infer(feed)["y"], reference(model.path, feed)["y"]
        np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)
        assert not np.array_equal(got, want)  # fp16 arithmetic, not an fp32 run
    finally:
        runner.close()


def matmul_model(path: Path, n: int = 1024) -> LoadedModel:
    rng = np.random.default_rng(1)
    weight = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return load_model(path)


@pytest.mark.parametrize(("precision", "tf32"), [("fp32", False), ("tf32", True)])
def test_fp32_means_tf32_off(backend, tmp_path: Path, precision: str, tf32: bool) -> None:
    model = matmul_model(tmp_path / "matmul.onnx")
    weight = numpy_helper.to_array(onnx.load(model.path).graph.initializer[0]).astype(np.float64)
    feed = feed_for(model)
    runner = runner_for(backend, model, BuildSpec(precision=precision))
    try:
        got = runner.infer(feed)["y"].astype(np.float64)
    finally:
        runner.close()
    exact = feed["x"].astype(np.float64) @ weight
    error = float(np.max(np.abs(got - exact)) / np.max(np.abs(exact)))
    # Estimated: ~1e-6 with fp32 products, ~4e-4 with TF32's 10-bit mantissas.
    assert (error > 3e-5) is tf32, f"max relative error {error:.2e} with precision={precision}"


@pytest.mark.parametrize("transfers", [True, False])
def test_timed_runs_are_event_timed_on_the_plugins_stream(backend, transfers: bool) -> None:
    model = load_model(MODELS / "cnn.onnx")
    runner = runner_for(backend, model, BuildSpec())
    try:
        session = runner.timed_session(feed_for(model), MeasureSettings(transfers=transfers))
        try:
            times = session.run(20)
        finally:
            session.close()
        assert session.clock == "cuda-events"
        # onnxruntime's work all ran on our stream: the no-sync runs reproduced infer()'s outputs.
        assert session.mode["provider_sync"] is False and session.warnings == []
        assert min(times.compute) > 0
        if transfers:
            assert min(times.h2d) > 0 and min(times.d2h) > 0
            for total, a, b, c in zip(times.latency, times.h2d, times.compute, times.d2h, strict=True):
                assert total == pytest.approx(a + b + c)
        else:
            assert times.h2d is None and times.latency == times.compute
    finally:
        runner.close()


def test_cuda_graph_is_captured_where_the_model_allows_it(backend) -> None:
    model = load_model(MODELS / "mlp.onnx")
    runner = runner_for(backend, model, BuildSpec())
    try:
        session = runner.timed_session(feed_for(model), MeasureSettings(cuda_graph=True))
        try:
            session.run(20)
        finally:
            session.close()
        assert session.mode["cuda_graph"] is True, session.warnings
        assert session.mode["provider_sync"] is False
    finally:
        runner.close()


def test_device_fingerprint_is_the_devices(backend) -> None:
    facts = backend.device_fingerprint(BuildSpec())
    props = cuda.device_properties(0)
    assert facts["gpu_name"] == props["gpu_name"] and facts["sm_count"] == props["sm_count"] > 0
    assert facts["compute_capability"] == props["compute_capability"]


def test_tensorrt_provider_availability_names_what_is_missing(backend) -> None:
    status = OnnxRuntimeTensorRTBackend().availability()
    if status.ok:
        pytest.skip("TensorRT 10 is installed here: the TensorRT provider is usable")
    assert "libnvinfer.so.10" in status.reason or "libnvonnxparser.so.10" in status.reason, status.reason


def test_trt_rtx_on_a_gpu_that_is_not_rtx_says_why() -> None:
    pytest.importorskip("onnxruntime_ep_nv_tensorrt_rtx", reason="onnxruntime-ep-nv-tensorrt-rtx-cu13 is not installed")
    status = OnnxRuntimeTrtRtxBackend().availability()
    major, minor = (int(p) for p in cuda.device_properties(0)["compute_capability"].split("."))
    if major * 10 + minor in (86, 89) or major >= 12:
        assert status.ok, status.reason
    else:
        assert not status.ok
        # The provider's refusal where onnxruntime offers it the GPU; where onnxruntime finds no
        # GPU to offer (no /sys/class/drm card, as on the H200 VM), that.
        said = ("only supports RTX devices", "does not support GPU", "found no GPU to offer it")
        assert any(words in status.reason for words in said), status.reason
