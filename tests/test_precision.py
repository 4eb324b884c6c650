"""The shared ONNX precision transform, run for real on onnxruntime's CPU provider."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx_builders import onnx_model, overflowing_model

from pytest_trt.judge.accuracy import compare_outputs
from pytest_trt.prepare import precision
from pytest_trt.prepare.precision import RANGE_SENSITIVE_OPS, PrecisionError, apply_precision, has_qdq, transform_key
from pytest_trt.specs import make_accuracy_spec
from pytest_trt.store import files

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def _run(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def _relu_model(path: Path, opset: int = 17) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    return _save(onnx_model(graph, opset), path)


def _qdq_nodes(prefix: str = "") -> list[onnx.NodeProto]:
    return [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], [f"{prefix}q"]),
        helper.make_node("DequantizeLinear", [f"{prefix}q", "s", "zp"], [f"{prefix}y"]),
    ]


def _qdq_model(path: Path) -> Path:
    graph = helper.make_graph(
        _qdq_nodes(),
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [
            numpy_helper.from_array(np.array(0.1, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "zp"),
        ],
    )
    return _save(onnx_model(graph), path)


def _feed(batch: int = 4) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).uniform(0.5, 1.0, size=(batch, 8)).astype(np.float32)}


def test_fp16_overflow_fails_with_a_report_pointing_at_it(tmp_path):
    source = overflowing_model(tmp_path / "overflow.onnx")
    reference = _run(source, _feed())
    assert np.isfinite(reference["y"]).all() and np.abs(reference["y"]).max() < 1000
    emulated = apply_precision(source, "fp16", tmp_path / "out", emulate=True)
    result = compare_outputs(_run(emulated, _feed()), reference, make_accuracy_spec(rtol=1e-2))
    message = result.failure_message()
    assert message.startswith(
        "output 'y': 16 of 16 elements outside rtol=1e-2 atol=1e-5; worst |d|=inf at [0, 0] (out=inf"
    )
    assert "non-finite values rejected: 16" in message
    assert "no tolerance would pass" in message


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the point of the test
def test_onnxruntime_cpu_hides_the_overflow_that_emulation_shows(tmp_path):
    """Why emulate exists: the CPU provider runs these fp16 ops in fp32 and drops the fp16 casts
    between them, while onnx's reference evaluator (true fp16 arithmetic) overflows like the
    emulation does."""
    source = overflowing_model(tmp_path / "overflow.onnx")
    native = apply_precision(source, "fp16", tmp_path / "out")
    assert np.isfinite(_run(native, _feed())["y"]).all()
    assert np.isinf(ReferenceEvaluator(str(native)).run(None, _feed())[0]).all()


@pytest.mark.parametrize(
    "keep", [{"keep_fp32_nodes": ["project", "reduce"]}, {"keep_fp32_ops": ["MatMul"]}]
)
def test_fp16_overflow_passes_with_the_range_critical_nodes_kept_fp32(tmp_path, keep):
    source = overflowing_model(tmp_path / "overflow.onnx")
    native = onnx.load(apply_precision(source, "fp16", tmp_path / "out", **keep))
    onnx.checker.check_model(native, full_check=True)
    # The converter's Cast(fp16)->Cast(fp32) between the two kept MatMuls is gone.
    assert [n.op_type for n in native.graph.node] == ["Cast", "Relu", "Cast", "MatMul", "MatMul", "Cast"]
    actual = _run(apply_precision(source, "fp16", tmp_path / "out", emulate=True, **keep), _feed())
    reference = _run(source, _feed())
    result = compare_outputs(actual, reference, make_accuracy_spec(rtol=1e-2))
    assert result.passed, result.failure_message()
    assert not np.array_equal(actual["y"], reference["y"])  # Relu's fp16 rounding still shows


def test_fp16_keeps_io_types_and_converts_weights(tmp_path):
    source = MODELS / "mlp.onnx"
    converted = onnx.load(apply_precision(source, "fp16", tmp_path))
    original = onnx.load(source)
    io_types = lambda m: [v.type.tensor_type.elem_type for v in [*m.graph.input, *m.graph.output]]  # noqa: E731
    assert io_types(converted) == io_types(original) == [TensorProto.FLOAT, TensorProto.FLOAT]
    assert {i.data_type for i in converted.graph.initializer} == {TensorProto.FLOAT16}


@pytest.mark.parametrize("name", ["mlp", "cnn", "encoder"])
def test_fp16_emulation_of_the_examples_is_close_to_fp32(tmp_path, name):
    source = MODELS / f"{name}.onnx"
    model = onnx.load(source)
    rng = np.random.default_rng(1)
    feed = {}
    for graph_input in model.graph.input:
        dims = [d.dim_value or 2 for d in graph_input.type.tensor_type.shape.dim]
        if graph_input.type.tensor_type.elem_type == TensorProto.INT64:
            feed[graph_input.name] = rng.integers(0, 1000, size=dims)
        else:
            feed[graph_input.name] = rng.uniform(-1, 1, size=dims).astype(np.float32)
    reference = _run(source, feed)
    actual = _run(apply_precision(source, "fp16", tmp_path, emulate=True), feed)
    assert compare_outputs(actual, reference, make_accuracy_spec(rtol=2e-2, atol=5e-3)).passed
    assert not compare_outputs(actual, reference, make_accuracy_spec(rtol=1e-6, atol=0.0)).passed


def test_unchanged_precisions_return_the_model_itself(tmp_path):
    source = MODELS / "mlp.onnx"
    for name in ("fp32", "tf32"):
        assert apply_precision(source, name, tmp_path / "out") == source
    assert not (tmp_path / "out").exists()


def test_quantized_precisions_pass_qdq_models_through(tmp_path):
    source = _qdq_model(tmp_path / "qdq.onnx")
    assert has_qdq(onnx.load(source))
    assert apply_precision(source, "int8", tmp_path / "out") == source
    assert apply_precision(source, "fp8", tmp_path / "out") == source


def test_qdq_inside_a_subgraph_is_found():
    branch = lambda name: helper.make_graph(  # noqa: E731
        _qdq_nodes(name) if name == "then_" else [helper.make_node("Identity", ["x"], [f"{name}y"])],
        name, [], [helper.make_tensor_value_info(f"{name}y", TensorProto.FLOAT, [4])],
    )
    node = helper.make_node("If", ["cond"], ["y"], then_branch=branch("then_"), else_branch=branch("else_"))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    assert has_qdq(onnx_model(graph))
    assert not has_qdq(onnx.load(MODELS / "mlp.onnx"))


@pytest.mark.parametrize("name", ["int8", "fp8"])
def test_quantized_precision_without_qdq_says_how_to_quantize(tmp_path, name):
    with pytest.raises(PrecisionError) as error:
        apply_precision(MODELS / "mlp.onnx", name, tmp_path)
    message = str(error.value)
    assert message.startswith(f"{MODELS / 'mlp.onnx'}: precision={name!r} needs a model with Q/DQ")
    assert "modelopt.onnx.quantization" in message and f"--quantize_mode={name}" in message


def test_converted_model_is_reused_and_keyed_by_options(tmp_path, monkeypatch):
    source = MODELS / "mlp.onnx"
    first = apply_precision(source, "fp16", tmp_path)
    assert first.parent == tmp_path and first.name.startswith("mlp.fp16-")

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again instead of reusing the file")

    monkeypatch.setattr(precision, "_to_fp16", must_not_convert)
    assert apply_precision(source, "fp16", tmp_path) == first
    monkeypatch.undo()
    kept = apply_precision(source, "fp16", tmp_path, keep_fp32_ops=["Relu"])
    emulated = apply_precision(source, "fp16", tmp_path, emulate=True)
    assert emulated.name.startswith("mlp.fp16-emulated-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({first.name, kept.name, emulated.name})


def test_range_sensitive_ops_are_accepted_where_absent(tmp_path):
    converted = onnx.load(apply_precision(MODELS / "mlp.onnx", "fp16", tmp_path, keep_fp32_ops=RANGE_SENSITIVE_OPS))
    assert {i.data_type for i in converted.graph.initializer} == {TensorProto.FLOAT16}


def test_transform_key_is_json_and_names_tool_version_and_options():
    key = transform_key("fp16", {"keep_fp32_ops": ["Softmax", "MatMul", "Softmax"]})
    assert json.loads(json.dumps(key)) == key
    assert key["tool"]["name"] == "onnxruntime.transformers.float16"
    assert key["tool"]["version"] == ort.__version__
    assert key["options"] == {"keep_fp32_ops": ["MatMul", "Softmax"], "keep_fp32_nodes": [], "emulate": False}
    assert key != transform_key("fp16", {"keep_fp32_ops": ["Softmax", "MatMul"], "emulate": True})
    assert key != transform_key("bf16", {"keep_fp32_ops": ["Softmax", "MatMul"]})
    assert transform_key("fp32", {}) == transform_key("fp32", {"keep_fp32_ops": []}) != transform_key("tf32", {})


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def crash(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        apply_precision(MODELS / "mlp.onnx", "fp16", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_emulation_matches_the_native_graph(tmp_path, name):
    source = MODELS / "mlp.onnx"
    native_path = apply_precision(source, name, tmp_path)
    native = onnx.load(native_path)
    onnx.checker.check_model(native, full_check=True)
    low = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}[name]
    assert {i.data_type for i in native.graph.initializer} == {low}
    emulated_path = apply_precision(source, name, tmp_path, emulate=True)
    emulated = onnx.load(emulated_path)
    onnx.checker.check_model(emulated, full_check=True)
    assert {i.data_type for i in emulated.graph.initializer} == {TensorProto.FLOAT}
    feed = {"x": np.random.default_rng(2).uniform(-1, 1, size=(4, 256)).astype(np.float32)}
    emulated_y = _run(emulated_path, feed)["y"]
    native_y = ReferenceEvaluator(str(native_path)).run(None, feed)[0].astype(np.float32)
    # The reference evaluator accumulates in the low type, the emulation in fp32: one output ulp.
    ulp = {"fp16": 2**-10, "bf16": 2**-7}[name]
    assert compare_outputs({"y": emulated_y}, {"y": native_y}, make_accuracy_spec(rtol=ulp, atol=ulp)).passed


def test_bf16_emulation_stores_bf16_values_with_fp32_io(tmp_path):
    source = MODELS / "mlp.onnx"
    emulated_path = apply_precision(source, "bf16", tmp_path, emulate=True)
    emulated = onnx.load(emulated_path)
    assert [v.type.tensor_type.elem_type for v in [*emulated.graph.input, *emulated.graph.output]] == [
        TensorProto.FLOAT, TensorProto.FLOAT
    ]
    for init in emulated.graph.initializer:
        assert not (numpy_helper.to_array(init).view(np.uint32) & 0xFFFF).any(), init.name
    feed = {"x": np.random.default_rng(2).uniform(-1, 1, size=(4, 256)).astype(np.float32)}
    actual = _run(emulated_path, feed)
    assert not (actual["y"].view(np.uint32) & 0xFFFF).any()  # outputs carry bf16 values
    reference = _run(source, feed)
    assert compare_outputs(actual, reference, make_accuracy_spec(rtol=5e-2, atol=2e-2)).passed
    assert not compare_outputs(actual, reference, make_accuracy_spec()).passed


def test_bf16_rounds_to_nearest_even_and_respects_kept_nodes(tmp_path):
    source = _relu_model(tmp_path / "relu.onnx")
    x = np.array([1 + 2**-8, 1 + 3 * 2**-8, 3.14159, -2.0], np.float32)
    rounded = _run(apply_precision(source, "bf16", tmp_path, emulate=True), {"x": x})["y"]
    assert rounded.tolist() == [1.0, 1.015625, 3.140625, 0.0]
    kept = _run(apply_precision(source, "bf16", tmp_path, emulate=True, keep_fp32_nodes=["relu"]), {"x": x})["y"]
    assert kept.tolist() == np.maximum(x, 0).tolist()  # nothing left in bf16


def test_bf16_keeps_ops_without_a_bf16_schema_in_fp32(tmp_path):
    converted = onnx.load(apply_precision(MODELS / "cnn.onnx", "bf16", tmp_path))
    onnx.checker.check_model(converted, full_check=True)  # Conv has no bf16 before opset 22
    types = {i.name: i.data_type for i in converted.graph.initializer}
    gemm_weight = next(n.input[1] for n in converted.graph.node if n.op_type == "Gemm")
    conv_weight = next(n.input[1] for n in converted.graph.node if n.op_type == "Conv")
    assert types[gemm_weight] == TensorProto.BFLOAT16 and types[conv_weight] == TensorProto.FLOAT


def test_bf16_needs_opset_13(tmp_path):
    source = _relu_model(tmp_path / "old.onnx", opset=12)
    with pytest.raises(PrecisionError, match="precision='bf16' needs ONNX opset >= 13"):
        apply_precision(source, "bf16", tmp_path / "out")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"precision": "fp64"}, "precision must be one of fp32, tf32, fp16, bf16, int8, fp8; got 'fp64'"),
        ({"keep_fp32_ops": "Softmax"}, "keep_fp32_ops must be a list of names, got 'Softmax'"),
        ({"keep_fp32_ops": ["Sofmax"]}, "keep_fp32_ops names ['Sofmax'] that are not ONNX operator types"),
        ({"keep_fp32_nodes": ["nope"]}, "keep_fp32_nodes names ['nope'] that are not nodes of the model"),
        ({"emulate": "yes"}, "emulate must be True or False, got 'yes'"),
    ],
)
def test_bad_arguments_are_named(tmp_path, arguments, expected):
    arguments = {"precision": "fp16", **arguments}
    with pytest.raises(PrecisionError) as error:
        apply_precision(MODELS / "mlp.onnx", arguments.pop("precision"), tmp_path, **arguments)
    assert expected in str(error.value)


def test_unreadable_model_is_named(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(PrecisionError, match=r"broken\.onnx: not a readable ONNX model"):
        apply_precision(broken, "fp16", tmp_path / "out")
    with pytest.raises(PrecisionError, match=r"missing\.onnx: model file not found"):
        apply_precision(tmp_path / "missing.onnx", "int8", tmp_path / "out")
