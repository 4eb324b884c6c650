"""Small ONNX models that tests build on the fly (importable: tests/ is on sys.path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def onnx_model(graph: onnx.GraphProto, opset: int = 17) -> onnx.ModelProto:
    """``graph`` as a model at the lowest IR version its opset allows: onnx stamps its own newest
    IR version by default, which an older onnxruntime refuses to load."""
    imports = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=imports, ir_version=helper.find_min_ir_version_for(imports))


def overflowing_model(path: Path) -> Path:
    """y = (relu(x) @ W1) @ W2: the middle product (~1e5) exceeds fp16's 65504, y (~500) does not.
    Two MatMuls, because onnxruntime would fuse a MatMul and a scaling Mul into one kernel."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["act"], name="act"),
            helper.make_node("MatMul", ["act", "W1"], ["big"], name="project"),
            helper.make_node("MatMul", ["big", "W2"], ["y"], name="reduce"),
        ],
        "overflow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [
            numpy_helper.from_array(np.full((8, 4), 2e4, np.float32), "W1"),
            numpy_helper.from_array(np.full((4, 4), 1e-3, np.float32), "W2"),
        ],
    )
    return _checked_save(onnx_model(graph), path)


def _checked_save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def conv_classifier(path: Path, opset: int) -> Path:
    """image (batch, 3, 32, 32) -> Conv/Relu x2 -> GlobalAveragePool -> Flatten -> Gemm -> logits
    (batch, 10), at ``opset``: per-channel INT8 gives each Conv and the Gemm a DequantizeLinear
    with ``axis``, which only opset 13 and later allow."""
    rng = np.random.default_rng(11)
    weights = {
        "w1": rng.normal(0, 0.3, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8),
        "w2": rng.normal(0, 0.2, (16, 8, 3, 3)), "b2": rng.normal(0, 0.1, 16),
        "fc": rng.normal(0, 0.2, (16, 10)), "fb": np.zeros(10),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
            helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
            helper.make_node("GlobalAveragePool", ["r2"], ["pooled"], name="pool"),
            helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
            helper.make_node("Gemm", ["flat", "fc", "fb"], ["logits"], name="fc"),
        ],
        "conv_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()],
    )
    return _checked_save(onnx_model(graph, opset), path)


def huge_constant_model(path: Path, scale: float = 9.79e7) -> Path:
    """image (1, 3, 16, 16) -> Conv -> Relu -> Mul(Constant scale) -> Div(Constant scale) -> y, as
    exporters of detection models write rescalings: fp16 cannot hold ``scale`` (over 65504), so
    a converter that clamps it to 65504 makes the product inf."""
    rng = np.random.default_rng(5)
    constant = numpy_helper.from_array(np.array(scale, np.float32), "scale_value")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w", "b"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv"], ["act"], name="relu"),
            helper.make_node("Constant", [], ["scale"], name="scale_node", value=constant),
            helper.make_node("Mul", ["act", "scale"], ["scaled"], name="scale_up"),
            helper.make_node("Div", ["scaled", "scale"], ["y"], name="scale_down"),
        ],
        "huge_constant",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        [
            numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(np.full(4, 0.5, np.float32), "b"),
        ],
    )
    return _checked_save(onnx_model(graph), path)


def written_out_layer_norm_model(path: Path, width: int = 64) -> Path:
    """x (batch, width) -> LayerNorm as exporters write it out (ReduceMean, Sub, Pow, ReduceMean,
    Add, Sqrt, Div), then * gamma + beta -> y. For inputs of a few hundred the mean of squares
    is over fp16's 65504 while the normalized output is about 1."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mean"], name="ln_mean", axes=[-1]),
            helper.make_node("Sub", ["x", "mean"], ["centered"], name="ln_sub"),
            helper.make_node("Pow", ["centered", "two"], ["squared"], name="ln_pow"),
            helper.make_node("ReduceMean", ["squared"], ["variance"], name="ln_variance", axes=[-1]),
            helper.make_node("Add", ["variance", "eps"], ["variance_eps"], name="ln_add"),
            helper.make_node("Sqrt", ["variance_eps"], ["deviation"], name="ln_sqrt"),
            helper.make_node("Div", ["centered", "deviation"], ["normalized"], name="ln_div"),
            helper.make_node("Mul", ["normalized", "gamma"], ["scaled"], name="ln_gamma"),
            helper.make_node("Add", ["scaled", "beta"], ["y"], name="ln_beta"),
        ],
        "layer_norm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        [
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
            numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
            numpy_helper.from_array(np.linspace(0.5, 1.5, width).astype(np.float32), "gamma"),
            numpy_helper.from_array(np.linspace(-0.1, 0.1, width).astype(np.float32), "beta"),
        ],
    )
    return _checked_save(onnx_model(graph), path)


def matmul_chain(path: Path, hot_width: int = 2048, nodes: int = 0) -> Path:
    """x (8, 256) -> 'encoder/layer.0/MatMul' (256x256) -> 'encoder/layer.3/MatMul_1' (256 x
    ``hot_width``, the slow one) -> 'encoder/ReduceSum' over the last axis -> y (8, 1). The IO
    does not depend on ``hot_width``: a wider one is the same test, slower in that one MatMul.
    ``nodes`` more Relu nodes before the first MatMul make a big graph (a 500-node model)."""
    rng = np.random.default_rng(3)
    chain = [helper.make_node("Relu", [f"r{i}" if i else "x"], [f"r{i + 1}"], name=f"pre/Relu_{i}") for i in range(nodes)]
    first = f"r{nodes}" if nodes else "x"
    graph = helper.make_graph(
        [
            *chain,
            helper.make_node("MatMul", [first, "w0"], ["h0"], name="encoder/layer.0/MatMul"),
            helper.make_node("MatMul", ["h0", "w1"], ["h1"], name="encoder/layer.3/MatMul_1"),
            helper.make_node("ReduceSum", ["h1", "axes"], ["y"], name="encoder/ReduceSum", keepdims=1),
        ],
        "matmul_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 1])],
        [
            numpy_helper.from_array(rng.normal(0, 0.05, (256, 256)).astype(np.float32), "w0"),
            numpy_helper.from_array(rng.normal(0, 0.05, (256, hot_width)).astype(np.float32), "w1"),
            numpy_helper.from_array(np.array([-1], np.int64), "axes"),
        ],
    )
    return _checked_save(onnx_model(graph), path)


def growing_chain(path: Path, steps: int = 20) -> Path:
    """x (4, 8) -> ``steps`` Mul nodes 'grow_<i>' by 16 -> 'shrink' (Mul by 16**-steps) -> y: from
    the fourth Mul on every intermediate value is over fp16's 65504, so keeping it all in fp32
    takes more nodes than a pointed fix holds."""
    nodes = [
        helper.make_node("Mul", [f"g{i}" if i else "x", "sixteen"], [f"g{i + 1}"], name=f"grow_{i}") for i in range(steps)
    ]
    nodes.append(helper.make_node("Mul", [f"g{steps}", "tiny"], ["y"], name="shrink"))
    graph = helper.make_graph(
        nodes,
        "growing_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [
            numpy_helper.from_array(np.array(16.0, np.float32), "sixteen"),
            numpy_helper.from_array(np.array(16.0**-steps, np.float32), "tiny"),
        ],
    )
    return _checked_save(onnx_model(graph), path)


def activation_outlier_model(path: Path) -> Path:
    """x (4, 64) -> 'head' (MatMul 64x64) -> 'shift' (Add: channel 63 + 1000) -> 'mix' (MatMul
    64x16, row 63 zero) -> y. The outlier channel never reaches y, but INT8 quantizes h over its
    range of 1000: a step of ~8 rounds every other channel to 0, so y is lost. Leaving 'shift' and
    'mix' unquantized repairs it (the quantizer puts a Q/DQ pair on the Add's output whoever
    reads it); 'head' stays INT8."""
    rng = np.random.default_rng(9)
    bias = np.zeros(64, np.float32)
    bias[-1] = 1000.0
    weights = rng.normal(0, 0.3, (64, 16)).astype(np.float32)
    weights[-1] = 0.0
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w0"], ["a"], name="head"),
            helper.make_node("Add", ["a", "bias"], ["h"], name="shift"),
            helper.make_node("MatMul", ["h", "w"], ["y"], name="mix"),
        ],
        "activation_outlier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])],
        [
            numpy_helper.from_array((np.eye(64) + rng.normal(0, 0.05, (64, 64))).astype(np.float32), "w0"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(weights, "w"),
        ],
    )
    return _checked_save(onnx_model(graph, 17), path)
