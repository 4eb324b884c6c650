"""model.py: loading and checking, content hash with external data, shapes, seeded inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import onnx_model

from pytest_trt.model import (
    DEFAULT_INT_RANGE,
    InputRange,
    ModelError,
    RangeSource,
    generated_ranges,
    load_inputs_npz,
    load_model,
    make_inputs,
    resolve_shapes,
)

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"


def _identity_model(path, elem_type: int, shape: list, name: str = "v") -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], ["out"])],
        "identity",
        [helper.make_tensor_value_info(name, elem_type, shape)],
        [helper.make_tensor_value_info("out", elem_type, shape)],
    )
    model = onnx_model(graph)
    onnx.save(model, str(path))


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


def test_resolve_shapes_uses_shapes_then_batch_size():
    mlp = load_model(MODELS / "mlp.onnx")
    assert resolve_shapes(mlp, {"x": (3, 256)}) == {"x": (3, 256)}
    assert resolve_shapes(mlp, batch_size=5) == {"x": (5, 256)}
    assert resolve_shapes(mlp, {"x": (2, 256)}, batch_size=5) == {"x": (2, 256)}


@pytest.mark.parametrize(
    ("shapes", "batch_size", "message"),
    [
        (None, None, r"input 'x' has dynamic dims \[\?, 256\]; give shapes=\{'x': \(\.\.\.\)\} or batch_size"),
        ({"y": (1, 256)}, None, r"shapes names input 'y', which the model does not have \(inputs: x\)"),
        ({"x": (1, 255)}, None, r"shapes\['x'\]=\(1, 255\) does not fit the model's shape \[\?, 256\]"),
        ({"x": (1, 256, 1)}, None, r"shapes\['x'\]=\(1, 256, 1\) does not fit"),
    ],
)
def test_resolve_shapes_errors_name_file_and_input(shapes, batch_size, message):
    mlp = load_model(MODELS / "mlp.onnx")
    with pytest.raises(ModelError, match=r"mlp\.onnx: " + message):
        resolve_shapes(mlp, shapes, batch_size)


def test_generated_inputs_are_seeded_and_in_range():
    cnn = load_model(MODELS / "cnn.onnx")
    shapes = {"image": (2, 3, 32, 32)}
    first = make_inputs(cnn, shapes, seed=0)["image"]
    assert first.dtype == np.float32 and first.shape == (2, 3, 32, 32)
    assert np.array_equal(first, make_inputs(cnn, shapes, seed=0)["image"])
    assert not np.array_equal(first, make_inputs(cnn, shapes, seed=1)["image"])
    assert -1.0 <= first.min() < -0.9 and 0.9 < first.max() <= 1.0


def test_int_inputs_use_the_gather_table_range():
    encoder = load_model(MODELS / "encoder.onnx")
    tokens = make_inputs(encoder, {"tokens": (64, 16)}, seed=0)["tokens"]
    assert tokens.dtype == np.int64
    assert tokens.min() >= 0 and tokens.max() < 1000
    assert tokens.max() >= DEFAULT_INT_RANGE[1]  # not the generic [0, 100): the table has 1000 rows


def test_unbounded_int_inputs_are_not_only_zero_and_one(tmp_path):
    path = tmp_path / "ints.onnx"
    _identity_model(path, TensorProto.INT32, [1000])
    values = make_inputs(load_model(path), {"v": (1000,)}, seed=0)["v"]
    assert values.dtype == np.int32
    assert values.min() >= 0 and values.max() < 100
    assert len(np.unique(values)) > 50


def test_bool_inputs_take_both_values(tmp_path):
    path = tmp_path / "bools.onnx"
    _identity_model(path, TensorProto.BOOL, [64])
    values = make_inputs(load_model(path), {"v": (64,)}, seed=0)["v"]
    assert values.dtype == np.bool_ and values.any() and not values.all()


def test_input_ranges_override_per_input():
    encoder = load_model(MODELS / "encoder.onnx")
    tokens = make_inputs(encoder, {"tokens": (8, 16)}, seed=0, ranges={"tokens": (5, 7)})["tokens"]
    assert set(np.unique(tokens)) == {5, 6}
    mlp = load_model(MODELS / "mlp.onnx")
    x = make_inputs(mlp, {"x": (4, 256)}, seed=0, ranges={"x": (10.0, 11.0)})["x"]
    assert x.min() >= 10.0 and x.max() <= 11.0
    with pytest.raises(ModelError, match=r"mlp\.onnx: input_ranges names input 'tokens'"):
        make_inputs(mlp, {"x": (4, 256)}, seed=0, ranges={"tokens": (0, 1)})


def test_npz_inputs_are_checked_against_the_model(tmp_path):
    mlp = load_model(MODELS / "mlp.onnx")
    feed = load_inputs_npz(MODELS / "mlp_inputs.npz", mlp)
    assert feed["x"].shape == (32, 256) and feed["x"].dtype == np.float32

    wide = tmp_path / "wide.npz"
    np.savez(wide, x=np.zeros((2, 256), dtype=np.float64))
    assert load_inputs_npz(wide, mlp)["x"].dtype == np.float32  # safe within a kind: cast

    cases = {
        "extra.npz": ({"x": np.zeros((2, 256), np.float32), "z": np.zeros(1)}, r"array 'z' is not an input of mlp\.onnx"),
        "missing.npz": ({"q": np.zeros(1)}, r"array 'q' is not an input"),
        "shape.npz": ({"x": np.zeros((2, 255), np.float32)}, r"array 'x' has shape \[2, 255\], the model wants \[\?, 256\]"),
        "dtype.npz": ({"x": np.zeros((2, 256), np.complex64)}, r"array 'x' has dtype complex64, the model wants float32"),
    }
    for name, (arrays, message) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ModelError, match=name.replace(".", r"\.") + ": " + message):
            load_inputs_npz(tmp_path / name, mlp)
    np.savez(tmp_path / "none.npz")
    with pytest.raises(ModelError, match=r"none\.npz: no array for input 'x' of mlp\.onnx"):
        load_inputs_npz(tmp_path / "none.npz", mlp)


def test_generation_refuses_inputs_over_the_size_limit_before_allocating(tmp_path):
    # 6e9 float32 elements: once a 44.7 GiB float64 draw that only a ulimit stopped.
    path = tmp_path / "huge.onnx"
    _identity_model(path, TensorProto.FLOAT, [6_000_000_000])
    with pytest.raises(ModelError) as caught:
        make_inputs(load_model(path), {"v": (6_000_000_000,)}, seed=0)
    assert str(caught.value) == (
        f"{path}: generating input 'v' of shape [6000000000] and dtype float32 takes 22.4 GiB "
        "(24000000000 bytes), over the limit of 4.0 GiB set by --trt-max-input-bytes (ini trt_max_input_bytes). "
        "Give smaller shapes= or batch_size=, real inputs with inputs=, or a larger limit"
    )


def test_the_size_limit_counts_every_input_and_names_each(tmp_path):
    path = tmp_path / "two.onnx"
    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["a_out"]), helper.make_node("Identity", ["b"], ["b_out"])],
        "two",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT16, [4, 8]), helper.make_tensor_value_info("b", TensorProto.INT64, [16])],
        [helper.make_tensor_value_info("a_out", TensorProto.FLOAT16, [4, 8]), helper.make_tensor_value_info("b_out", TensorProto.INT64, [16])],
    )
    onnx.save(onnx_model(graph), str(path))
    model = load_model(path)
    shapes = {"a": (4, 8), "b": (16,)}
    assert set(make_inputs(model, shapes, seed=0, max_bytes=192)) == {"a", "b"}  # 64 + 128 bytes
    with pytest.raises(ModelError) as caught:
        make_inputs(model, shapes, seed=0, max_bytes=191)
    assert str(caught.value) == (
        f"{path}: generating the inputs takes 192 B (192 bytes), over the limit of 191 B set by "
        "--trt-max-input-bytes (ini trt_max_input_bytes): input 'b' of shape [16] and dtype int64 takes "
        "128 B (128 bytes); input 'a' of shape [4, 8] and dtype float16 takes 64 B (64 bytes). "
        "Give smaller shapes= or batch_size=, real inputs with inputs=, or a larger limit"
    )


@pytest.mark.parametrize(
    ("elem_type", "dtype", "peak_per_output_byte"),
    [(TensorProto.FLOAT, np.float32, 1.1), (TensorProto.FLOAT16, np.float16, 3.1), (TensorProto.INT32, np.int32, 1.1)],
)
def test_values_are_drawn_in_the_input_dtype_without_float64_temporaries(tmp_path, elem_type, dtype, peak_per_output_byte):
    import tracemalloc

    path = tmp_path / "v.onnx"
    _identity_model(path, elem_type, [1 << 20])
    model = load_model(path)
    tracemalloc.start()
    try:
        values = make_inputs(model, {"v": (1 << 20,)}, seed=0)["v"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert values.dtype == dtype
    # numpy reports its buffers to tracemalloc: a float64 draw would peak at 8 bytes an element.
    assert peak <= peak_per_output_byte * values.nbytes
    if dtype != np.int32:
        assert -1.0 <= values.min() < -0.99 and 0.99 < values.max() <= 1.0


def test_int_ranges_outside_the_input_dtype_are_refused(tmp_path):
    path = tmp_path / "small.onnx"
    _identity_model(path, TensorProto.INT8, [4])
    model = load_model(path)
    with pytest.raises(ModelError) as caught:
        make_inputs(model, {"v": (4,)}, seed=0, ranges={"v": (0, 1000)})
    assert str(caught.value) == (
        f"{path}: input_ranges['v']=(0, 1000) holds no int8 values in [low, high) (the dtype holds [-128, 127])"
    )
    with pytest.raises(ModelError, match=r"input_ranges\['v'\]=\(0\.2, 0\.7\) holds no int8 values"):
        make_inputs(model, {"v": (4,)}, seed=0, ranges={"v": (0.2, 0.7)})


def test_format_bytes_reads_like_a_size():
    from pytest_trt.model import format_bytes

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
    assert ranges["ids"] == InputRange(0, 100, RangeSource.DEFAULT)
    assert ranges["x"] == InputRange(-1.0, 1.0, RangeSource.DEFAULT)


def test_generated_ranges_say_where_each_range_comes_from(tmp_path):
    encoder = load_model(MODELS / "encoder.onnx")
    assert generated_ranges(encoder) == {"tokens": InputRange(0, 1000, RangeSource.GRAPH)}
    assert generated_ranges(encoder, {"tokens": (3, 9)}) == {"tokens": InputRange(3, 9, RangeSource.INPUT_RANGES)}
    path = tmp_path / "bools.onnx"
    _identity_model(path, TensorProto.BOOL, [4])
    model = load_model(path)
    assert model.default_ranged_inputs == ()  # bools take both values; there is no range to give
    assert generated_ranges(model) == {"v": InputRange(0, 2, RangeSource.DEFAULT)}


def test_describe_generated_names_each_input_with_shape_dtype_range_and_source(tmp_path):
    from pytest_trt.model import describe_generated

    encoder = load_model(MODELS / "encoder.onnx")
    feed = make_inputs(encoder, {"tokens": (2, 16)}, seed=0)
    assert describe_generated(encoder, feed) == (
        "The model ran on generated inputs, which it may not accept:\n"
        "  'tokens' [2, 16] int64: ints in [0, 1000) (the rows of the table it indexes)\n"
        "Set an input's range with trt_model(..., input_ranges={'tokens': (low, high)}), or give real inputs "
        "with trt_model(..., inputs='inputs.npz')."
    )
    path = tmp_path / "bools.onnx"
    _identity_model(path, TensorProto.BOOL, [3], name="mask")
    model = load_model(path)
    assert "  'mask' [3] bool: False or True\n" in describe_generated(model, make_inputs(model, {"mask": (3,)}, seed=0))
