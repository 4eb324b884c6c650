"""The onnxruntime backend: build = optimize once, load = no re-optimization, checked feeds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pytest_trt import backends
from pytest_trt.backends.base import Artifact, BackendError
from pytest_trt.model import load_model
from pytest_trt.prepare.inputs import make_inputs, resolve_shapes
from pytest_trt.specs import BuildSpec, MeasureSettings
from pytest_trt.timing.measure import timed_session

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"


@pytest.fixture(scope="module")
def backend():
    return backends.create("onnxruntime")


@pytest.fixture(scope="module")
def encoder():
    return load_model(MODELS / "encoder.onnx")


@pytest.fixture(scope="module")
def feed(encoder):
    return make_inputs(encoder, resolve_shapes(encoder, batch_size=3), seed=0)


def test_identity(backend):
    assert backend.name == "onnxruntime"
    assert backend.availability().ok
    assert backend.runtime_version() == f"onnxruntime {ort.__version__}"
    fingerprint = backend.device_fingerprint(BuildSpec())
    assert fingerprint["providers"] == ["CPUExecutionProvider"] and fingerprint["cpu_model"]


def test_artifact_is_an_optimized_model_that_matches_a_plain_session(backend, encoder, feed):
    artifact = backend.build(encoder, BuildSpec())
    optimized = onnx.load_from_string(artifact.data)
    assert artifact.metadata["graph_optimization_level"] == "all"
    # Optimization fuses nodes (LayerNorm, GELU, attention parts): the artifact is not the source.
    assert len(optimized.graph.node) < len(onnx.load(str(encoder.path)).graph.node)

    # A fresh Artifact from the bytes alone is what a cache hit hands back.
    runner = backend.load(Artifact(artifact.data), encoder, BuildSpec())
    plain = ort.InferenceSession(str(encoder.path), providers=["CPUExecutionProvider"])
    (expected,) = plain.run(None, feed)
    out = runner.infer(feed)
    assert list(out) == ["hidden"]
    np.testing.assert_allclose(out["hidden"], expected, rtol=1e-5, atol=1e-5)
    assert [s.name for s in runner.inputs] == ["tokens"] and runner.backend == "onnxruntime"
    runner.close()


def test_build_options_are_applied_or_refused(backend, encoder, feed):
    build = BuildSpec(options=(("graph_optimization_level", "disable"), ("intra_op_threads", 1)))
    artifact = backend.build(encoder, build)
    assert len(onnx.load_from_string(artifact.data).graph.node) == len(onnx.load(str(encoder.path)).graph.node)
    assert backend.load(artifact, encoder, build).infer(feed)["hidden"].shape == (3, 16, 64)
    with pytest.raises(BackendError, match="graph_optimization_level must be one of disable, basic, extended, all"):
        backend.build(encoder, BuildSpec(options=(("graph_optimization_level", "max"),)))


def test_a_provider_that_is_not_installed_is_an_error_not_a_fallback(backend, encoder):
    missing = next(p for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") if p not in ort.get_available_providers())
    with pytest.raises(BackendError, match=f"encoder.onnx: execution provider {missing} is not installed"):
        backend.build(encoder, BuildSpec(options=(("providers", (missing,)),)))


def test_infer_names_the_bad_input(backend, encoder, feed):
    runner = backend.load(backend.build(encoder, BuildSpec()), encoder, BuildSpec())
    with pytest.raises(BackendError, match=r"infer: unknown input 'token' \(model inputs: tokens\)"):
        runner.infer({"tokens": feed["tokens"], "token": feed["tokens"]})
    with pytest.raises(BackendError, match=r"infer: missing input 'tokens'"):
        runner.infer({})
    with pytest.raises(BackendError, match=r"infer: input 'tokens' has dtype int32, the model wants int64"):
        runner.infer({"tokens": feed["tokens"].astype(np.int32)})


@pytest.mark.parametrize(("threads", "probed"), [(1, True), (2, False)])
def test_the_host_probe_runs_only_beside_a_single_threaded_session(backend, encoder, feed, threads, probed):
    build = BuildSpec(options=(("intra_op_threads", threads),))
    runner = backend.load(backend.build(encoder, build), encoder, build)
    session = timed_session(runner, feed, MeasureSettings())
    times = session.run(8)
    session.close()
    assert bool(times.probe) is probed
    off = timed_session(runner, feed, MeasureSettings(host_probe=False))
    assert off.run(8).probe is None
    off.close()


def test_timed_session_times_each_iteration_on_the_host_clock(backend, encoder, feed):
    runner = backend.load(backend.build(encoder, BuildSpec()), encoder, BuildSpec())
    session = timed_session(runner, feed, MeasureSettings())
    times = session.run(4)
    session.close()
    assert session.clock == "host"
    assert len(times.latency) == 4 and all(t > 0 for t in times.latency)
    assert times.span_ms >= sum(times.latency) * 0.999


def _external_matmul(folder: Path, weights: np.ndarray) -> Path:
    from onnx import TensorProto, helper, numpy_helper
    from onnx_builders import onnx_model

    folder.mkdir(parents=True, exist_ok=True)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(weights, "w")],
    )
    path = folder / "matmul.onnx"
    onnx.save_model(onnx_model(graph), str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    assert (folder / "w.bin").read_bytes() == weights.tobytes()  # the poisoned copy below relies on it
    return path


@pytest.fixture
def external_model(tmp_path, monkeypatch):
    """A model with its weights in w.bin, and a working directory holding a w.bin of other weights."""
    weights = np.arange(24, dtype=np.float32).reshape(8, 3)
    model = load_model(_external_matmul(tmp_path / "model", weights))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "w.bin").write_bytes((weights * 0.5).tobytes())
    monkeypatch.chdir(cwd)
    x = np.ones((2, 8), np.float32)
    return model, {"x": x}, x @ weights


@pytest.mark.skipif(
    tuple(int(p) for p in ort.__version__.split(".")[:2]) < (1, 21),
    reason="onnxruntime before 1.21 cannot be told the folder; its artifacts hold the weights inline",
)
def test_an_artifact_reads_external_weights_from_the_model_folder(backend, external_model):
    model, feed, expected = external_model
    artifact = backend.build(model, BuildSpec())
    assert artifact.metadata["external_data"] == "model folder"
    assert [t.data_location for t in onnx.load_from_string(artifact.data).graph.initializer] == [onnx.TensorProto.EXTERNAL]
    runner = backend.load(Artifact(artifact.data), model, BuildSpec())
    np.testing.assert_array_equal(runner.infer(feed)["y"], expected)


def test_before_onnxruntime_1_21_an_artifact_holds_the_external_weights_inline(backend, external_model, monkeypatch):
    # Those versions ignore the folder key and read the working directory: nothing may be left to read.
    model, feed, expected = external_model
    monkeypatch.setattr(ort, "__version__", "1.20.1")
    artifact = backend.build(model, BuildSpec())
    assert artifact.metadata["external_data"] == "inline"
    proto = onnx.load_from_string(artifact.data)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    runner = backend.load(Artifact(artifact.data), model, BuildSpec())
    np.testing.assert_array_equal(runner.infer(feed)["y"], expected)


def test_before_onnxruntime_1_21_a_model_over_the_protobuf_limit_is_refused(backend, external_model, monkeypatch):
    model, _, _ = external_model
    monkeypatch.setattr(sys.modules[type(backend).__module__], "PROTOBUF_LIMIT", 64)
    monkeypatch.setattr(ort, "__version__", "1.20.1")
    with pytest.raises(BackendError) as caught:
        backend.build(model, BuildSpec())
    message = str(caught.value)
    assert message.startswith(f"{model.path}: the optimized model with its external data takes ")
    assert message.endswith(
        " B, over protobuf's 2 GiB limit for one model, and onnxruntime 1.20.1 cannot load a model from "
        "memory with its weights in separate files; onnxruntime 1.21 or later can"
    )
