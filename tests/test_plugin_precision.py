"""precision= as users meet it: an fp16 overflow fails the test, keeping the range-critical
node in fp32 (a trt_model build option) makes it pass; both on onnxruntime's CPU provider."""

from __future__ import annotations

from onnx_builders import huge_constant_model, overflowing_model, written_out_layer_norm_model

TEST_FILE = """
import pytest

@pytest.mark.trt_model("overflow.onnx", precision="fp16", shapes={{"x": (4, 8)}}, input_ranges={{"x": (0.5, 1.0)}}{extra})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
def test_overflow(trt_engine):
    pass
"""


def test_fp16_overflow_fails_the_test_and_names_the_output(trt_pytester) -> None:
    overflowing_model(trt_pytester.path / "overflow.onnx")
    trt_pytester.pytester.makepyfile(test_overflow=TEST_FILE.format(extra=""))
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*output 'y': 16 of 16 elements outside rtol=1e-2 atol=1e-3; worst |d|=inf at [[]0, 0[]] (out=inf*"]
    )


def test_fp16_overflow_passes_with_the_node_kept_in_fp32(trt_pytester) -> None:
    overflowing_model(trt_pytester.path / "overflow.onnx")
    extra = ', keep_fp32_nodes=("project", "reduce")'
    trt_pytester.pytester.makepyfile(test_overflow=TEST_FILE.format(extra=extra))
    trt_pytester.run().assert_outcomes(passed=1)


def test_unknown_transform_option_value_is_named(trt_pytester) -> None:
    overflowing_model(trt_pytester.path / "overflow.onnx")
    extra = ', keep_fp32_nodes=("no_such_node",)'
    trt_pytester.pytester.makepyfile(test_overflow=TEST_FILE.format(extra=extra))
    result = trt_pytester.run()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*no_such_node*"])


def test_converted_model_is_kept_in_the_engine_cache(trt_pytester) -> None:
    overflowing_model(trt_pytester.path / "overflow.onnx")
    extra = ', keep_fp32_nodes=("project", "reduce")'
    trt_pytester.pytester.makepyfile(test_overflow=TEST_FILE.format(extra=extra))
    cache = trt_pytester.path / "engine-cache"
    trt_pytester.run(f"--trt-engine-cache={cache}").assert_outcomes(passed=1)
    assert len(list((cache / "converted-model").glob("*/*/artifact.bin"))) == 1
    # A warm run converts nothing again: every artifact (converted model, engine, reference) is a hit.
    warm = trt_pytester.run(f"--trt-engine-cache={cache}")
    warm.assert_outcomes(passed=1)
    warm.stdout.fnmatch_lines(["*engine cache*: 3 hits, 0 misses*"])


HUGE_CONSTANT = """
import pytest

@pytest.mark.trt_model("det.onnx", precision="fp16", input_ranges={"image": (0.0, 1.0)})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-2)
def test_det_fp16(trt_engine):
    pass
"""


def test_a_constant_beyond_fp16s_range_stays_fp32_with_what_reads_it_and_the_model_passes(trt_pytester) -> None:
    huge_constant_model(trt_pytester.path / "det.onnx")
    trt_pytester.pytester.makepyfile(test_det=HUGE_CONSTANT)
    result = trt_pytester.run()
    result.assert_outcomes(passed=1)
    assert "inf" not in result.stdout.str().replace("pytest-trt", "")


LAYER_NORM = """
import pytest

from pytest_trt.prepare.precision import RANGE_SENSITIVE_OPS

@pytest.mark.trt_model("ln.onnx", precision="fp16", shapes={{"x": (4, 64)}}, input_ranges={{"x": (-600.0, 600.0)}}{extra})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-2)
def test_layer_norm_fp16(trt_engine):
    pass
"""


def test_a_layer_norm_overflowing_fp16_fails_and_passes_with_the_range_sensitive_ops_kept_in_fp32(trt_pytester) -> None:
    written_out_layer_norm_model(trt_pytester.path / "ln.onnx")
    trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=""))
    trt_pytester.run().assert_outcomes(failed=1)
    # The advice of docs/precision.md, as written there.
    trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=", keep_fp32_ops=RANGE_SENSITIVE_OPS"))
    trt_pytester.run().assert_outcomes(passed=1)
