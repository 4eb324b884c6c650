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
