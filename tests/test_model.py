"""model.py: loading and checking, content hash with external data, the index ranges a graph bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import onnx_model

from pytest_trt.model import ModelError, load_model
from pytest_trt.prepare.inputs import DEFAULT_INT_RANGE, GeneratedRange, RangeSource, generated_ranges, make_inputs

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"


def _external_data_model(tmp_path):
    """A MatMul whose weight lives in weights.bin next to the model."""
    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [weight],
    )
    model = onnx_model(graph)
    path = tmp_path / "external.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    return path


def test_load_reads_io_specs_opset_and_gather_bounds():
    encoder = load_model(MODELS / "encoder.onnx")
    (tokens,) = encoder.inputs
    assert (tokens.name, tokens.dtype, tokens.shape) == ("tokens", np.dtype(np.int64), (None, 16))
    assert [(o.name, o.shape) for o in encoder.outputs] == [("hidden", (None, 16, 64))]
    assert encoder.opset == 17
    assert dict(encoder.index_ranges) == {"tokens": (0, 1000)}
    assert load_model(MODELS / "mlp.onnx").index_ranges == ()


def test_content_hash_is_stable_and_covers_external_data(tmp_path):
    path = _external_data_model(tmp_path)
    first = load_model(path).content_hash
    assert load_model(path).content_hash == first
    weights = tmp_path / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert load_model(path).content_hash != first


def test_missing_external_data_names_the_file(tmp_path):
    path = _external_data_model(tmp_path)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ModelError, match=r"external\.onnx"):
        load_model(path)


def test_missing_garbage_and_invalid_models_name_the_file(tmp_path):
    with pytest.raises(ModelError, match=r"nothere\.onnx.*not found"):
        load_model(tmp_path / "nothere.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match=r"garbage\.onnx: not a readable ONNX model"):
        load_model(garbage)
    invalid = tmp_path / "invalid.onnx"
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "invalid",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])],  # nothing produces z
    )
    onnx.save(onnx_model(graph), str(invalid))
    with pytest.raises(ModelError, match=r"invalid\.onnx: invalid ONNX model"):
        load_model(invalid)


def test_format_bytes_reads_like_a_size():
    from pytest_trt.store.memory import format_bytes

    assert [format_bytes(n) for n in (0, 1023, 1024, 48 * 10**9, 5 * 2**40)] == [
        "0 B", "1023 B", "1.0 KiB", "44.7 GiB", "5.0 TiB",
    ]


def _gather_model(tmp_path, nodes, initializers, inputs, out_shape=(2, 8, "cols")):
    """A model whose output is ``out``, from ``nodes`` over ``inputs`` (name -> (elem_type, shape))."""
    graph = helper.make_graph(
        nodes,
        "gather",
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, list(out_shape))],
        initializers,
    )
    path = tmp_path / "gather.onnx"
    onnx.save(onnx_model(graph), str(path))
    return load_model(path)


_IDS = {"ids": (TensorProto.INT64, [2, 8])}


def _int8_table(rows=500, cols=16):
    return numpy_helper.from_array(np.zeros((rows, cols), np.int8), "table_q")


def _scalar(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.array(value, dtype), name)


def test_a_gather_on_a_dequantized_table_bounds_its_indices(tmp_path):
    model = _gather_model(
        tmp_path,
        [
            helper.make_node("DequantizeLinear", ["table_q", "scale", "zero"], ["table"]),
            helper.make_node("Gather", ["table", "ids"], ["out"]),
        ],
        [_int8_table(), _scalar("scale", 0.1), _scalar("zero", 0, np.int8)],
        _IDS,
    )
    assert dict(model.index_ranges) == {"ids": (0, 500)}
    assert model.default_ranged_inputs == ()
    ids = make_inputs(model, {"ids": (2, 8)}, seed=0)["ids"]
    assert ids.max() < 500 and ids.max() >= DEFAULT_INT_RANGE[1]


def test_a_gather_on_a_cast_sub_mul_of_a_table_bounds_its_indices(tmp_path):
    # The dequantization MiniLM-int8 spells out: Cast, minus a per-column zero point, times a scale.
    model = _gather_model(
        tmp_path,
        [
            helper.make_node("Cast", ["table_q"], ["wide"], to=TensorProto.FLOAT),
            helper.make_node("Sub", ["wide", "zero"], ["centred"]),
            helper.make_node("Mul", ["scale", "centred"], ["table"]),
            helper.make_node("Identity", ["table"], ["same"]),
            helper.make_node("Gather", ["same", "ids"], ["out"]),
        ],
        [_int8_table(), numpy_helper.from_array(np.zeros((1, 16), np.float32), "zero"), _scalar("scale", 0.1)],
        _IDS,
    )
    assert dict(model.index_ranges) == {"ids": (0, 500)}


def test_indices_passing_through_cast_unsqueeze_reshape_are_bounded(tmp_path):
    model = _gather_model(
        tmp_path,
        [
            helper.make_node("Cast", ["ids"], ["ids64"], to=TensorProto.INT64),
            helper.make_node("Unsqueeze", ["ids64", "axes"], ["ids3"]),
            helper.make_node("Reshape", ["ids3", "flat"], ["ids1"]),
            helper.make_node("Identity", ["ids1"], ["ids_same"]),
            helper.make_node("Gather", ["table", "ids_same"], ["out"], axis=1),
        ],
        [
            numpy_helper.from_array(np.zeros((4, 300), np.float32), "table"),
            numpy_helper.from_array(np.array([0], np.int64), "axes"),
            numpy_helper.from_array(np.array([-1], np.int64), "flat"),
        ],
        {"ids": (TensorProto.INT32, [2, 8])},
        out_shape=(4, 16),
    )
    assert dict(model.index_ranges) == {"ids": (0, 300)}  # axis=1: the table's second dim


def test_one_input_indexing_two_tables_takes_the_smaller(tmp_path):
    model = _gather_model(
        tmp_path,
        [
            helper.make_node("Gather", ["big", "ids"], ["a"]),
            helper.make_node("Gather", ["small", "ids"], ["b"]),
            helper.make_node("Add", ["a", "b"], ["out"]),
        ],
        [numpy_helper.from_array(np.zeros((900, 4), np.float32), "big"), numpy_helper.from_array(np.zeros((40, 4), np.float32), "small")],
        _IDS,
    )
    assert dict(model.index_ranges) == {"ids": (0, 40)}


@pytest.mark.parametrize(
    "nodes",
    [
        # The indices are computed from the input, not passed through: no bound is known.
        [helper.make_node("Add", ["ids", "ten"], ["shifted"]), helper.make_node("Gather", ["table", "shifted"], ["out"])],
        # A narrowing Cast can wrap row numbers.
        [helper.make_node("Cast", ["ids"], ["narrow"], to=TensorProto.INT8), helper.make_node("Cast", ["narrow"], ["back"], to=TensorProto.INT64),
         helper.make_node("Gather", ["table", "back"], ["out"])],
        # Scaled by something whose shape is not known, the table may broadcast to more rows.
        [helper.make_node("Mul", ["table", "x"], ["scaled"]), helper.make_node("Gather", ["scaled", "ids"], ["out"])],
    ],
    ids=["computed-indices", "narrowing-cast", "unknown-broadcast"],
)
def test_unknown_bounds_fall_back_to_the_default_range_and_say_so(tmp_path, nodes):
    model = _gather_model(
        tmp_path,
        nodes,
        [numpy_helper.from_array(np.zeros((500, 4), np.float32), "table"), _scalar("ten", 10, np.int64)],
        {**_IDS, "x": (TensorProto.FLOAT, [500, 4])},
    )
    assert model.index_ranges == ()
    assert model.default_ranged_inputs == ("ids",)
    ranges = generated_ranges(model)
    assert ranges["ids"] == GeneratedRange(0, 100, RangeSource.DEFAULT)
    assert ranges["x"] == GeneratedRange(-1.0, 1.0, RangeSource.DEFAULT)
