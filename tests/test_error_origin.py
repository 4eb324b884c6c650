"""Where a reduced-precision graph's error starts: intermediate tensors against the fp32 model's."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_builders import growing_chain, written_out_layer_norm_model

from pytest_trt.judge import error_origin
from pytest_trt.judge.diagnosis import Diagnosis, DiagnosisState
from pytest_trt.judge.error_origin import locate, tensor_error
from pytest_trt.prepare.precision import apply_precision

FP16_FLOOR = 8 * 2.0**-11


def test_tensor_error_tells_an_overflow_from_rounding():
    ref = np.array([1.0, 2.0, 1e5])
    rounded = tensor_error(np.array([1.0, 2.0, np.inf]), ref)
    assert rounded.overflow and rounded.rel == float("inf") and rounded.ref_max == 1e5
    small = tensor_error(np.array([1.001, 2.0]), np.array([1.0, 2.0]))
    assert not small.overflow and small.rel == pytest.approx(0.0005)


@pytest.mark.parametrize("chunk", [1, 2, 16])
def test_the_origin_is_the_same_whatever_the_chunk(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(error_origin, "CHUNK", chunk)
    model = written_out_layer_norm_model(tmp_path / "ln.onnx")
    emulated = apply_precision(model, "fp16", tmp_path, emulate=True)
    feed = {"x": np.random.default_rng(0).uniform(-600, 600, (4, 64)).astype(np.float32)}
    origin = locate(model, emulated, feed, FP16_FLOOR)
    assert origin is not None and (origin.node, origin.op, origin.output) == ("ln_pow", "Pow", "squared")
    assert origin.error.overflow and origin.inherited < FP16_FLOOR  # its inputs only carry rounding


def test_error_inherited_from_an_overflow_is_not_introduced_again(tmp_path):
    model = growing_chain(tmp_path / "chain.onnx", steps=8)
    emulated = apply_precision(model, "fp16", tmp_path, emulate=True)
    origin = locate(model, emulated, {"x": np.ones((4, 8), np.float32)}, FP16_FLOOR)
    assert origin is not None and origin.node == "grow_3"  # 16**4 = 65536: the first over 65504


def test_nothing_is_located_in_a_model_that_stays_in_range(tmp_path):
    model = growing_chain(tmp_path / "chain.onnx", steps=2)
    emulated = apply_precision(model, "fp16", tmp_path, emulate=True)
    assert locate(model, emulated, {"x": np.ones((4, 8), np.float32)}, FP16_FLOOR) is None


def test_a_passed_deadline_stops_the_walk(tmp_path):
    model = written_out_layer_norm_model(tmp_path / "ln.onnx")
    emulated = apply_precision(model, "fp16", tmp_path, emulate=True)
    feed = {"x": np.full((4, 64), 600, np.float32)}
    assert locate(model, emulated, feed, FP16_FLOOR, deadline=0.0) is None


def test_a_diagnosis_without_an_origin_says_why():
    lines = Diagnosis(DiagnosisState.NOT_LOCATED, "bf16", reason="the tolerance is tighter").lines()
    assert lines[1] == "  no node introduces error beyond bf16 rounding: the tolerance is tighter"
