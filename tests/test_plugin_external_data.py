"""Models whose weights live in external-data files, run as users run them: the engine and the
reference read the model's own data files wherever pytest runs, also from the engine cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import onnx_model

DATA_FILE = "weights.bin"

# The test body compares the engine with numpy on the true weights; the gates compare it with the
# reference. Together they fail whenever either reads weights other than the model's own.
TEST_FILE = """
import numpy as np
import pytest
from pathlib import Path

HERE = Path(__file__).parent

@pytest.mark.trt_model("{folder}/matmul.onnx")
@pytest.mark.trt_accuracy(rtol=1e-5, atol=1e-5)
def test_fp32_{name}(trt_engine):
    feed = trt_engine.sample_inputs()
    weights = np.load(HERE / "{folder}" / "true_weights.npy")
    np.testing.assert_allclose(trt_engine.infer(feed)["y"], feed["x"] @ weights, rtol=1e-5, atol=1e-5)

# The fp16 engine runs a converted copy with its weights inline, so its gate checks the reference.
@pytest.mark.trt_model("{folder}/matmul.onnx", precision="fp16")
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-2)
def test_fp16_{name}(trt_engine):
    pass
"""


def save_matmul(folder: Path, weights: np.ndarray) -> Path:
    """y = x @ W with W in ``folder/weights.bin``; the .onnx bytes depend on W's shape only."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, weights.shape[1]])],
        [numpy_helper.from_array(weights, "w")],
    )
    path = folder / "matmul.onnx"
    onnx.save_model(onnx_model(graph), str(path), save_as_external_data=True, location=DATA_FILE, size_threshold=0)
    return path


def true_weights(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1.0, 2.0, size=(8, 3)).astype(np.float32)


def write_tests(root: Path, name: str, folder: str, seed: int) -> np.ndarray:
    """A test file in ``root/tests`` gating ``tests/<folder>/matmul.onnx`` with weights of ``seed``."""
    weights = true_weights(seed)
    save_matmul(root / "tests" / folder, weights)
    np.save(root / "tests" / folder / "true_weights.npy", weights)
    assert (root / "tests" / folder / DATA_FILE).read_bytes() == weights.tobytes()
    with (root / "tests" / "test_external.py").open("a") as f:
        f.write(TEST_FILE.format(folder=folder, name=name))
    return weights


def poison(folder: Path, weights: np.ndarray) -> None:
    """A same-named data file holding the weights x 0.5, where a wrong lookup would find it.
    The one tensor of the model fills its data file, so the layout is the raw array."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DATA_FILE).write_bytes((weights * 0.5).tobytes())


def run_from(trt_pytester, cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> pytest.RunResult:
    root = trt_pytester.path
    monkeypatch.chdir(cwd)
    return trt_pytester.pytester.runpytest(*trt_pytester.args(f"--rootdir={root}", str(root / "tests"), *args))


def test_external_data_is_read_next_to_the_model_when_run_from_the_rootdir(trt_pytester, monkeypatch):
    write_tests(trt_pytester.path, "model", "models", seed=1)
    result = run_from(trt_pytester, trt_pytester.path, monkeypatch)
    assert "escapes working directory" not in result.stdout.str()
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("onnxruntime_version", ["installed", "1.20.1"])
def test_a_same_named_data_file_in_the_working_directory_is_not_read(trt_pytester, monkeypatch, onnxruntime_version):
    if onnxruntime_version != "installed":
        # As on onnxruntime before 1.21 (the run is in this process): the folder key does nothing,
        # so the artifact must hold the weights inline.
        import importlib

        import onnxruntime

        # Through sys.modules, which the run uses: an earlier in-process run may have left another
        # copy as an attribute of the package.
        ort_backend = importlib.import_module("pytest_trt.backends.onnxruntime")
        monkeypatch.setattr(onnxruntime, "__version__", onnxruntime_version)
        monkeypatch.setattr(ort_backend, "EXTERNAL_DATA_FOLDER_KEY", "session.a_key_onnxruntime_ignores")
    weights = write_tests(trt_pytester.path, "model", "models", seed=1)
    elsewhere = trt_pytester.path / "elsewhere"
    poison(elsewhere, weights)
    result = run_from(trt_pytester, elsewhere, monkeypatch)
    result.assert_outcomes(passed=2)


def test_models_with_equal_onnx_bytes_and_other_weights_give_their_own_results(trt_pytester, monkeypatch, tmp_path):
    first = write_tests(trt_pytester.path, "first", "first", seed=1)
    second = write_tests(trt_pytester.path, "second", "second", seed=2)
    folders = trt_pytester.path / "tests"
    assert (folders / "first/matmul.onnx").read_bytes() == (folders / "second/matmul.onnx").read_bytes()
    assert not np.array_equal(first, second)
    cache = f"--trt-engine-cache={tmp_path / 'cache'}"
    # From the first model's folder a lookup by working directory would find its weights for both;
    # the second run takes every engine and reference from the cache, from a poisoned folder.
    run_from(trt_pytester, folders / "first", monkeypatch, cache).assert_outcomes(passed=4)
    elsewhere = trt_pytester.path / "elsewhere"
    poison(elsewhere, first)
    cached = run_from(trt_pytester, elsewhere, monkeypatch, cache)
    cached.assert_outcomes(passed=4)
    cached.stdout.fnmatch_lines(["*engine cache*hit*"])
