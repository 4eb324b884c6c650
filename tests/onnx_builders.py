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
