"""What an fp16 conversion keeps in fp32 besides the nodes named: constants fp16 cannot hold and
what reads them, the constants a kept node reads, LayerNorm written out (prepare/fp32_islands.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import huge_constant_model, onnx_model, written_out_layer_norm_model

from pytest_trt.prepare.fp32_islands import layer_norm_nodes, out_of_fp16_range
from pytest_trt.prepare.precision import apply_precision


def _run(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def _constant(name: str, values: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=f"{name}_node", value=numpy_helper.from_array(values, name))


def _constant_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every initializer (by name) and Constant (by its output's name, and by
    the node's name without ``_node``: the converter renames a kept Constant's output)."""
    types = {init.name: init.data_type for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            types[node.output[0]] = types[node.name.removesuffix("_node")] = node.attribute[0].t.data_type
    return types


@pytest.mark.parametrize(
    ("values", "out"),
    [
        ([1.0, -65504.0], False),
        ([9.79e7], True),
        ([-1e5, 0.5], True),
        ([1e-9, -3e-10, 0.0], True),  # every nonzero value below fp16's smallest subnormal
        ([1e-9, 0.5], False),  # a tiny entry among others: fp16 keeps the tensor's meaning
        ([0.0, np.inf, np.nan], False),
        ([], False),
    ],
)
def test_out_of_fp16_range(values, out):
    assert out_of_fp16_range(np.array(values, np.float32)) is out


def test_a_huge_constant_and_the_nodes_reading_it_stay_fp32_in_fp16_not_in_bf16(tmp_path):
    source = huge_constant_model(tmp_path / "det.onnx")
    feed = {"image": np.random.default_rng(0).uniform(0, 1, (1, 3, 16, 16)).astype(np.float32)}
    converted = apply_precision(source, "fp16", tmp_path)
    model = onnx.load(str(converted))
    (constant,) = [node for node in model.graph.node if node.op_type == "Constant"]
    assert constant.attribute[0].t.data_type == TensorProto.FLOAT
    readers = [node for node in model.graph.node if constant.output[0] in node.input]
    assert sorted(node.name for node in readers) == ["scale_down", "scale_up"]
    # The product (~1e8) passes between two kept nodes in fp32: no Cast to fp16 in between.
    produced = {out: node for node in model.graph.node for out in node.output}
    (scale_down,) = [node for node in model.graph.node if node.name == "scale_down"]
    assert produced[scale_down.input[0]].name == "scale_up"
    expected = _run(source, feed)
    np.testing.assert_allclose(_run(converted, feed), expected, rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(_run(apply_precision(source, "fp16", tmp_path, emulate=True), feed), expected, rtol=1e-2, atol=1e-2)
    # bf16 has fp32's range: nothing is kept for it.
    bf16 = onnx.load(str(apply_precision(source, "bf16", tmp_path)))
    assert _constant_types(bf16)["scale"] == TensorProto.BFLOAT16


def _shared_constants_model(path: Path) -> Path:
    """Three kept nodes reading a Constant of their own, an initializer and a Constant that two
    fp16 nodes read too."""
    precise = np.array([1.0009765625 + 2**-12] * 4, np.float32)  # not an fp16 value
    graph = helper.make_graph(
        [
            _constant("own", precise),  # its node: "own_node"
            _constant("shared_c", precise * 3),
            helper.make_node("Add", ["x", "own"], ["k1"], name="kept1"),
            helper.make_node("Mul", ["k1", "shared_w"], ["k2"], name="kept2"),
            helper.make_node("Sub", ["k2", "shared_c"], ["k3"]),  # unnamed, kept by op type
            helper.make_node("Mul", ["x", "shared_w"], ["o1"], name="other1"),
            helper.make_node("Add", ["o1", "shared_c"], ["o2"], name="other2"),
            helper.make_node("Add", ["k3", "o2"], ["y"], name="join"),
        ],
        "shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [numpy_helper.from_array(precise * 5, "shared_w")],
    )
    model = onnx_model(graph)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def test_the_constants_a_kept_node_reads_stay_fp32_and_shared_ones_are_copied(tmp_path):
    source = _shared_constants_model(tmp_path / "shared.onnx")
    model = onnx.load(str(apply_precision(source, "fp16", tmp_path, keep_fp32_nodes=["kept1", "kept2"], keep_fp32_ops=["Sub"])))
    types = _constant_types(model)
    by_name = {node.name: node for node in model.graph.node}
    (sub,) = [node for node in model.graph.node if node.op_type == "Sub"]
    kept = [by_name["kept1"], by_name["kept2"], sub]
    for node in kept:
        constants = [name for name in node.input if name in types]
        assert constants and all(types[name] == TensorProto.FLOAT for name in constants), node
    assert types["own"] == TensorProto.FLOAT  # read by a kept node only: kept with it
    # The fp16 nodes still read the fp16 originals; the kept ones read fp32 copies.
    assert types["shared_w"] == types["shared_c"] == TensorProto.FLOAT16
    assert by_name["other1"].input[1] == "shared_w" and by_name["kept2"].input[1] != "shared_w"
    assert sub.name  # named, so that the converter could block it
    onnx.checker.check_model(model)


def test_keep_fp32_ops_without_the_feeding_constants_rule_is_unchanged_for_unkept_models(tmp_path):
    source = _shared_constants_model(tmp_path / "shared.onnx")
    types = _constant_types(onnx.load(str(apply_precision(source, "fp16", tmp_path))))
    assert set(types.values()) == {TensorProto.FLOAT16}  # nothing kept, nothing copied


def test_layer_norm_written_out_is_found_with_pow_or_mul(tmp_path):
    model = onnx.load(str(written_out_layer_norm_model(tmp_path / "ln.onnx")))
    assert [n.name for n in layer_norm_nodes(model.graph)] == [
        "ln_mean", "ln_sub", "ln_pow", "ln_variance", "ln_add", "ln_sqrt", "ln_div"
    ]
    (pow_node,) = [n for n in model.graph.node if n.op_type == "Pow"]
    pow_node.CopyFrom(helper.make_node("Mul", ["centered", "centered"], ["squared"], name="ln_square"))
    assert [n.name for n in layer_norm_nodes(model.graph)][2] == "ln_square"
    # Not a LayerNorm: the squared value is another tensor's.
    pow_node.input[1] = "x"
    assert layer_norm_nodes(model.graph) == []


def test_layer_normalization_in_keep_fp32_ops_keeps_the_written_out_chain(tmp_path):
    source = written_out_layer_norm_model(tmp_path / "ln.onnx")
    model = onnx.load(str(apply_precision(source, "fp16", tmp_path, keep_fp32_ops=["LayerNormalization"])))
    # The chain's values pass between its nodes in fp32: only its input and its output are cast.
    chain = {"ln_mean", "ln_sub", "ln_pow", "ln_variance", "ln_add", "ln_sqrt", "ln_div"}
    produced = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.name in chain - {"ln_mean"}:
            sources = [produced[name] for name in node.input if name in produced]
            assert all(source.op_type != "Cast" for source in sources if source.name not in chain), node.name
    assert _constant_types(model)["eps"] == TensorProto.FLOAT
    feed = {"x": np.random.default_rng(1).uniform(-600, 600, (4, 64)).astype(np.float32)}
    np.testing.assert_allclose(_run(Path(apply_precision(source, "fp16", tmp_path, keep_fp32_ops=["LayerNormalization"],
                                                          emulate=True)), feed), _run(source, feed), rtol=1e-2, atol=1e-2)


def test_keep_in_fp32_names_the_constants_kept_for_their_range(tmp_path):
    from pytest_trt.prepare.fp32_islands import keep_in_fp32

    model = onnx.load(str(huge_constant_model(tmp_path / "det.onnx")))
    kept = keep_in_fp32(model, (), (), fp16_range=True)
    assert kept.out_of_range == ("scale",)
    assert kept.nodes == ("scale_down", "scale_node", "scale_up")
    assert keep_in_fp32(model, (), (), fp16_range=False).nodes == ()
