"""Accuracy diagnosis as users meet it: an fp16 failure names where its error starts, and the
keep_fp32_nodes it prints, pasted into the mark, passes."""

from __future__ import annotations

import json
import re

from onnx_builders import growing_chain, overflowing_model, written_out_layer_norm_model

LAYER_NORM = """
import pytest

@pytest.mark.trt_model("ln.onnx", precision="fp16", shapes={{"x": (4, 64)}}, input_ranges={{"x": (-600.0, 600.0)}}{extra})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-2)
def test_layer_norm_fp16(trt_engine):
    pass
"""
FIX = re.compile(r"fix that passed: trt_model\(\.\.\., keep_fp32_nodes=(\[.*\])\)")


def _report(trt_pytester, *args: str):
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run(f"--trt-report-json={path}", *args)
    return result, json.loads(path.read_text())["tests"]


def test_an_fp16_overflow_names_the_pow_and_the_printed_fix_passes(trt_pytester):
    written_out_layer_norm_model(trt_pytester.path / "ln.onnx")
    trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=""))
    result, (test,) = _report(trt_pytester)
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([
        r"\s*diagnosis \(fp16 graph emulated on onnxruntime's CPU provider against the fp32 model, [\d.]+ s\):",
        r"\s*error starts at 'ln_pow' \(Pow\), output 'squared': inf/nan where the reference is finite .*65504.*",
        r"\s*fix that passed: trt_model\(\.\.\., keep_fp32_nodes=\[\"ln_pow\", .*\]\)",
    ], consecutive=True)
    diagnosis = test["accuracy"]["diagnosis"]
    assert diagnosis["state"] == "fixed" and diagnosis["origin"]["node"] == "ln_pow" and diagnosis["origin"]["error"]["overflow"]

    # Pasted into the mark, the printed argument passes.
    printed = json.loads(FIX.search(result.stdout.str()).group(1))
    assert printed == diagnosis["keep_fp32_nodes"]
    trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=f", keep_fp32_nodes={printed!r}"))
    trt_pytester.run().assert_outcomes(passed=1)


def test_an_overflowing_matmul_is_kept_with_what_reads_it(trt_pytester):
    overflowing_model(trt_pytester.path / "overflow.onnx")
    trt_pytester.pytester.makepyfile(test_overflow="""
import pytest

@pytest.mark.trt_model("overflow.onnx", precision="fp16", shapes={"x": (4, 8)}, input_ranges={"x": (0.5, 1.0)})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
def test_overflow(trt_engine):
    pass
""")
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*error starts at 'project' (MatMul), output 'big'*",
        '*fix that passed: trt_model(..., keep_fp32_nodes=[[]"project", "reduce"])',
    ])


CHAIN = """
import pytest

@pytest.mark.trt_model("chain.onnx", precision="fp16", input_ranges={"x": (0.5, 1.0)})
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-2)
def test_chain(trt_engine):
    pass
"""


def test_a_model_no_pointed_fix_repairs_says_so_within_the_cap(trt_pytester):
    growing_chain(trt_pytester.path / "chain.onnx")
    trt_pytester.pytester.makepyfile(test_chain=CHAIN)
    result, (test,) = _report(trt_pytester, "--trt-diagnose-time=30")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*error starts at 'grow_4' (Mul), output 'g5': inf/nan where the reference is finite*",
        "*no set of nodes kept in fp32 made it pass (more than 12 nodes would be kept; tried *",
    ])
    diagnosis = test["accuracy"]["diagnosis"]
    assert diagnosis["state"] == "no-fix" and diagnosis["keep_fp32_nodes"] == [] and diagnosis["seconds"] < 30


def test_a_spent_cap_stops_the_diagnosis_and_says_so(trt_pytester):
    written_out_layer_norm_model(trt_pytester.path / "ln.onnx")
    trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=""))
    result, (test,) = _report(trt_pytester, "--trt-diagnose-time=0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no node introduces error beyond fp16 rounding: the 0 s cap ran out*"])
    assert test["accuracy"]["diagnosis"]["state"] == "not-located"


def test_diagnosis_off_leaves_the_failure_as_it_was(trt_pytester):
    written_out_layer_norm_model(trt_pytester.path / "ln.onnx")
    trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=""))
    result, (test,) = _report(trt_pytester, "--trt-diagnose=off")
    result.assert_outcomes(failed=1)
    assert "error starts at" not in result.stdout.str() and test["accuracy"]["diagnosis"] is None


def test_save_failures_keeps_the_diagnosis_beside_the_arrays(trt_pytester):
    written_out_layer_norm_model(trt_pytester.path / "ln.onnx")
    trt_pytester.pytester.makepyfile(test_ln=LAYER_NORM.format(extra=""))
    saved = trt_pytester.path / "failures"
    result = trt_pytester.run(f"--trt-save-failures={saved}")
    result.assert_outcomes(failed=1)
    (diagnosis,) = saved.glob("*.diagnosis.json")
    assert len(list(saved.glob("*.npz"))) == 1
    assert json.loads(diagnosis.read_text())["origin"]["node"] == "ln_pow"


def test_an_int8_failure_names_the_node_to_leave_unquantized_and_the_fix_passes(trt_pytester):
    from onnx_builders import activation_outlier_model

    activation_outlier_model(trt_pytester.path / "outlier.onnx")
    test = """
import pytest

@pytest.mark.trt_model("outlier.onnx", precision="int8", calibration=8, input_ranges={{"x": (-1.0, 1.0)}}{extra})
@pytest.mark.trt_accuracy(rtol=0.1, atol=0.1)
def test_outlier_int8(trt_engine):
    pass
"""
    trt_pytester.pytester.makepyfile(test_outlier=test.format(extra=""))
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*diagnosis (int8 Q/DQ graph on onnxruntime's CPU provider against the fp32 model, * s):",
        "*error starts at 'mix' (MatMul), output 'y': relative error *",
        '*fix that passed: trt_model(..., keep_fp32_nodes=[[]"mix", "shift"])',
    ])
    trt_pytester.pytester.makepyfile(test_outlier=test.format(extra=', keep_fp32_nodes=["mix", "shift"]'))
    trt_pytester.run().assert_outcomes(passed=1)
