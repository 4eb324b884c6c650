"""A transformer encoder block (attention + GELU FFN) with a dynamic batch dim.

Token ids are generated inside the embedding table's range, which pytest-trt reads from the
model's Gather; the same engine spec is gated at two batch sizes.
"""

import pytest


def batch(size: int):
    # intra_op_threads=1: see test_cnn.py.
    mark = pytest.mark.trt_model("models/encoder.onnx", batch_size=size, intra_op_threads=1)
    return pytest.param(size, marks=mark, id=f"batch{size}")


@pytest.mark.parametrize("size", [batch(1), batch(8)])
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-4)
@pytest.mark.trt_perf(max_latency_ms=100, percentile=99, backend="onnxruntime")
@pytest.mark.trt_perf(max_latency_ms=0.2, percentile=99, backend="tensorrt")
def test_encoder(trt_engine, size):
    tokens = trt_engine.sample_inputs()["tokens"]
    assert tokens.shape == (size, 16)
    assert tokens.min() >= 0 and tokens.max() < 1000
    assert trt_engine.infer({"tokens": tokens})["hidden"].shape == (size, 16, 64)


def test_encoder_rows_do_not_depend_on_batch(trt_build):
    # trt_build: engines a test specifies itself, from the same session memo and cache.
    single = trt_build("models/encoder.onnx", batch_size=1)
    several = trt_build("models/encoder.onnx", batch_size=4, seed=3)
    tokens = several.sample_inputs()["tokens"]
    rows = several.infer({"tokens": tokens})["hidden"]
    first = single.infer({"tokens": tokens[:1]})["hidden"]
    assert abs(rows[:1] - first).max() < 1e-4
