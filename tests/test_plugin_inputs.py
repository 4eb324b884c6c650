"""Generated inputs as users meet them: the size limit and its option, and what a model that
rejects its generated inputs says."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import onnx_model

MLP_TEST = """
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=32)
@pytest.mark.trt_accuracy()
def test_mlp(trt_engine):
    pass
"""


def test_the_default_input_size_limit_is_the_model_default():
    from pytest_trt.prepare.inputs import DEFAULT_MAX_INPUT_BYTES
    from pytest_trt.run.options import DEFAULT_MAX_INPUT_BYTES as OPTION_DEFAULT
    from pytest_trt.store.sizes import parse_size

    assert parse_size(OPTION_DEFAULT) == DEFAULT_MAX_INPUT_BYTES


@pytest.mark.parametrize("how", ["option", "ini"])
def test_inputs_over_the_size_limit_are_a_setup_error_naming_input_and_option(trt_pytester, how):
    trt_pytester.pytester.makepyfile(test_limit=MLP_TEST)
    if how == "ini":
        trt_pytester.pytester.makeini("[pytest]\ntrt_max_input_bytes = 31KiB\n")
        result = trt_pytester.run()
    else:
        result = trt_pytester.run("--trt-max-input-bytes=31KiB")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_mlp*",
        f"test_limit.py::test_mlp: {trt_pytester.path / 'mlp.onnx'}: generating input 'x' of shape [[]32, 256[]] "
        "and dtype float32 takes 32.0 KiB (32768 bytes), over the limit of 31.0 KiB set by --trt-max-input-bytes "
        "(ini trt_max_input_bytes). Give smaller shapes= or batch_size=, real inputs with inputs=, or a larger limit",
    ])


@pytest.mark.parametrize("value", ["lots", "0"])
def test_an_unreadable_input_size_limit_is_a_usage_error(trt_pytester, value):
    trt_pytester.pytester.makepyfile(test_limit=MLP_TEST)
    result = trt_pytester.run(f"--trt-max-input-bytes={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = {
        "lots": "invalid size value: 'lots' (give bytes or a number with K, M, G or T (powers of 1000) or KiB, "
        "MiB, GiB or TiB (powers of 1024), e.g. 2GB or 500MiB)",
        "0": "must be > 0, got 0",
    }[value]
    result.stderr.fnmatch_lines([f"*argument --trt-max-input-bytes: {expected}"])


def save_shifted_gather(path) -> None:
    """out = table[idx + 10] + x for a table of 5 rows: every generated idx is out of range, and
    the shift hides the table's bound from the input generator."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["idx", "ten"], ["shifted"]),
            helper.make_node("Gather", ["table", "shifted"], ["rows"]),
            helper.make_node("Add", ["rows", "x"], ["out"]),
        ],
        "shifted",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, [2]), helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.zeros((5, 3), np.float32), "table"), numpy_helper.from_array(np.array(10, np.int64), "ten")],
    )
    onnx.save(onnx_model(graph), str(path))


GENERATED_WORDS = [
    "The model ran on generated inputs, which it may not accept:",
    "  'idx' [[]2[]] int64: ints in [[]0, 100) (default range)",
    "  'x' [[]1, 3[]] float32: uniform in [[]-1.0, 1.0) (from input_ranges)",
    "Set an input's range with trt_model(..., input_ranges={'idx': (low, high)}), or give real inputs with "
    "trt_model(..., inputs='inputs.npz').",
]


@pytest.mark.parametrize(
    ("gate", "step"),
    [("trt_accuracy()", "infer"), ('trt_perf(max_latency_ms=1e6, backend="onnxruntime")', "measuring")],
)
def test_a_model_rejecting_its_generated_inputs_says_what_it_was_fed(trt_pytester, gate, step):
    save_shifted_gather(trt_pytester.path / "shifted.onnx")
    trt_pytester.pytester.makepyfile(
        test_rejects=f"""
        import pytest

        @pytest.mark.trt_model("shifted.onnx", input_ranges={{"x": (-1.0, 1.0)}})
        @pytest.mark.{gate}
        def test_it():
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*_ test_it _*",
        f"pytest-trt: {step}: onnxruntime failed: *indices element out of data bounds*",
        *GENERATED_WORDS,
    ])


def test_a_model_rejecting_real_inputs_does_not_blame_generation(trt_pytester):
    save_shifted_gather(trt_pytester.path / "shifted.onnx")
    np.savez(trt_pytester.path / "real.npz", idx=np.array([1, 2], np.int64), x=np.zeros((1, 3), np.float32))
    trt_pytester.pytester.makepyfile(
        test_rejects="""
        import pytest

        @pytest.mark.trt_model("shifted.onnx", inputs="real.npz")
        @pytest.mark.trt_accuracy()
        def test_it():
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["pytest-trt: infer: onnxruntime failed: *indices element out of data bounds*"])
    assert "generated" not in result.stdout.str()


def test_a_failed_run_is_reported_once_not_also_logged(trt_pytester):
    save_shifted_gather(trt_pytester.path / "shifted.onnx")
    trt_pytester.pytester.makepyfile(
        test_rejects="""
        import pytest

        @pytest.mark.trt_model("shifted.onnx")
        @pytest.mark.trt_accuracy()
        def test_it():
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["pytest-trt: infer: onnxruntime failed: *indices element out of data bounds*"])
    assert "Captured stderr" not in result.stdout.str()
