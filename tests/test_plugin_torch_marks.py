"""The trt_model arguments of torch models and INT8 calibration, validated at collection without
importing torch: each mistake is a collection error naming the test and the argument."""

from __future__ import annotations

import pytest

from pytest_trt.arguments import CalibrationMethod
from pytest_trt.errors import SpecError
from pytest_trt.prepare import quantize
from pytest_trt.specs import ExampleArray, Reference, make_model_spec

TORCH = 'torch=make, example_inputs={"x": (2, 3)}'


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        (f'"mlp.onnx", {TORCH}', "trt_model: give the model either as a path or as torch=, not both"),
        ('torch=42, example_inputs={"x": (2, 3)}', "trt_model: torch= must be a callable returning a torch.nn.Module or a 'pkg.mod:func' string, got 42"),
        ('torch="models.make", example_inputs={"x": (2, 3)}', "trt_model: torch='models.make' must be a callable or an importable 'pkg.mod:func' string"),
        ("torch=make", "trt_model: torch= needs example_inputs= (forward's parameter name -> shape, e.g. {'x': (8, 3, 64, 64)})"),
        ('torch=make, example_inputs={"x": (2, 0)}', "trt_model: example_inputs[[]'x'[]] must be a tuple of positive ints, got (2, 0)"),
        ('torch=make, example_inputs={"x": "big"}', "trt_model: example_inputs[[]'x'[]] must be a shape tuple, a numpy array or a torch tensor, got 'big'"),
        (f'{TORCH}, dynamic={{"y": {{0: "batch"}}}}', "trt_model: dynamic names input 'y', which example_inputs does not have (inputs: x)"),
        (f'{TORCH}, dynamic={{"x": {{2: "batch"}}}}', "trt_model: dynamic[[]'x'[]]: axis 2 is not an axis of an input of rank 2"),
        (f'{TORCH}, dynamic={{"x": {{0: "two words"}}}}', "trt_model: dynamic[[]'x'[]][[]0[]] must be a dim name like 'batch', got 'two words'"),
        ('"mlp.onnx", example_inputs={"x": (2, 3)}', "trt_model: example_inputs= belongs to torch= models; an ONNX model's file gives its inputs"),
        ('"mlp.onnx", reference="torch"', "trt_model: reference='torch' needs torch= (the module to compare with); an ONNX file is compared with onnxruntime"),
        (f'{TORCH}, reference="tensorflow"', "trt_model: reference must be one of onnxruntime, torch; got 'tensorflow'"),
        ('"mlp.onnx", calibration=32', "trt_model: calibration= is for precision='int8' (this mark has precision='fp32')"),
        ('"mlp.onnx", precision="int8", calibration=0', "trt_model: calibration must be a positive number of seeded batches or an .npz path, got 0"),
        ('"mlp.onnx", precision="int8", calibration=True', "trt_model: calibration must be a positive number of seeded batches or an .npz path, got True"),
        ('"mlp.onnx", precision="int8", calibration="calib.npz"', "trt_model: calibration: file 'calib.npz' not found (looked in: *calib.npz)"),
        ('"mlp.onnx", precision="int8", calibration=8, calibration_method="kl"', "trt_model: calibration_method must be one of minmax, entropy, percentile; got 'kl'"),
        ('"mlp.onnx", calibration_method="entropy"', "trt_model: calibration_method= needs calibration= (an .npz of inputs, or a number of batches)"),
    ],
)
def test_bad_torch_and_calibration_arguments_are_collection_errors(trt_pytester, mark, message):
    trt_pytester.pytester.makepyfile(
        test_bad=f"import pytest\n\ndef make():\n    pass\n\n@pytest.mark.trt_model({mark})\ndef test_it():\n    pass\n"
    )
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*test_bad.py::test_it: {message}"])


def test_two_torch_marks_on_one_function_are_named_by_their_factories(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_two="""
        import pytest

        def make():
            pass

        @pytest.mark.trt_model(torch=make, example_inputs={"x": (2, 3)})
        @pytest.mark.trt_model(torch="pkg.models:build", example_inputs={"x": (2, 3)})
        def test_it():
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*test_two.py::test_it: trt_model: 2 marks on the test function (torch=test_two:make and torch=pkg.models:build); keep one"
    ])


def test_a_torch_model_without_torch_installed_is_an_error_naming_the_test(trt_pytester):
    # A conftest that makes "import torch" fail, as on a machine without it.
    trt_pytester.pytester.makeconftest("import sys\nsys.modules['torch'] = None\n")
    trt_pytester.pytester.makepyfile(
        test_no_torch="""
        import pytest

        def make():
            pass

        @pytest.mark.trt_model(torch=make, example_inputs={"x": (2, 3)})
        @pytest.mark.trt_accuracy()
        def test_it(trt_engine):
            pass
        """
    )
    result = trt_pytester.run_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "test_no_torch.py::test_it: torch= needs PyTorch, which cannot be imported here (*); "
        "pip install 'pytest-trt[[]torch[]]' (a CPU build will do)"
    ])


def test_a_torch_spec_is_frozen_and_hashable_and_records_the_factory_name(tmp_path):
    import numpy as np

    def make():
        pass

    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    first = make_model_spec(torch=make, example_inputs={"x": (2, 3), "ids": ids}, dynamic={"x": {-2: "batch"}})
    again = make_model_spec(torch=make, example_inputs={"ids": ids.copy(), "x": [2, 3]}, dynamic={"x": {0: "batch"}})
    assert first == again and hash(first) == hash(again)
    assert first.torch is not None and first.torch.name.endswith(":test_a_torch_spec_is_frozen_and_hashable_and_records_the_factory_name.<locals>.make")
    assert first.torch.dynamic == (("x", ((0, "batch"),)),)
    assert isinstance(dict(first.torch.example_inputs)["ids"], ExampleArray)
    ids[0, 0] = 99  # the spec holds its own copy
    assert first.torch.example_map()["ids"][0, 0] == 0
    assert first.reference is Reference.ONNXRUNTIME and first.path is None
    other = make_model_spec(torch=make, example_inputs={"x": (2, 4)})
    assert other != first
    assert first.as_dict()["torch"]["factory"] == first.torch.name
    with pytest.raises(SpecError, match="must be hashable"):
        make_model_spec(torch=_Unhashable(), example_inputs={"x": (2, 3)})


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self) -> None:
        pass


def test_the_calibration_methods_are_the_quantizers(tmp_path):
    # One enum: what trt_model accepts is what quantize_model runs.
    assert quantize.CalibrationMethod is CalibrationMethod
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    for method in CalibrationMethod:
        spec = make_model_spec(model, precision="int8", calibration=8, calibration_method=method.value)
        assert spec.calibration_method is method and spec.as_dict()["calibration_method"] == method.value
    assert make_model_spec(model, precision="int8", calibration=8).calibration_method is CalibrationMethod.MINMAX
