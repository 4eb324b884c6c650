"""The TensorRT adapter's control flow, driven by the test double in tests/contract/.

The double is checked against the real 11.x API (tests/contract/test_trt_contract.py), so these
tests cannot pass against calls TensorRT does not have; they do not show that TensorRT itself
behaves like the double. Real-runtime checks are in tests/gpu/.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from contract import fake_trt
from contract.fake_cuda import COMPUTE_MS, D2H_MS, GPU, H2D_MS, FakeCuda
from contract.fake_trt10 import tensorrt_10
from onnx import TensorProto, helper
from onnx_builders import onnx_model

from pytest_trt.backends.base import Artifact, BackendError, BackendUnavailable
from pytest_trt.backends.tensorrt import TensorRTBackend, TensorRTRunner
from pytest_trt.cuda import runtime as cuda
from pytest_trt.model import LoadedModel, load_model
from pytest_trt.run.marks import model_spec as make_model_spec
from pytest_trt.specs import BuildSpec, MeasureSettings

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"


@pytest.fixture(autouse=True)
def fresh_gpu():
    GPU.reset()
    yield
    GPU.reset()


@pytest.fixture(scope="module")
def mlp() -> LoadedModel:
    return load_model(MODELS / "mlp.onnx")


def backend(**kwargs) -> TensorRTBackend:
    kwargs.setdefault("trt_module", fake_trt)
    kwargs.setdefault("cuda", FakeCuda())
    return TensorRTBackend(**kwargs)


def spec(model: LoadedModel, **kwargs) -> BuildSpec:
    return make_model_spec(model.path, **kwargs).build


def plan_of(artifact: Artifact) -> dict:
    return json.loads(artifact.data[len(fake_trt.MAGIC) :])


def save(tmp_path: Path, name: str, nodes, inputs, outputs, initializers=()) -> LoadedModel:
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    model = onnx_model(graph)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return load_model(path, check=False)


# -- availability ------------------------------------------------------------------------------


def test_no_gpu_means_unavailable_before_any_tensorrt_object_exists(mlp) -> None:
    # A module with no classes: touching any TensorRT name would raise AttributeError.
    bare = types.ModuleType("bare_trt")
    bare.__version__ = "11.4.0.106"
    b = TensorRTBackend(trt_module=bare, cuda=FakeCuda(ok=False, reason="no usable CUDA driver or GPU"))
    assert not b.availability().ok and "no usable CUDA driver" in b.availability().reason
    with pytest.raises(BackendUnavailable, match="no usable CUDA driver"):
        b.build(mlp, spec(mlp, shapes={"x": (2, 256)}))
    with pytest.raises(BackendUnavailable):
        b.load(Artifact(b"plan"), mlp, BuildSpec())


def test_full_tensorrt_missing_here_is_a_clear_reason() -> None:
    status = TensorRTBackend(runtime="full").availability()
    assert not status.ok
    assert "full runtime is not importable" in status.reason and "pip install tensorrt" in status.reason


def test_lean_runtime_on_a_box_without_a_driver_says_so() -> None:
    if cuda.available("cuda-python").ok:
        pytest.skip("this machine has a usable GPU (tests/gpu runs the lean runtime on it)")
    status = TensorRTBackend(runtime="lean").availability()
    assert not status.ok
    assert any(word in status.reason for word in ("CUDA driver", "not installed", "not importable")), status.reason


def test_unknown_runtime_is_an_error() -> None:
    with pytest.raises(BackendError, match="--trt-runtime must be one of full, lean, dispatch"):
        TensorRTBackend(runtime="turbo")


def test_runtime_version_names_the_runtime() -> None:
    assert backend().runtime_version() == "tensorrt 11.4.0.106"
    assert backend(runtime="lean").runtime_version() == "tensorrt-lean 11.4.0.106"


# -- build ---------------------------------------------------------------------------------------


def test_build_load_infer_round_trip(mlp) -> None:
    b = backend()
    artifact = b.build(mlp, spec(mlp, shapes={"x": (4, 256)}))
    meta = artifact.metadata
    assert meta["engine_bytes"] == len(artifact.data) and meta["tensorrt_version"] == "11.4.0.106"
    assert meta["layers"] == ["layer_y"] and meta["device_memory_bytes"] == 4096
    assert meta["profiles"] == [{"x": [[4, 256]] * 3}]
    runner = b.load(artifact, mlp, BuildSpec())
    assert [s.name for s in runner.inputs] == ["x"] and runner.inputs[0].shape == (None, 256)
    out = runner.infer({"x": np.full((4, 256), 3.0, np.float32)})
    np.testing.assert_array_equal(out["y"], np.full((4, 10), 3.0, np.float32))
    runner.close()


def test_intermediate_tensors_come_from_an_engine_built_with_them_marked_as_outputs(tmp_path) -> None:
    from onnx_builders import written_out_layer_norm_model

    model = load_model(written_out_layer_norm_model(tmp_path / "ln.onnx"))
    b = backend()
    build = spec(model, shapes={"x": (4, 64)})
    plan = plan_of(b.build(model, build, marked=["squared", "variance", "y", "not_a_tensor"]))
    # Marked once each, after the model's own output; a name the network lacks is not there.
    assert [o["name"] for o in plan["outputs"]] == ["y", "squared", "variance"]
    read = b.intermediate_tensors(model, build, {"x": np.full((4, 64), 2.0, np.float32)}, ["squared", "variance", "nope"])
    assert sorted(read) == ["squared", "variance"]
    assert read["squared"].shape == (4, 64) and read["variance"].shape == (4, 1)
    assert [o["name"] for o in plan_of(b.build(model, build))["outputs"]] == ["y"]  # nothing marked by default


def test_serialized_plan_survives_a_trip_through_the_cache(tmp_path, mlp) -> None:
    b = backend()
    built = b.build(mlp, spec(mlp, shapes={"x": (2, 256)}))
    (tmp_path / "engine.plan").write_bytes(built.data)
    (tmp_path / "engine.json").write_text(json.dumps(built.metadata))
    restored = Artifact((tmp_path / "engine.plan").read_bytes(), json.loads((tmp_path / "engine.json").read_text()))
    out = b.load(restored, mlp, BuildSpec()).infer({"x": np.ones((2, 256), np.float32)})
    assert out["y"].shape == (2, 10)


def test_dynamic_input_without_a_shape_is_a_clear_error(mlp) -> None:
    with pytest.raises(BackendError, match=r"input 'x' has dynamic dims \[\?, 256\].*mlp.onnx|mlp.onnx.*input 'x'"):
        backend().build(mlp, BuildSpec())


def test_profiles_give_min_opt_max_and_bound_the_runtime_shapes(mlp) -> None:
    b = backend()
    artifact = b.build(mlp, spec(mlp, profiles={"x": ((1, 256), (4, 256), (8, 256))}))
    assert plan_of(artifact)["profile"] == {"x": [[1, 256], [4, 256], [8, 256]]}
    runner = b.load(artifact, mlp, BuildSpec())
    assert runner.infer({"x": np.ones((2, 256), np.float32)})["y"].shape == (2, 10)
    assert runner.infer({"x": np.ones((8, 256), np.float32)})["y"].shape == (8, 10)
    with pytest.raises(BackendError, match=r"input 'x': shape \(9, 256\) is outside .* \(min \(1, 256\), max \(8, 256\)\)"):
        runner.infer({"x": np.ones((9, 256), np.float32)})


@pytest.mark.parametrize(
    ("profiles", "message"),
    [
        ({"x": ((1, 128), (1, 128), (1, 128))}, "axis 1 is fixed at 256"),
        ({"x": ((1, 256, 1), (1, 256, 1), (1, 256, 1))}, r"must be \(min, opt, max\) shapes of rank 2"),
        ({"nope": ((1, 256), (1, 256), (1, 256))}, r"profile names \['nope'\]"),
    ],
)
def test_profiles_that_do_not_fit_the_model_are_clear_errors(mlp, profiles, message) -> None:
    with pytest.raises(BackendError, match=message):
        backend().build(mlp, spec(mlp, profiles=profiles))


def test_several_profiles_build_one_each_and_the_runner_switches_before_setting_shapes(mlp) -> None:
    b = backend()
    two = [{"x": ((1, 256), (2, 256), (4, 256))}, {"x": ((5, 256), (8, 256), (16, 256))}]
    artifact = b.build(mlp, spec(mlp, profile=two))
    assert plan_of(artifact)["profiles"] == [{"x": [[1, 256], [2, 256], [4, 256]]}, {"x": [[5, 256], [8, 256], [16, 256]]}]
    runner = b.load(artifact, mlp, BuildSpec())
    assert runner.infer({"x": np.ones((2, 256), np.float32)})["y"].shape == (2, 10)
    assert runner.infer({"x": np.ones((12, 256), np.float32)})["y"].shape == (12, 10)
    assert runner.infer({"x": np.ones((3, 256), np.float32)})["y"].shape == (3, 10)
    assert runner._context.profile_switches == [1, 0]


def test_build_options_map_onto_the_builder_config(mlp) -> None:
    artifact = backend().build(
        mlp,
        spec(mlp, shapes={"x": (1, 256)}, workspace_mb=64, optimization_level=5, hardware_compatibility="ampere_plus", builder_flags=["STRICT_NANS"]),
    )
    plan = plan_of(artifact)
    assert plan["workspace"] == 64 << 20 and plan["optimization_level"] == 5
    assert plan["hardware_compatibility"] == "AMPERE_PLUS"
    assert artifact.metadata["builder_flags"] == ["STRICT_NANS"]  # names, never enum ints


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"optimization_level": 9}, r"optimization_level must be in \[0, 5\]"),
        ({"workspace_mb": 0}, "workspace_mb must be in"),
        ({"hardware_compatibility": "any"}, "hardware_compatibility must be one of"),
        ({"exclude_lean_runtime": True}, "exclude_lean_runtime=True needs version_compatible=True"),
        ({"builder_flags": ["NO_SUCH_FLAG"]}, "has no BuilderFlag 'NO_SUCH_FLAG'"),
    ],
)
def test_bad_build_options_are_clear_errors(mlp, options, message) -> None:
    with pytest.raises(BackendError, match=message):
        backend().build(mlp, spec(mlp, shapes={"x": (1, 256)}, **options))


def test_fp32_turns_tf32_off_and_tf32_turns_it_on(mlp) -> None:
    b = backend()
    fp32 = b.build(mlp, spec(mlp, shapes={"x": (1, 256)}))
    tf32 = b.build(mlp, spec(mlp, shapes={"x": (1, 256)}, precision="tf32"))
    assert "TF32" not in plan_of(fp32)["flags"] and fp32.metadata["tf32"] is False
    assert "TF32" in plan_of(tf32)["flags"] and tf32.metadata["builder_flags"] == ["TF32"]


def test_weak_typing_flags_are_refused_on_tensorrt_11(mlp) -> None:
    with pytest.raises(BackendError, match=r"strongly typed only.*use precision="):
        backend().build(mlp, spec(mlp, shapes={"x": (1, 256)}, builder_flags=["FP16"]))


def test_tensorrt_10_builds_strongly_typed_unless_weak_flags_are_asked_for(mlp) -> None:
    b = backend(trt_module=tensorrt_10())
    strong = b.build(mlp, spec(mlp, shapes={"x": (1, 256)}))
    assert strong.metadata["network_flags"] == ["STRONGLY_TYPED"] and strong.metadata["strongly_typed"]
    assert plan_of(strong)["strongly_typed_flag"] == 1 << 1  # 10.x value of STRONGLY_TYPED
    weak = b.build(mlp, spec(mlp, shapes={"x": (1, 256)}, builder_flags=["FP16"]))
    assert weak.metadata["network_flags"] == [] and not weak.metadata["strongly_typed"]
    assert "FP16" in plan_of(weak)["flags"]


def test_parser_errors_list_node_name_and_op_type(tmp_path) -> None:
    model = save(
        tmp_path, "custom",
        [helper.make_node("NotARealOp", ["x"], ["y"], name="mystery_node", domain="com.example")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(BackendError) as excinfo:
        backend().build(model, BuildSpec())
    message = str(excinfo.value)
    assert "could not parse" in message and str(model.path) in message
    assert "'mystery_node'" in message and "op NotARealOp" in message


def test_quantized_precision_needs_qdq_nodes(tmp_path, mlp) -> None:
    with pytest.raises(BackendError, match="precision='int8' needs an explicitly quantized model"):
        backend().build(mlp, spec(mlp, shapes={"x": (1, 256)}, precision="int8"))
    qdq = save(
        tmp_path, "qdq",
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.INT8, [], [0])],
    )
    assert backend().build(qdq, BuildSpec(precision="int8")).metadata["precision"] == "int8"


def test_a_failed_build_surfaces_the_logged_reason(mlp, monkeypatch) -> None:
    # Skip the adapter's own profile check so that the double's builder refuses the dynamic
    # input without a profile, as TensorRT does, and logs why.
    monkeypatch.setattr("pytest_trt.backends.tensorrt.optimization_profiles", lambda model, build: [])
    with pytest.raises(BackendError, match=r"failed to build .*no optimization profile has been defined"):
        backend().build(mlp, BuildSpec())


def test_timing_cache_is_read_and_merged_back(mlp) -> None:
    class Store:
        def __init__(self, data: bytes | None) -> None:
            self.data, self.merged = data, None

        def load(self) -> bytes | None:
            return self.data

        def merge(self, data: bytes) -> None:
            self.merged = data

    used = Store(b"old")
    assert backend(timing_cache=used).build(mlp, spec(mlp, shapes={"x": (1, 256)})).metadata["timing_cache"]
    assert used.merged == b"old+timings"
    foreign = Store(b"other-device timings")  # the double rejects it like a cache from another GPU
    backend(timing_cache=foreign).build(mlp, spec(mlp, shapes={"x": (1, 256)}))
    assert foreign.merged == b"+timings"
    unused = Store(b"old")
    meta = backend(timing_cache=unused).build(mlp, spec(mlp, shapes={"x": (1, 256)}, timing_cache=False)).metadata
    assert unused.merged is None and meta["timing_cache"] is False


def test_build_progress_goes_to_the_callback(mlp) -> None:
    lines: list[str] = []
    backend(progress=lines.append).build(mlp, spec(mlp, shapes={"x": (1, 256)}))
    assert lines == ["TensorRT build: Building engine (1 steps)", "TensorRT build: Building engine done"]


def test_lean_and_dispatch_cannot_build(mlp) -> None:
    for runtime in ("lean", "dispatch"):
        with pytest.raises(BackendError, match=f"the TensorRT {runtime} runtime cannot build engines.*version_compatible=True"):
            backend(runtime=runtime).build(mlp, spec(mlp, shapes={"x": (1, 256)}))


# -- load ----------------------------------------------------------------------------------------


def test_version_compatible_plans_load_on_the_lean_runtime(mlp) -> None:
    artifact = backend().build(mlp, spec(mlp, shapes={"x": (1, 256)}, version_compatible=True))
    assert "VERSION_COMPATIBLE" in artifact.metadata["builder_flags"] and artifact.metadata["version_compatible"]
    runner = backend(runtime="lean").load(artifact, mlp, BuildSpec())
    assert runner.infer({"x": np.ones((1, 256), np.float32)})["y"].shape == (1, 10)


def test_lean_refuses_a_plan_that_is_not_version_compatible(mlp) -> None:
    artifact = backend().build(mlp, spec(mlp, shapes={"x": (1, 256)}))
    with pytest.raises(BackendError, match=r"lean runtime loads only version-compatible plans.*mlp.onnx"):
        backend(runtime="lean").load(artifact, mlp, BuildSpec())


def test_deserialize_returning_none_surfaces_tensorrts_logged_reason(mlp) -> None:
    with pytest.raises(BackendError) as excinfo:
        backend().load(Artifact(b"corrupt"), mlp, BuildSpec())
    assert "could not deserialize the engine for" in str(excinfo.value)
    assert "magicTag == kEXPECTED_MAGIC_TAG failed" in str(excinfo.value)


def test_numpy_less_io_types_are_refused_at_load(tmp_path) -> None:
    model = save(
        tmp_path, "bf16",
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [2])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [2])],
    )
    b = backend()
    with pytest.raises(BackendError, match=r"tensor 'x' has type .*BF16.*keep_io_types"):
        b.load(b.build(model, BuildSpec()), model, BuildSpec())


def test_data_dependent_output_shapes_are_refused(tmp_path) -> None:
    model = save(
        tmp_path, "nonzero",
        [helper.make_node("NonZero", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, "nnz"])],
    )
    b = backend()
    runner = b.load(b.build(model, BuildSpec()), model, BuildSpec())
    with pytest.raises(BackendError, match="output 'y' has a data-dependent shape"):
        runner.infer({"x": np.ones(6, np.float32)})


@pytest.fixture
def runner(mlp) -> TensorRTRunner:
    b = backend()
    r = b.load(b.build(mlp, spec(mlp, profiles={"x": ((1, 256), (2, 256), (4, 256))})), mlp, BuildSpec())
    yield r
    r.close()


def test_the_feed_must_match_the_engine_inputs(runner) -> None:
    with pytest.raises(BackendError, match=r"missing \['x'\], unknown \['z'\]"):
        runner.infer({"z": np.ones((1, 256), np.float32)})
    with pytest.raises(BackendError, match="input 'x' is float64, the engine takes float32"):
        runner.infer({"x": np.ones((1, 256))})


def test_device_fingerprint_follows_hardware_compatibility(mlp) -> None:
    b = backend()
    assert b.device_fingerprint(spec(mlp)) == {"gpu_name": "Fake GPU", "compute_capability": "9.0", "sm_count": 132}
    same_cc = b.device_fingerprint(spec(mlp, hardware_compatibility="same_compute_capability"))
    assert same_cc == {"hardware_compatibility": "same_compute_capability", "compute_capability": "9.0"}
    ampere = b.device_fingerprint(spec(mlp, hardware_compatibility="ampere_plus"))
    assert ampere == {"hardware_compatibility": "ampere_plus", "ampere_or_newer": True}


# -- timing --------------------------------------------------------------------------------------


def test_timed_session_reports_trtexecs_phases(runner) -> None:
    session = runner.timed_session({"x": np.ones((2, 256), np.float32)}, MeasureSettings())
    times = session.run(6)
    assert session.clock == "cuda-events"
    assert session.mode == {
        "clock": "cuda-events", "cuda_graph": False, "cuda_graph_requested": False, "transfers": True,
        "sync": "blocking", "streams": 1, "inflight": 2, "cuda_api": "fake-cuda", "backend": "tensorrt",
    }
    assert times.h2d == [H2D_MS] * 6 and times.compute == [COMPUTE_MS] * 6 and times.d2h == [D2H_MS] * 6
    assert times.latency == [H2D_MS + COMPUTE_MS + D2H_MS] * 6
    assert times.span_ms == pytest.approx(6 * (H2D_MS + COMPUTE_MS + D2H_MS))
    assert len(times.enqueue) == 6
    session.close()


def test_without_transfers_latency_is_compute_alone(runner) -> None:
    session = runner.timed_session({"x": np.ones((2, 256), np.float32)}, MeasureSettings(transfers=False, sync="spin"))
    times = session.run(3)
    assert times.latency == times.compute == [COMPUTE_MS] * 3 and times.h2d is None and times.d2h is None
    assert session.mode["transfers"] is False and session.mode["sync"] == "spin"
    session.close()


def test_cuda_graph_replays_the_enqueue(runner) -> None:
    session = runner.timed_session({"x": np.full((2, 256), 5.0, np.float32)}, MeasureSettings(cuda_graph=True))
    times = session.run(4)
    assert session.mode["cuda_graph"] is True and session.warnings == []
    assert times.compute == [COMPUTE_MS] * 4
    session.close()


def test_cuda_graph_capture_failure_falls_back_with_a_warning(runner) -> None:
    runner._context.capturable = False
    session = runner.timed_session({"x": np.ones((2, 256), np.float32)}, MeasureSettings(cuda_graph=True))
    assert session.mode["cuda_graph"] is False and session.mode["cuda_graph_requested"] is True
    assert len(session.warnings) == 1 and "timed plain enqueue instead" in session.warnings[0]
    assert session.run(2).compute == [COMPUTE_MS] * 2
    session.close()


def test_a_sibling_is_another_context_of_the_same_engine_on_a_stream_of_its_own(mlp) -> None:
    b = backend()
    runner = b.load(b.build(mlp, spec(mlp, shapes={"x": (2, 256)})), mlp, BuildSpec())
    sibling = runner.sibling()
    assert sibling._engine is runner._engine and sibling._context is not runner._context
    assert sibling._stream is not runner._stream
    feed = {"x": np.full((2, 256), 2.0, np.float32)}
    np.testing.assert_array_equal(sibling.infer(feed)["y"], runner.infer(feed)["y"])
    sibling.close()
    assert runner.infer(feed)["y"].shape == (2, 10)  # closing a sibling leaves the engine to its owner
    runner.close()


def test_device_memory_is_the_engines_activations_and_the_runners_buffers(mlp) -> None:
    b = backend()
    runner = b.load(b.build(mlp, spec(mlp, shapes={"x": (2, 256)})), mlp, BuildSpec())
    runner.infer({"x": np.ones((2, 256), np.float32)})
    # device_memory_size_v2 (4096 in the double) + x (2x256 fp32) + y (2x10 fp32)
    assert runner.device_memory() == 4096 + 2 * 256 * 4 + 2 * 10 * 4
    runner.close()


def test_only_tensorrt_reads_its_own_intermediate_tensors() -> None:
    from pytest_trt.backends.base import ReadsIntermediates
    from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend

    assert isinstance(backend(), ReadsIntermediates)
    assert not isinstance(OnnxRuntimeBackend(), ReadsIntermediates)  # the diagnosis emulates its graph
