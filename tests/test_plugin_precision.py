"""precision= as users meet it: an fp16 overflow fails the test, keeping the range-critical
node in fp32 (a trt_model build option) makes it pass; both on onnxruntime's CPU provider."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TEST_FILE = """
import pytest

@pytest.mark.trt_model("overflow.onnx", precision="fp16", shapes={{"x": (4, 8)}}, input_ranges={{"x": (0.5, 1.0)}}{extra})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
def test_overflow(trt_engine):
    pass
"""


def _overflowing_model(path) -> None:
    """y = (x @ W1) @ W2: the middle product (~1e5) exceeds fp16's 65504, y (~500) does not."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W1"], ["big"], name="project"),
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
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_fp16_overflow_fails_the_test_and_names_the_output(trt_pytester) -> None:
    _overflowing_model(trt_pytester.path / "overflow.onnx")
    trt_pytester.pytester.makepyfile(test_overflow=TEST_FILE.format(extra=""))
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*output 'y': 16 of 16 elements outside rtol=1e-2 atol=1e-3; worst |d|=inf at [[]0, 0[]] (out=inf*"]
    )


def test_fp16_overflow_passes_with_the_node_kept_in_fp32(trt_pytester) -> None:
    _overflowing_model(trt_pytester.path / "overflow.onnx")
    extra = ', keep_fp32_nodes=("project", "reduce")'
    trt_pytester.pytester.makepyfile(test_overflow=TEST_FILE.format(extra=extra))
    trt_pytester.run().assert_outcomes(passed=1)


def test_unknown_transform_option_value_is_named(trt_pytester) -> None:
    _overflowing_model(trt_pytester.path / "overflow.onnx")
    extra = ', keep_fp32_nodes=("no_such_node",)'
    trt_pytester.pytester.makepyfile(test_overflow=TEST_FILE.format(extra=extra))
    result = trt_pytester.run()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*no_such_node*"])
