"""An MLP (256-256-256-10) gated for accuracy and speed, as a first pytest-trt test looks."""

import numpy as np
import pytest


@pytest.mark.trt_model("models/mlp.onnx", shapes={"x": (32, 256)}, intra_op_threads=1)  # see test_cnn.py
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
# Enforced when onnxruntime runs the model: generous enough for a slow 2-core CI machine.
@pytest.mark.trt_perf(max_latency_ms=50, percentile=99, backend="onnxruntime")
# Enforced only where TensorRT and a GPU run it; on a CPU-only machine it is measured and reported.
@pytest.mark.trt_perf(max_latency_ms=0.5, percentile=99, min_throughput=50_000, backend="tensorrt")
def test_mlp(trt_engine):
    out = trt_engine.infer(trt_engine.sample_inputs())
    assert out["y"].shape == (32, 10)


@pytest.mark.trt_model("models/mlp.onnx", inputs="models/mlp_inputs.npz")
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
def test_mlp_on_recorded_inputs(trt_engine):
    # The gate compares on the arrays stored in the .npz, not on generated ones.
    with np.load(trt_engine.spec.inputs) as recorded:
        assert np.array_equal(trt_engine.sample_inputs()["x"], recorded["x"])


@pytest.mark.trt_model("models/mlp.onnx", precision="fp16", batch_size=32)
# fp16 weights and activations: a looser tolerance, stated where the gate is.
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-2)
def test_mlp_fp16(trt_engine):
    assert trt_engine.precision == "fp16"
