"""A small CNN: conv blocks, pooling and a linear head, gated on a batch of 8 images."""

import numpy as np
import pytest

pytestmark = [
    # One onnxruntime thread: shared CI cores give steadier latencies, and baseline comparisons
    # can divide out the host's speed (docs/regression.md).
    pytest.mark.trt_model("models/cnn.onnx", batch_size=8, seed=1, intra_op_threads=1),
    pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5),
]


@pytest.mark.trt_perf(max_latency_ms=100, percentile=99, backend="onnxruntime")
@pytest.mark.trt_perf(max_latency_ms=0.3, percentile=99, backend="tensorrt")
def test_cnn(trt_engine):
    images = trt_engine.sample_inputs()["image"]
    assert images.shape == (8, 3, 32, 32)
    assert images.min() >= -1.0 and images.max() <= 1.0


def test_cnn_predictions_are_stable_under_tiny_noise(trt_engine):
    # A user's own check next to the gates: tiny input noise must not flip the predicted classes.
    feed = trt_engine.sample_inputs()
    clean = trt_engine.infer(feed)["logits"].argmax(axis=1)
    noisy_feed = {"image": feed["image"] + np.float32(1e-6)}
    noisy = trt_engine.infer(noisy_feed)["logits"].argmax(axis=1)
    assert np.array_equal(clean, noisy)


# INT8 by calibration: 32 seeded batches calibrate onnxruntime's static quantizer, and the one
# Q/DQ model it writes is what every backend runs. Quantization moves each logit a little, so the
# elementwise rule is loose and the cosine similarity with the fp32 model is the real gate.
@pytest.mark.trt_model("models/cnn.onnx", batch_size=8, seed=1, intra_op_threads=1, precision="int8", calibration=32)
@pytest.mark.trt_accuracy(rtol=0.1, atol=0.05, min_cosine=0.99)
@pytest.mark.trt_perf(max_latency_ms=100, percentile=99, backend="onnxruntime")
@pytest.mark.trt_perf(max_latency_ms=0.3, percentile=99, backend="tensorrt")
def test_cnn_int8(trt_engine):
    assert trt_engine.precision == "int8" and trt_engine.quantized
