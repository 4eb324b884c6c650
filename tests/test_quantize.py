"""INT8 by calibration: onnxruntime's static quantizer, calibration data, the cache key."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnx_builders import conv_classifier

from pytest_trt.judge.accuracy import compare_outputs
from pytest_trt.model import load_model
from pytest_trt.prepare import precision
from pytest_trt.prepare.inputs import make_inputs
from pytest_trt.prepare.precision import PrecisionError
from pytest_trt.prepare.quantize import CalibrationError, calibration_feeds, quantize_key, quantize_model
from pytest_trt.specs import make_accuracy_spec

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
CNN_SHAPES = {"image": (8, 3, 32, 32)}


@pytest.fixture
def cnn(tmp_path: Path) -> Path:
    return Path(shutil.copyfile(MODELS / "cnn.onnx", tmp_path / "cnn.onnx"))


def _run(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _images(batches: int, dtype=np.float32, shape=(8, 3, 32, 32)) -> np.ndarray:
    return np.random.default_rng(7).uniform(-1, 1, (batches, *shape)).astype(dtype)


def test_the_example_cnn_with_32_seeded_batches_keeps_cosine_above_099(cnn, tmp_path):
    out = quantize_model(cnn, tmp_path / "cnn.int8.onnx", 32, shapes=CNN_SHAPES, seed=1)
    assert out == tmp_path / "cnn.int8.onnx"
    proto = onnx.load(str(out))
    assert precision.has_qdq(proto)
    # What TensorRT's explicit quantization takes: symmetric int8 (zero point 0), float biases.
    initializers = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero_point = initializers[node.input[2]]
            assert zero_point.dtype == np.int8 and not zero_point.any()
    assert not any(array.dtype == np.int32 for array in initializers.values())
    conv_weight_scale = next(
        initializers[n.input[1]] for n in proto.graph.node
        if n.op_type == "DequantizeLinear" and initializers.get(n.input[0], np.zeros(())).ndim == 4
    )
    assert conv_weight_scale.ndim == 1 and conv_weight_scale.size > 1  # per channel

    feed = make_inputs(load_model(cnn), CNN_SHAPES, seed=1)  # the test's own feed
    fp32, int8 = _run(cnn, feed)["logits"], _run(out, feed)["logits"]
    assert _cosine(fp32, int8) >= 0.99
    assert not np.array_equal(fp32, int8)  # it really runs quantized
    gated = compare_outputs({"logits": int8}, {"logits": fp32}, make_accuracy_spec(min_cosine=0.99, rtol=1, atol=1))
    assert gated.passed, gated.failure_message()


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_the_other_calibration_methods_quantize_too(cnn, tmp_path, method):
    out = quantize_model(cnn, tmp_path / f"{method}.onnx", 8, shapes=CNN_SHAPES, method=method)
    feed = make_inputs(load_model(cnn), CNN_SHAPES, seed=1)
    assert _cosine(_run(cnn, feed)["logits"], _run(out, feed)["logits"]) >= 0.99


def test_an_npz_of_batches_calibrates_and_a_quantized_model_is_used_as_it_is(cnn, tmp_path):
    calib = _npz(tmp_path / "calib.npz", image=_images(4))
    feeds = calibration_feeds(calib, cnn)
    assert len(feeds) == 4 and feeds[2]["image"].shape == (8, 3, 32, 32)
    out = quantize_model(cnn, tmp_path / "q.onnx", calib)
    assert precision.has_qdq(onnx.load(str(out)))
    before = sorted(tmp_path.iterdir())
    assert quantize_model(out, tmp_path / "again.onnx", calib) == out
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_seeded_batches_are_not_the_tests_own_feed(cnn):
    model = load_model(cnn)
    feeds = calibration_feeds(4, cnn, shapes=CNN_SHAPES, seed=1)
    test_feed = make_inputs(model, CNN_SHAPES, seed=1)
    assert all(not np.array_equal(f["image"], test_feed["image"]) for f in feeds)
    assert len({f["image"].tobytes() for f in feeds}) == 4
    again = calibration_feeds(4, cnn, shapes=CNN_SHAPES, seed=1)
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(feeds, again, strict=True))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": _images(2)}, "array 'images' is not an input of cnn.onnx (inputs: image)"),
        ({"image": _images(2), "mask": _images(2)}, "array 'mask' is not an input of cnn.onnx"),
        ({}, "no array for input 'image' of cnn.onnx"),
        ({"image": _images(2).astype(np.int32)}, "array 'image' has dtype int32, the model wants float32"),
        ({"image": _images(2, shape=(8, 4, 32, 32))}, "each batch of array 'image' has shape [8, 4, 32, 32], the model wants [?, 3, 32, 32]"),
        ({"image": _images(2)[0]}, "calibration arrays have a leading batch-count axis before the input's shape [?, 3, 32, 32]"),
        ({"image": _images(0)}, "the arrays hold no calibration batch"),
    ],
)
def test_a_mismatched_calibration_file_is_an_error_naming_the_file_and_the_input(cnn, tmp_path, arrays, message):
    calib = _npz(tmp_path / "calib.npz", **arrays)
    with pytest.raises(CalibrationError) as raised:
        quantize_model(cnn, tmp_path / "q.onnx", calib)
    assert str(raised.value).startswith(f"{calib}: ")
    assert message in str(raised.value)
    assert isinstance(raised.value, PrecisionError)
    assert not (tmp_path / "q.onnx").exists()


def test_float64_calibration_data_is_cast_like_inputs(cnn, tmp_path):
    calib = _npz(tmp_path / "calib.npz", image=_images(2, dtype=np.float64))
    assert calibration_feeds(calib, cnn)[0]["image"].dtype == np.float32


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04 this is not a zip archive", "not a readable .npz of calibration arrays"),
        (b"garbage", "not a readable .npz of calibration arrays"),
    ],
)
def test_a_corrupt_calibration_file_is_a_clear_error(cnn, tmp_path, content, message):
    calib = tmp_path / "calib.npz"
    calib.write_bytes(content)
    with pytest.raises(CalibrationError, match=f"^{calib}: {message}"):
        quantize_model(cnn, tmp_path / "q.onnx", calib)


def test_a_single_array_file_or_a_missing_file_is_a_clear_error(cnn, tmp_path):
    single = tmp_path / "calib.npy"
    np.save(single, _images(2))
    with pytest.raises(CalibrationError, match="it holds a single array, not arrays keyed by input name"):
        quantize_model(cnn, tmp_path / "q.onnx", single)
    with pytest.raises(CalibrationError, match=r"calibration file '.*nowhere\.npz' not found"):
        quantize_model(cnn, tmp_path / "q.onnx", tmp_path / "nowhere.npz")


def test_bad_calibration_arguments_are_errors(cnn, tmp_path):
    with pytest.raises(CalibrationError, match="calibration=0: give 1 or more batches"):
        quantize_model(cnn, tmp_path / "q.onnx", 0, shapes=CNN_SHAPES)
    with pytest.raises(CalibrationError, match="input 'image' has dynamic dims"):
        quantize_model(cnn, tmp_path / "q.onnx", 4)  # no shapes for the dynamic batch
    with pytest.raises(CalibrationError, match="calibration feed 1: no array for input 'image'"):
        quantize_model(cnn, tmp_path / "q.onnx", [{"image": _images(1)[0]}, {}])
    with pytest.raises(PrecisionError, match="calibration method must be one of minmax, entropy, percentile"):
        quantize_model(cnn, tmp_path / "q.onnx", 4, shapes=CNN_SHAPES, method="kl")
    with pytest.raises(PrecisionError, match="keep_fp32_nodes names \\['head'\\] that are not nodes"):
        quantize_model(cnn, tmp_path / "q.onnx", 4, shapes=CNN_SHAPES, keep_fp32_nodes=["head"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.onnx"]


def test_keep_fp32_ops_leaves_those_nodes_unquantized(cnn, tmp_path):
    out = quantize_model(cnn, tmp_path / "q.onnx", 4, shapes=CNN_SHAPES, keep_fp32_ops=["Gemm"])
    proto = onnx.load(str(out))
    producers = {output: node.op_type for node in proto.graph.node for output in node.output}
    initializers = {init.name: init for init in proto.graph.initializer}
    # The kept Gemm computes in float on float weights (its input is the Flatten's, which is
    # quantized: as with fp16, a kept node reads what the node before it stored).
    gemm = next(node for node in proto.graph.node if node.op_type == "Gemm")
    assert all(initializers[name].data_type == onnx.TensorProto.FLOAT for name in gemm.input[1:])
    conv = next(node for node in proto.graph.node if node.op_type == "Conv")
    assert producers[conv.input[1]] == "DequantizeLinear"


def test_a_failing_quantizer_leaves_no_file(cnn, tmp_path, monkeypatch):
    from onnxruntime import quantization

    def broken(*args, **kwargs):
        Path(args[1]).write_bytes(b"half a model")
        raise RuntimeError("calibration session crashed")

    monkeypatch.setattr(quantization, "quantize_static", broken)
    with pytest.raises(PrecisionError, match="INT8 calibration failed: RuntimeError: calibration session crashed"):
        quantize_model(cnn, tmp_path / "out" / "q.onnx", 2, shapes=CNN_SHAPES)
    assert list((tmp_path / "out").iterdir()) == []


def test_quantize_key_follows_the_calibration_data_and_the_settings(cnn, tmp_path):
    calib = _npz(tmp_path / "calib.npz", image=_images(2))
    base = quantize_key(cnn, calib)
    assert quantize_key(cnn, calib) == base
    _npz(calib, image=_images(2) + np.float32(1e-3))
    changed = quantize_key(cnn, calib)
    assert changed["calibration"] != base["calibration"]
    assert {k: v for k, v in changed.items() if k != "calibration"} == {k: v for k, v in base.items() if k != "calibration"}

    seeded = quantize_key(cnn, 32, shapes=CNN_SHAPES)
    assert quantize_key(cnn, 32, shapes=CNN_SHAPES) == seeded
    assert quantize_key(cnn, 33, shapes=CNN_SHAPES)["calibration"] != seeded["calibration"]
    assert quantize_key(cnn, 32, shapes=CNN_SHAPES, seed=1)["calibration"] != seeded["calibration"]
    assert quantize_key(cnn, 32, shapes={"image": (4, 3, 32, 32)})["calibration"] != seeded["calibration"]
    assert quantize_key(cnn, 32, shapes=CNN_SHAPES, method="entropy")["quantizer"] != seeded["quantizer"]
    assert quantize_key(cnn, 32, shapes=CNN_SHAPES, per_channel=False)["quantizer"] != seeded["quantizer"]
    assert quantize_key(cnn, 32, shapes=CNN_SHAPES, keep_fp32_ops=["Gemm"])["quantizer"] != seeded["quantizer"]

    feeds = [{"image": _images(1)[0]}]
    listed = quantize_key(cnn, feeds)
    assert quantize_key(cnn, [{"image": _images(1)[0] * 2}])["calibration"] != listed["calibration"]

    other = tmp_path / "other.onnx"
    proto = onnx.load(str(cnn))
    proto.graph.initializer[0].raw_data = bytes(len(proto.graph.initializer[0].raw_data))
    onnx.save(proto, str(other))
    assert quantize_key(other, calib)["model_hash"] != changed["model_hash"]


@pytest.mark.parametrize(("opset", "per_channel", "raised_to"), [(10, False, 11), (11, False, 11), (11, True, 13), (12, True, 13)])
def test_a_model_below_the_opset_its_qdq_nodes_need_is_raised_first_and_its_result_loads(
    tmp_path, opset, per_channel, raised_to
):
    source = conv_classifier(tmp_path / f"cnn{opset}.onnx", opset)
    out = quantize_model(source, tmp_path / "int8.onnx", 4, shapes={"image": (2, 3, 32, 32)}, per_channel=per_channel)
    quantized = onnx.load(str(out))
    assert [o.version for o in quantized.opset_import if o.domain in ("", "ai.onnx")] == [raised_to]
    feed = make_inputs(load_model(source), {"image": (2, 3, 32, 32)}, seed=0)
    assert _cosine(_run(out, feed)["logits"], _run(source, feed)["logits"]) > 0.99


def test_a_model_the_version_converter_cannot_raise_is_an_error_naming_the_model_and_the_step(tmp_path, monkeypatch):
    from onnx import version_converter

    def refuse(model, version):
        raise RuntimeError("no adapter for op Foo")

    monkeypatch.setattr(version_converter, "convert_version", refuse)
    source = conv_classifier(tmp_path / "cnn11.onnx", 11)
    with pytest.raises(PrecisionError, match=r"cnn11\.onnx: INT8 calibration: raising the model from opset 11 to 13 "
                       r"\(the Q/DQ nodes need it\) failed: RuntimeError: no adapter for op Foo"):
        quantize_model(source, tmp_path / "int8.onnx", 2, shapes={"image": (1, 3, 32, 32)})
    assert not (tmp_path / "int8.onnx").exists()
