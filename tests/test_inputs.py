"""prepare/inputs.py: shapes, seeded inputs in the ranges a model accepts, real inputs from an .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_builders import onnx_model

from pytest_trt.model import ModelError, load_model
from pytest_trt.prepare.inputs import (
    DEFAULT_INT_RANGE,
    GeneratedRange,
    RangeSource,
    describe_generated,
    generated_ranges,
    load_inputs_npz,
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


def test_generated_ranges_say_where_each_range_comes_from(tmp_path):
    encoder = load_model(MODELS / "encoder.onnx")
    assert generated_ranges(encoder) == {"tokens": GeneratedRange(0, 1000, RangeSource.GRAPH)}
    assert generated_ranges(encoder, {"tokens": (3, 9)}) == {"tokens": GeneratedRange(3, 9, RangeSource.INPUT_RANGES)}
    path = tmp_path / "bools.onnx"
    _identity_model(path, TensorProto.BOOL, [4])
    model = load_model(path)
    assert model.default_ranged_inputs == ()  # bools take both values; there is no range to give
    assert generated_ranges(model) == {"v": GeneratedRange(0, 2, RangeSource.DEFAULT)}


def test_describe_generated_names_each_input_with_shape_dtype_range_and_source(tmp_path):
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
