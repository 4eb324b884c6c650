"""A compute-bound model family for GPU benches: a chain of ``blocks`` 2048x2048 fp32 MatMuls at
batch 2048, so that one more block is real GPU work (about 17 GFLOP) and not launch overhead.

    x [2048, 64] -> MatMul [64, 2048] -> blocks x (MatMul [2048, 2048], Relu) -> MatMul [2048, 64] -> y

Input and output are 64 wide so that the copies (0.5 MB each way) are about 1% of the latency
and 22 blocks cost 10% more than 20. Every block multiplies by the same weight, sqrt(2) times a
random orthogonal matrix (seeded), which keeps the activations' scale through Relu: no overflow
or denormals at any depth. The input projection's 0.5 GFLOP and the Relus are the same in every
member of the family.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIDTH = 2048  # and the batch
IO_WIDTH = 64
SEED = 0


@functools.cache
def _weights(width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    q, r = np.linalg.qr(rng.standard_normal((width, width)))
    block = (q * np.sign(np.diag(r)) * np.sqrt(2.0)).astype(np.float32)
    into = (rng.standard_normal((IO_WIDTH, width)) / np.sqrt(IO_WIDTH)).astype(np.float32)
    out = (rng.standard_normal((width, IO_WIDTH)) / np.sqrt(width)).astype(np.float32)
    return into, block, out


def matmul_chain(blocks: int, width: int = WIDTH) -> onnx.ModelProto:
    """The chain with ``blocks`` blocks (opset 17, static shapes); ``width`` is also the batch
    (smaller ones for a quick run on a CPU)."""
    if blocks < 1 or width < 1:
        raise ValueError(f"blocks and width must be >= 1, got {blocks} and {width}")
    into, block, out = _weights(width)
    nodes = [helper.make_node("MatMul", ["x", "w_in"], ["h0"])]
    for i in range(blocks):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w_block"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("MatMul", [f"h{blocks}", "w_out"], ["y"]))
    graph = helper.make_graph(
        nodes,
        f"matmul_chain_{blocks}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [width, IO_WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [width, IO_WIDTH])],
        [numpy_helper.from_array(into, "w_in"), numpy_helper.from_array(block, "w_block"),
         numpy_helper.from_array(out, "w_out")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
