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


def test_tensors_read_from_the_backend_are_judged_and_those_it_lacks_are_not(tmp_path):
    """``read`` stands for a backend that computes the converted graph itself (TensorRT, its
    tensors marked as outputs): here the emulation, without the Pow's output, which a backend
    may fuse away."""
    import onnxruntime as ort

    model = written_out_layer_norm_model(tmp_path / "ln.onnx")
    emulated = apply_precision(model, "fp16", tmp_path, emulate=True)
    feed = {"x": np.random.default_rng(0).uniform(-600, 600, (4, 64)).astype(np.float32)}
    asked: list[list[str]] = []

    def read(names):
        asked.append(names)
        found = [n for n in names if n != "squared"]
        session = error_origin._session(ort, error_origin._with_outputs(error_origin.onnx.load(str(emulated)), found, {}))
        return dict(zip(found, session.run(found, feed), strict=True))

    origin = locate(model, emulated, feed, FP16_FLOOR, read=read)
    assert "squared" in asked[0]  # asked for, not returned
    # 'squared' was not read: the first node judged to introduce the overflow reads it
    assert origin is not None and (origin.node, origin.output) == ("ln_variance", "variance") and origin.error.overflow


def test_a_diagnosis_read_on_a_backend_says_so():
    lines = Diagnosis(DiagnosisState.NOT_LOCATED, "fp16", reason="r", read_on="tensorrt").lines()
    assert lines[0].startswith("diagnosis (fp16 graph on tensorrt, its tensors marked as outputs, against the fp32 model, ")
    emulated = Diagnosis(DiagnosisState.NOT_LOCATED, "fp16", reason="r").lines()
    assert emulated[0].startswith("diagnosis (fp16 graph emulated on onnxruntime's CPU provider against the fp32 model, ")


def test_the_search_reads_the_graph_as_built_where_the_backend_can(tmp_path):
    """Where the test's backend reads its own intermediate tensors (TensorRT), the origin is found
    in the converted graph as that backend computed it, and the diagnosis says where it read."""
    import types

    import onnxruntime as ort

    from pytest_trt.arguments import Precision
    from pytest_trt.judge.precision_fix import Diagnoser, _Search

    model = written_out_layer_norm_model(tmp_path / "ln.onnx")
    converted = apply_precision(model, "fp16", tmp_path)
    emulated = apply_precision(model, "fp16", tmp_path, emulate=True)
    feed = {"x": np.random.default_rng(0).uniform(-600, 600, (4, 64)).astype(np.float32)}
    engine = types.SimpleNamespace(
        precision=Precision.FP16, backend="tensorrt", model=types.SimpleNamespace(path=model),
        converted=types.SimpleNamespace(path=converted), build=types.SimpleNamespace(option_map={}),
    )
    read_from: list[str] = []

    def reader(built):
        read_from.append(str(built.converted.path))

        def read(names, given):
            session = error_origin._session(ort, error_origin._with_outputs(error_origin.onnx.load(str(emulated)), list(names), {}))
            return dict(zip(names, session.run(list(names), dict(given)), strict=True))

        return read

    diagnoser = Diagnoser(rebuild=lambda e, nodes: e, workdir=lambda: tmp_path, cap_s=60, reader=reader)
    search = _Search(engine, feed, diagnoser, deadline=float("inf"), user_nodes=())
    origin = search.origin(engine)
    assert origin is not None and origin.node == "ln_pow"
    assert read_from == [str(converted)] and search.read_on == "tensorrt"
