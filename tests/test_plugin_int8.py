"""INT8 by calibration as users meet it: precision="int8" with calibration= on a float model,
quantized once into the engine cache, judged against the fp32 model on onnxruntime's CPU provider."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_builders import conv_classifier

from pytest_trt.prepare.quantize import quantize_model

CNN_INT8 = """
import pytest

@pytest.mark.trt_model("cnn.onnx", batch_size=8, seed=1, precision="int8", calibration={calibration!r}{extra})
@pytest.mark.trt_accuracy({accuracy})
def test_cnn_int8(trt_engine):
    assert trt_engine.quantized and trt_engine.precision == "int8"
"""

# INT8 moves each logit by up to ~0.015 here: the elementwise rule is loose, cosine is the gate.
LOOSE_WITH_COSINE = "rtol=0.1, atol=0.05, min_cosine=0.99"


def _write(trt_pytester, calibration, accuracy=LOOSE_WITH_COSINE, extra="") -> None:
    trt_pytester.pytester.makepyfile(test_int8=CNN_INT8.format(calibration=calibration, accuracy=accuracy, extra=extra))


def _records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["tests"]


def test_the_example_cnn_with_32_seeded_batches_passes_min_cosine_and_the_next_run_quantizes_nothing(trt_pytester):
    _write(trt_pytester, 32)
    cache, report = trt_pytester.path / "engine-cache", trt_pytester.path / "report.json"
    args = (f"--trt-engine-cache={cache}", f"--trt-report-json={report}")
    trt_pytester.run(*args).assert_outcomes(passed=1)
    (record,) = _records(report)
    quantization = record["engine"]["quantization"]
    assert quantization["how"] == "built" and quantization["cache"]["kind"] == "quantized-model"
    assert quantization["details"]["calibration"]["batches"] == 32
    assert record["accuracy"]["outputs"][0]["stats"]["cosine"] >= 0.99  # reported for INT8 models
    (artifact,) = (cache / "quantized-model").glob("*/*/artifact.bin")
    quantized = onnx.load_from_string(artifact.read_bytes())
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in quantized.graph.node}

    warm = trt_pytester.run(*args)
    warm.assert_outcomes(passed=1)
    (record,) = _records(report)
    assert record["engine"]["quantization"]["how"] == "loaded"
    # The quantized model, the engine and the fp32 reference all come from the cache.
    warm.stdout.fnmatch_lines(["*engine cache*: 3 hits, 0 misses (0 builds*"])


def test_an_int8_failure_reports_cosine_and_top1_agreement_and_the_reference(trt_pytester):
    _write(trt_pytester, 32, accuracy="rtol=0, atol=0")
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*accuracy: output 'logits': * elements outside rtol=0 atol=0*",
        "*cosine similarity 0.99* (reported, not gated: min_cosine= gates on it)",
        "*top-1 agreement * of 8 rows along axis -1 (reported, not gated: topk= gates on it)*",
        "*reference: onnxruntime running cnn.onnx in fp32 on CPU",
    ])


def test_a_calibration_npz_quantizes_with_the_method_asked_for(trt_pytester):
    images = np.random.default_rng(3).uniform(-1, 1, (16, 8, 3, 32, 32)).astype(np.float32)
    np.savez(trt_pytester.path / "calib.npz", image=images)
    _write(trt_pytester, "calib.npz", extra=', calibration_method="percentile"')
    report = trt_pytester.path / "report.json"
    trt_pytester.run(f"--trt-report-json={report}").assert_outcomes(passed=1)
    details = _records(report)[0]["engine"]["quantization"]["details"]
    assert details["method"] == "percentile"
    assert details["calibration"]["kind"] == "npz"
    assert details["calibration"]["file"] == str((trt_pytester.path / "calib.npz").resolve())


def test_keep_fp32_ops_leaves_those_nodes_unquantized(trt_pytester):
    _write(trt_pytester, 8, extra=', keep_fp32_ops=("Gemm",)')
    cache = trt_pytester.path / "engine-cache"
    trt_pytester.run(f"--trt-engine-cache={cache}").assert_outcomes(passed=1)
    (artifact,) = (cache / "quantized-model").glob("*/*/artifact.bin")
    graph = onnx.load_from_string(artifact.read_bytes()).graph
    made_by = {output: node.op_type for node in graph.node for output in node.output}
    (gemm,) = [node for node in graph.node if node.op_type == "Gemm"]
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert all(made_by.get(name) != "DequantizeLinear" for name in gemm.input[1:])  # float weights
    assert all(made_by.get(conv.input[1]) == "DequantizeLinear" for conv in convs)


def _corrupt(path: Path) -> str:
    path.write_bytes(b"PK\x03\x04 not really a zip")
    return "*calib.npz: not a readable .npz of calibration arrays*"


def _wrong_name(path: Path) -> str:
    np.savez(path, x=np.zeros((4, 8, 3, 32, 32), np.float32))
    return "*calib.npz: array 'x' is not an input of cnn.onnx (inputs: image)"


def _wrong_shape(path: Path) -> str:
    np.savez(path, image=np.zeros((4, 8, 3, 16, 16), np.float32))
    return "*calib.npz: each batch of array 'image' has shape [[]8, 3, 16, 16[]], the model wants [[]?, 3, 32, 32[]]"


def _integer_pixels(path: Path) -> str:
    np.savez(path, image=np.zeros((4, 8, 3, 32, 32), np.uint8))
    return "*calib.npz: array 'image' has dtype uint8, the model wants float32"


@pytest.mark.parametrize("make", [_corrupt, _wrong_name, _wrong_shape, _integer_pixels])
def test_a_corrupt_or_mismatched_calibration_file_is_an_error_naming_the_test_and_the_file(trt_pytester, make):
    pattern = make(trt_pytester.path / "calib.npz")
    _write(trt_pytester, "calib.npz")
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"test_int8.py::test_cnn_int8: {pattern}"])
    assert "Traceback" not in result.stdout.str()


def test_calibration_on_a_model_that_already_has_qdq_nodes_is_an_error_naming_the_test_and_the_file(trt_pytester):
    quantize_model(trt_pytester.path / "cnn.onnx", trt_pytester.path / "cnn.qdq.onnx", 2, shapes={"image": (1, 3, 32, 32)})
    trt_pytester.pytester.makepyfile(
        test_qdq="""
        import pytest

        @pytest.mark.trt_model("cnn.qdq.onnx", batch_size=1, precision="int8", calibration=8)
        @pytest.mark.trt_accuracy(rtol=1, atol=1)
        def test_it(trt_engine):
            pass

        @pytest.mark.trt_model("cnn.qdq.onnx", batch_size=1, precision="int8")
        @pytest.mark.trt_accuracy(rtol=1, atol=1)
        def test_as_it_is(trt_engine):
            assert trt_engine.quantized and trt_engine.provenance.quantization is None
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "test_qdq.py::test_it: *cnn.qdq.onnx: calibration= quantizes a float model, and this one already has Q/DQ "
        "nodes; drop calibration= to run it as it is"
    ])


def test_int8_on_a_float_model_without_calibration_points_to_calibration(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_float="""
        import pytest

        @pytest.mark.trt_model("cnn.onnx", batch_size=1, precision="int8")
        def test_it(trt_engine):
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["test_float.py::test_it: *cnn.onnx: precision='int8' needs a model with Q/DQ*give calibration=*"])


def test_two_tests_that_differ_only_in_calibration_get_engines_of_their_own(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_two="""
        import pytest

        @pytest.mark.trt_model("cnn.onnx", batch_size=8, precision="int8", calibration=2)
        @pytest.mark.trt_accuracy(rtol=1, atol=1)
        def test_two_batches(trt_engine):
            pass

        @pytest.mark.trt_model("cnn.onnx", batch_size=8, precision="int8", calibration=2, calibration_method="entropy")
        @pytest.mark.trt_accuracy(rtol=1, atol=1)
        def test_entropy(trt_engine):
            pass
        """
    )
    report = trt_pytester.path / "report.json"
    trt_pytester.run(f"--trt-report-json={report}").assert_outcomes(passed=2)
    engines = [record["engine"] for record in _records(report)]
    assert [engine["how"] for engine in engines] == ["built", "built"]  # not one reused for the other
    assert engines[0]["quantization"]["cache"]["key"] != engines[1]["quantization"]["cache"]["key"]


OPSET11_INT8 = """
import pytest

@pytest.mark.trt_model("cnn11.onnx", batch_size=4, seed=1, precision="int8", calibration=16)
@pytest.mark.trt_accuracy(rtol=0.2, atol=0.1, min_cosine=0.99)
def test_opset11_int8(trt_engine):
    assert trt_engine.quantized
"""


def test_an_opset_11_cnn_quantizes_runs_and_the_next_run_loads_every_step_from_the_cache(trt_pytester):
    conv_classifier(trt_pytester.path / "cnn11.onnx", opset=11)
    trt_pytester.pytester.makepyfile(test_opset=OPSET11_INT8)
    cache, report = trt_pytester.path / "engine-cache", trt_pytester.path / "report.json"
    args = (f"--trt-engine-cache={cache}", f"--trt-report-json={report}")
    trt_pytester.run(*args).assert_outcomes(passed=1)
    (artifact,) = (cache / "quantized-model").glob("*/*/artifact.bin")
    quantized = onnx.load_from_string(artifact.read_bytes())
    # Per-channel weights need DequantizeLinear's axis: the model was raised to opset 13 first.
    assert [o.version for o in quantized.opset_import if o.domain in ("", "ai.onnx")] == [13]
    onnx.checker.check_model(quantized)

    warm = trt_pytester.run(*args)
    warm.assert_outcomes(passed=1)
    assert "corrupt" not in warm.stdout.str().replace("0 corrupt", "") + warm.stderr.str()
    warm.stdout.fnmatch_lines(["*engine cache*: 3 hits, 0 misses (0 builds*0 corrupt*"])
    assert _records(report)[0]["engine"]["quantization"]["how"] == "loaded"


BROKEN_LOAD = """
from pytest_trt.backends.base import BackendError
from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend

load = OnnxRuntimeBackend.load


def failing(self, artifact, model, build):
    if ".int8" in model.path.name:
        raise BackendError(f"{model.path}: onnxruntime could not create a session: INVALID_GRAPH")
    return load(self, artifact, model, build)


def pytest_sessionstart(session):
    OnnxRuntimeBackend.load = failing


def pytest_sessionfinish(session):
    OnnxRuntimeBackend.load = load
"""


def test_an_engine_that_fails_to_load_after_its_build_is_a_build_error_naming_the_model_never_cache_damage(trt_pytester):
    conv_classifier(trt_pytester.path / "cnn11.onnx", opset=11)
    trt_pytester.pytester.makepyfile(test_opset=OPSET11_INT8)
    trt_pytester.pytester.makeconftest(BROKEN_LOAD)
    cache = trt_pytester.path / "engine-cache"
    for _ in range(2):
        result = trt_pytester.run(f"--trt-engine-cache={cache}")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([
            f"test_opset.py::test_opset11_int8: {trt_pytester.path / 'cnn11.onnx'}: building the onnxruntime "
            "engine from its int8 form cnn11.int8.onnx failed: onnxruntime could not create a session: "
            "INVALID_GRAPH",
        ])
        assert "corrupt cache entry" not in result.stdout.str() + result.stderr.str()
    assert not (cache / "onnxruntime").exists() or not list((cache / "onnxruntime").glob("*/*/artifact.bin"))
