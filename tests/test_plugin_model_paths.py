"""Model and input paths that name a folder: a collection error that says so, naming the test."""

from __future__ import annotations

import pytest

from pytest_trt.model import ModelError, load_model


@pytest.mark.parametrize(
    ("mark", "words"),
    [
        ('trt_model("models")', "trt_model: path: 'models' is a directory, not an ONNX file ({folder})"),
        ('trt_model("mlp.onnx", inputs="models")', "trt_model: inputs: 'models' is a directory, not an .npz file ({folder})"),
    ],
)
def test_a_path_naming_a_directory_is_a_collection_error_saying_so(trt_pytester, mark, words):
    folder = trt_pytester.path / "models"
    folder.mkdir()
    trt_pytester.pytester.makepyfile(test_folder=f"import pytest\n\n@pytest.mark.{mark}\ndef test_it():\n    pass\n")
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting test_folder.py*", "test_folder.py::test_it: " + words.format(folder=folder)])
    assert "not found" not in result.stdout.str()


def test_load_model_on_a_directory_says_so(tmp_path):
    with pytest.raises(ModelError) as caught:
        load_model(tmp_path)
    assert str(caught.value) == f"{tmp_path} is a directory, not an ONNX file"
