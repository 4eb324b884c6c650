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
    from pytest_trt.cache import parse_size
    from pytest_trt.model import DEFAULT_MAX_INPUT_BYTES
    from pytest_trt.options import _OPTIONS

    (default,) = [opt[5] for opt in _OPTIONS if opt[0] == "--trt-max-input-bytes"]
    assert parse_size(default) == DEFAULT_MAX_INPUT_BYTES


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
    result.stderr.fnmatch_lines([
        f"ERROR: pytest-trt: --trt-max-input-bytes (ini trt_max_input_bytes): cannot read '{value}' as a positive "
        "size; give bytes or a number with K, M, G or T (powers of 1000) or KiB, MiB, GiB or TiB (powers of 1024), "
        "e.g. 2GB or 500MiB",
    ])
