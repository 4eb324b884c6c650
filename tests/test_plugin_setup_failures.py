"""Tests whose engine cannot be made are rows of every report, with the step that failed, and the
plugin's totals agree with pytest's own."""

from __future__ import annotations

import json
import re

TESTS = """
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=2)
@pytest.mark.trt_accuracy()
def test_passes(trt_engine):
    pass

@pytest.mark.trt_model("mlp.onnx", batch_size=2, precision="fp16")
@pytest.mark.trt_accuracy(rtol=0, atol=0)
def test_fails(trt_engine):
    pass

@pytest.mark.trt_model("broken.onnx")
@pytest.mark.trt_accuracy()
def test_model_step(trt_engine):
    pass

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (2, 7)})
@pytest.mark.trt_accuracy()
def test_inputs_step(trt_engine):
    pass

@pytest.mark.trt_model("mlp.onnx", batch_size=2, precision="fp16", keep_fp32_nodes=("nope",))
@pytest.mark.trt_accuracy()
def test_conversion_step(trt_engine):
    pass

@pytest.mark.trt_model("mlp.onnx", precision="int8", calibration=2, batch_size=2, keep_fp32_nodes=("nope",))
@pytest.mark.trt_accuracy(min_cosine=0.9)
def test_quantization_step(trt_engine):
    pass

@pytest.mark.trt_model("mlp.onnx", batch_size=2, providers=("NopeExecutionProvider",))
@pytest.mark.trt_accuracy()
def test_build_step(trt_engine):
    pass
"""

STEPS = {
    "test_model_step": "model",
    "test_inputs_step": "inputs",
    "test_conversion_step": "conversion",
    "test_quantization_step": "quantization",
    "test_build_step": "build",
}


def test_setup_failures_are_rows_with_their_step_and_totals_agree_with_pytest(trt_pytester):
    (trt_pytester.path / "broken.onnx").write_text("not a model")
    trt_pytester.pytester.makepyfile(test_setup=TESTS)
    result = trt_pytester.run("--trt-backend=onnxruntime", "--trt-report-json=report.json", "--trt-report-md=report.md")
    outcomes = result.parseoutcomes()
    assert outcomes == {"passed": 1, "failed": 1, "errors": 5}
    totals = [line for line in result.outlines if line.startswith("pytest-trt: onnxruntime: ")]
    assert totals == ["pytest-trt: onnxruntime: 7 gated tests, 1 failed, 5 errors, 0 regressed"]
    counted = dict((noun, int(n)) for n, noun in re.findall(r"(\d+) (failed|errors?)", totals[0]))
    assert counted == {"failed": outcomes["failed"], "errors": outcomes["errors"]}
    result.stdout.fnmatch_lines([f"  {name}*ERROR ({step})" for name, step in sorted(STEPS.items())], consecutive=False)

    report = json.loads((trt_pytester.path / "report.json").read_text())
    by_name = {test["nodeid"].split("::")[-1]: test for test in report["tests"]}
    assert set(by_name) == {"test_passes", "test_fails", *STEPS}
    for name, step in STEPS.items():
        assert (by_name[name]["status"], by_name[name]["step"], by_name[name]["at_setup"]) == ("error", step, True)
    assert by_name["test_fails"]["status"] == "failed" and by_name["test_fails"]["step"] is None

    markdown = (trt_pytester.path / "report.md").read_text()
    assert "## pytest-trt: 7 tests, 1 failed, 5 errors," in markdown
    for name, step in STEPS.items():
        assert f"| test_setup.py::{name} | onnxruntime | error ({step}) |" in markdown
