"""The onnxruntime GPU adapters' control flow, on a faked GPU build of onnxruntime
(tests/contract/fake_ort.py) and the fake CUDA layer. The option names they pass are checked
against the real wheels in tests/contract/test_ort_provider_contract.py; real runs are in
tests/gpu/.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import numpy as np
import pytest
from contract.fake_cuda import COMPUTE_MS, D2H_MS, GPU, H2D_MS, FakeCuda, FakeStream
from contract.fake_ort import CPU, CUDA, FakeOrt

from pytest_trt.backends import onnxruntime_gpu as gpu
from pytest_trt.backends.base import BackendError, BackendUnavailable
from pytest_trt.backends.onnxruntime_cuda import CONVERTED_FORM_FUSIONS_OFF, OnnxRuntimeCudaBackend
from pytest_trt.backends.onnxruntime_tensorrt import (
    OnnxRuntimeTensorRTBackend,
    _pack,
    _unpack,
    tensorrt_provider_options,
)
from pytest_trt.backends.onnxruntime_trt_rtx import OnnxRuntimeTrtRtxBackend, ep_context_config, rtx_provider_options
from pytest_trt.model import LoadedModel, load_model
from pytest_trt.specs import BuildSpec, MeasureSettings

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
FAST = MeasureSettings(warmup_ms=0, min_iterations=3, min_duration_ms=0)


@pytest.fixture(autouse=True)
def fresh_gpu():
    GPU.reset()
    yield
    GPU.reset()


@pytest.fixture(scope="module")
def mlp() -> LoadedModel:
    return load_model(MODELS / "mlp.onnx")


@pytest.fixture
def feed(mlp: LoadedModel) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).uniform(-1, 1, (32, 256)).astype(np.float32)}


def cuda_backend(ort: FakeOrt | None = None, cuda: FakeCuda | None = None) -> OnnxRuntimeCudaBackend:
    return OnnxRuntimeCudaBackend(ort=ort or FakeOrt(), cuda=cuda or FakeCuda())


def loaded(backend: OnnxRuntimeCudaBackend, model: LoadedModel, build: BuildSpec | None = None):
    build = build or BuildSpec()
    return backend.load(backend.build(model, build), model, build)


@pytest.fixture
def no_probe(monkeypatch: pytest.MonkeyPatch):
    """Availability's one-node session runs against the fake like every other session."""
    monkeypatch.setattr(gpu, "library_load_error", lambda ort, library: "")


# -- availability ---------------------------------------------------------------------------------


def test_cpu_wheel_means_onnxruntime_gpu_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "package_version", {"onnxruntime": "1.30.0"}.get)
    status = cuda_backend(FakeOrt(providers=(CPU,))).availability()
    assert status == gpu.Availability(
        False,
        "onnxruntime-gpu is not installed: onnxruntime 1.30.0 has no CUDAExecutionProvider "
        "(its providers: CPUExecutionProvider); pip install onnxruntime-gpu",
    )
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu is not installed"):
        cuda_backend(FakeOrt(providers=(CPU,))).build(load_model(MODELS / "mlp.onnx"), BuildSpec())


def test_both_wheels_installed_says_which_won(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "package_version", {"onnxruntime": "1.30.0", "onnxruntime-gpu": "1.30.0"}.get)
    reason = cuda_backend(FakeOrt(providers=(CPU,))).availability().reason
    assert "onnxruntime 1.30.0 and onnxruntime-gpu 1.30.0 are both installed" in reason
    assert reason.endswith("pip uninstall -y onnxruntime onnxruntime-gpu, then pip install onnxruntime-gpu")


def test_no_gpu_is_decided_by_the_driver_before_any_session(no_probe) -> None:
    ort = FakeOrt()
    status = cuda_backend(ort, FakeCuda(ok=False, reason="no CUDA device found (cudaGetDeviceCount returned 0)")).availability()
    assert status.reason == "no GPU: no CUDA device found (cudaGetDeviceCount returned 0)"
    assert ort.sessions == []


def test_a_provider_that_does_not_come_up_says_what_the_loader_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "library_load_error", lambda ort, library: f"{library}? libcudnn.so.9: cannot open shared object file")
    status = cuda_backend(FakeOrt(dropped=(CUDA,))).availability()
    assert status.reason == (
        "onnxruntime cannot load libonnxruntime_providers_cuda.so: "
        "libonnxruntime_providers_cuda.so? libcudnn.so.9: cannot open shared object file"
    )


def test_a_provider_dropped_with_a_log_line_reports_that_line(no_probe, monkeypatch: pytest.MonkeyPatch) -> None:
    line = (
        "2026-12-01 10:00:00.1 [E:onnxruntime:Default, provider_bridge_ort.cc:2190 TryGetProviderInfo_CUDA] "
        "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open"
    )

    class Logging(FakeOrt):
        def InferenceSession(self, *args, **kwargs):
            os.write(2, (line + "\n").encode())
            return super().InferenceSession(*args, **kwargs)

    status = cuda_backend(Logging(dropped=(CUDA,))).availability()
    assert status.reason == (
        "onnxruntime did not enable CUDAExecutionProvider: Failed to load library "
        "libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open"
    )


def test_the_probe_session_names_the_provider_and_never_falls_back(no_probe) -> None:
    ort = FakeOrt()
    assert cuda_backend(ort).availability().ok
    (probe,) = ort.sessions
    assert probe.providers == [(CUDA, {"device_id": "0"}), CPU]


def test_native_stderr_collects_file_descriptor_2_and_restores_it(capfd: pytest.CaptureFixture[str]) -> None:
    with gpu.native_stderr() as lines:
        os.write(2, b"[W:onnxruntime:Default, x.cc:1 f] first\n[E:onnxruntime:, y.cc:2 g] second\n")
    os.write(2, b"after\n")
    assert lines == ["[W:onnxruntime:Default, x.cc:1 f] first", "[E:onnxruntime:, y.cc:2 g] second"]
    assert gpu.logged_reason(lines) == "second"
    assert capfd.readouterr().err == "after\n"


# -- provider options ---------------------------------------------------------------------------


@pytest.mark.parametrize(("precision", "tf32"), [("fp32", "0"), ("fp16", "0"), ("tf32", "1")])
def test_tf32_is_on_only_for_precision_tf32(precision: str, tf32: str) -> None:
    assert gpu.cuda_provider_options(precision, None)["use_tf32"] == tf32


def test_the_provider_runs_on_the_runners_stream(no_probe, mlp: LoadedModel) -> None:
    ort = FakeOrt()
    runner = loaded(cuda_backend(ort), mlp)
    try:
        loaded_session = ort.sessions[-1]
        provider, options = loaded_session.providers[0]
        assert provider == CUDA
        assert options["has_user_compute_stream"] == "1"
        assert options["user_compute_stream"] == str(FakeStream.handle)
        assert "enable_cuda_graph" not in options
        built = ort.sessions[-2]  # the build: optimizations, no stream of ours
        assert "user_compute_stream" not in built.providers[0][1]
    finally:
        runner.close()


def test_a_converted_form_is_optimized_without_the_layer_norm_fusion_that_mistypes_its_input_cast(
    no_probe, tmp_path: Path
) -> None:
    """The fake opens real onnxruntime CPU sessions with the fusions the adapter turned off, so
    the fp16 form of a written-out LayerNorm meets onnxruntime's own graph optimizer here."""
    from onnx_builders import written_out_layer_norm_model

    from pytest_trt.prepare.precision import apply_precision

    source = written_out_layer_norm_model(tmp_path / "ln.onnx")
    fp16_form = load_model(apply_precision(source, "fp16", tmp_path))
    ort = FakeOrt()
    backend = cuda_backend(ort)
    fp16 = BuildSpec(precision="fp16")
    runner = backend.load(backend.build(fp16_form, fp16), fp16_form, fp16)
    runner.close()
    built, opened = ort.sessions[-2:]
    assert built.fusions_off == list(CONVERTED_FORM_FUSIONS_OFF) == ["LayerNormFusionL1"]
    assert opened.fusions_off == []  # opened with optimizations off
    assert backend.device_fingerprint(fp16)["fusions_off"] == ["LayerNormFusionL1"]
    backend.build(load_model(source), BuildSpec())
    assert ort.sessions[-1].fusions_off == []
    assert "fusions_off" not in backend.device_fingerprint(BuildSpec())


def test_tf32_policy_sets_the_override_for_fp32_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    with gpu.tf32_policy("fp32"):
        assert os.environ["NVIDIA_TF32_OVERRIDE"] == "0"
    assert "NVIDIA_TF32_OVERRIDE" not in os.environ
    with gpu.tf32_policy("tf32"):
        assert "NVIDIA_TF32_OVERRIDE" not in os.environ
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "1")
    with gpu.tf32_policy("fp32"):
        assert os.environ["NVIDIA_TF32_OVERRIDE"] == "1"  # the user's choice stands
    assert os.environ["NVIDIA_TF32_OVERRIDE"] == "1"


def test_tensorrt_options_keep_the_network_strongly_typed_and_carry_the_build() -> None:
    build = BuildSpec(precision="fp16", options=(("workspace_mb", 256), ("optimization_level", 5)))
    profiles = [{"a": ((1, 3), (4, 3), (8, 3)), "b": ((1,), (2,), (2,))}]
    options = tensorrt_provider_options(
        build, profiles, FakeStream(), cuda_graph=True, timing_cache_dir=Path("/c"), context_model=Path("/m/ctx.onnx")
    )
    assert options == {
        "device_id": "0",
        "has_user_compute_stream": "1",
        "user_compute_stream": "7",
        "trt_fp16_enable": "0",
        "trt_max_workspace_size": str(256 << 20),
        "trt_builder_optimization_level": "5",
        "trt_profile_min_shapes": "a:1x3,b:1",
        "trt_profile_opt_shapes": "a:4x3,b:2",
        "trt_profile_max_shapes": "a:8x3,b:2",
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": "/c",
        "trt_dump_ep_context_model": "1",
        "trt_ep_context_file_path": "/m/ctx.onnx",
        "trt_ep_context_embed_mode": "1",
        "trt_cuda_graph_enable": "1",
    }


@pytest.mark.parametrize(("option", "value", "message"), [
    ("workspace_mb", 0, "workspace_mb must be in"),
    ("optimization_level", 6, r"optimization_level must be in \[0, 5\], got 6"),
])
def test_tensorrt_options_out_of_range_are_errors(option: str, value: int, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        tensorrt_provider_options(BuildSpec(options=((option, value),)), [], None)


def test_timing_cache_files_round_trip_and_stay_in_their_folder(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    source.mkdir()
    target.mkdir()
    (source / "TensorrtExecutionProvider_cache_sm90.timing").write_bytes(b"\x01\x02")
    _unpack(_pack(source), target)
    assert (target / "TensorrtExecutionProvider_cache_sm90.timing").read_bytes() == b"\x01\x02"
    import io
    import zipfile

    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.timing", b"x")
    _unpack(evil.getvalue(), target)
    assert not (tmp_path / "outside.timing").exists() and (target / "outside.timing").read_bytes() == b"x"
    _unpack(b"not a zip", target)  # a damaged cache costs build time only


def test_rtx_options_and_ep_context_config() -> None:
    build = BuildSpec(options=(("workspace_mb", 64),))
    assert rtx_provider_options(build, [{"x": ((1, 2), (2, 2), (4, 2))}], FakeStream(), cuda_graph=True) == {
        "has_user_compute_stream": "1",
        "user_compute_stream": "7",
        "nv_max_workspace_size": str(64 << 20),
        "nv_profile_min_shapes": "x:1x2",
        "nv_profile_opt_shapes": "x:2x2",
        "nv_profile_max_shapes": "x:4x2",
        "enable_cuda_graph": "1",
    }
    assert ep_context_config(Path("/t/m.onnx")) == {
        "ep.context_enable": "1", "ep.context_file_path": "/t/m.onnx", "ep.context_embed_mode": "1",
    }


# -- the runner -----------------------------------------------------------------------------------


def test_infer_matches_the_cpu_reference(no_probe, mlp: LoadedModel, feed) -> None:
    import onnxruntime

    runner = loaded(cuda_backend(), mlp)
    try:
        expected = onnxruntime.InferenceSession(str(mlp.path), providers=[CPU]).run(None, feed)[0]
        np.testing.assert_allclose(runner.infer(feed)["y"], expected, rtol=1e-5, atol=1e-6)
        with pytest.raises(BackendError, match="missing input 'x'"):
            runner.infer({})
    finally:
        runner.close()


@pytest.mark.parametrize("transfers", [True, False])
def test_timed_runs_bind_device_buffers_and_are_timed_by_events(no_probe, mlp, feed, transfers: bool) -> None:
    ort = FakeOrt()
    runner = loaded(cuda_backend(ort), mlp)
    try:
        session = runner.timed_session(feed, MeasureSettings(transfers=transfers))
        try:
            times = session.run(4)
        finally:
            session.close()
        assert session.clock == "cuda-events"
        assert session.mode["cuda_graph"] is False and session.mode["provider_sync"] is False
        assert session.warnings == []
        # The fake GPU's clock: one H2D, the compute, one D2H per iteration.
        assert times.compute == pytest.approx([COMPUTE_MS] * 4)
        expected = H2D_MS + COMPUTE_MS + D2H_MS if transfers else COMPUTE_MS
        assert times.latency == pytest.approx([expected] * 4)
        runs = ort.sessions[-1].runs_with_binding
        assert all(r == {"disable_synchronize_execution_providers": "1"} for r in runs)
        assert len(runs) == 1 + 4  # the check, then the timed runs
    finally:
        runner.close()


def test_work_off_the_plugins_stream_falls_back_to_synchronized_runs(no_probe, mlp, feed) -> None:
    ort = FakeOrt(off_stream=True)
    runner = loaded(cuda_backend(ort), mlp)
    try:
        session = runner.timed_session(feed, FAST)
        session.run(2)
        session.close()
        assert session.mode["provider_sync"] is True
        assert session.warnings == [
            "onnxruntime's work did not all run on the plugin's CUDA stream; each timed run waits for "
            "the provider to synchronize"
        ]
        assert ort.sessions[-1].runs_with_binding[-1] == {}
    finally:
        runner.close()


def test_outputs_never_written_are_an_error_not_a_timing(no_probe, mlp, feed) -> None:
    runner = loaded(cuda_backend(FakeOrt(writes_nothing=True)), mlp)
    try:
        with pytest.raises(BackendError, match="did not reproduce onnxruntime's own outputs"):
            runner.timed_session(feed, FAST)
        assert len(GPU.memory) == 0  # the buffers of the refused session were freed
    finally:
        runner.close()


def test_cuda_graph_where_the_model_allows_it(no_probe, mlp, feed) -> None:
    ort = FakeOrt()
    runner = loaded(cuda_backend(ort), mlp)
    try:
        session = runner.timed_session(feed, MeasureSettings(cuda_graph=True))
        session.run(2)
        session.close()
        graph_session = ort.sessions[-1]
        assert graph_session.providers[0][1]["enable_cuda_graph"] == "1"
        assert len(graph_session.runs_with_binding) == gpu.GRAPH_CAPTURE_RUNS + 1 + 2
        assert session.mode["cuda_graph"] is True and session.mode["cuda_graph_requested"] is True
    finally:
        runner.close()


def test_cuda_graph_refused_by_onnxruntime_times_plain_runs_and_says_why(no_probe, mlp, feed) -> None:
    refusal = (
        "This session cannot use the graph capture feature as requested by the user as all compute graph "
        "nodes have not been partitioned to the CUDAExecutionProvider"
    )
    runner = loaded(cuda_backend(FakeOrt(graph_refusal=refusal)), mlp)
    try:
        session = runner.timed_session(feed, MeasureSettings(cuda_graph=True))
        session.close()
        assert session.mode["cuda_graph"] is False and session.mode["cuda_graph_requested"] is True
        assert session.warnings == [
            f"CUDA graph not used (onnxruntime could not create a session: {refusal}); timed plain runs instead"
        ]
    finally:
        runner.close()


def test_device_fingerprint_comes_from_the_device(no_probe) -> None:
    assert cuda_backend().device_fingerprint(BuildSpec()) == {
        "gpu_name": "Fake GPU", "compute_capability": "9.0", "sm_count": 132, "provider": CUDA,
    }


# -- TensorRT-RTX availability -----------------------------------------------------------------


class FakeDevice:
    def __init__(self, ep_name: str, kind: str = "GPU") -> None:
        self.ep_name = ep_name
        self.device = types.SimpleNamespace(type=f"OrtHardwareDeviceType.{kind}")


class RtxOrt(FakeOrt):
    def __init__(self, *, register_error: str = "", devices: tuple[str, ...] = (), log: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._register_error = register_error
        self._devices = [FakeDevice(name) for name in devices]
        self._log = log

    def register_execution_provider_library(self, name: str, path: str) -> None:
        if self._log:
            os.write(2, self._log.encode() + b"\n")
        if self._register_error:
            raise RuntimeError(self._register_error)

    def get_ep_devices(self) -> list[FakeDevice]:
        return list(self._devices)


class FakePlugin:
    __file__ = "/nowhere/onnxruntime_ep_nv_tensorrt_rtx/__init__.py"

    @staticmethod
    def get_library_path() -> str:
        return "/nowhere/libonnxruntime_providers_nv_tensorrt_rtx.so"


@pytest.fixture
def fresh_registrations(monkeypatch: pytest.MonkeyPatch):
    from pytest_trt.backends import onnxruntime_trt_rtx

    monkeypatch.setattr(onnxruntime_trt_rtx, "_REGISTERED", {})


def test_rtx_library_that_fails_to_load_says_why(fresh_registrations) -> None:
    error = "Failed to load library libonnxruntime_providers_nv_tensorrt_rtx.so with error: libcuda.so.1: cannot open"
    backend = OnnxRuntimeTrtRtxBackend(ort=RtxOrt(register_error=error), plugin=FakePlugin, cuda=FakeCuda())
    assert backend.availability().reason == f"onnxruntime could not load the TensorRT-RTX provider library: {error}"


def test_rtx_refusing_this_gpu_is_reported_in_its_words(fresh_registrations) -> None:
    said = "[NvTensorRTRTX EP] The execution provider only supports RTX devices with compute capabilities 86, 89, 120 and above"
    log = f"2026-12-01 [W:onnxruntime:Default, ep.cc:1 GetSupportedDevices] {said}"
    backend = OnnxRuntimeTrtRtxBackend(ort=RtxOrt(log=log), plugin=FakePlugin, cuda=FakeCuda())
    assert backend.availability().reason == f"NvTensorRTRTXExecutionProvider offers no device on this machine: {said}"


def test_rtx_missing_package_and_old_onnxruntime(fresh_registrations, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def no_plugin(name: str, *args):
        if name == "onnxruntime_ep_nv_tensorrt_rtx":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_plugin)
    assert OnnxRuntimeTrtRtxBackend(ort=RtxOrt(), cuda=FakeCuda()).availability().reason == (
        "onnxruntime-ep-nv-tensorrt-rtx-cu13 is not installed (pip install onnxruntime-ep-nv-tensorrt-rtx-cu13)"
    )
    assert OnnxRuntimeTrtRtxBackend(ort=FakeOrt(), cuda=FakeCuda()).availability().reason == (
        "onnxruntime 1.30.0 cannot load plugin execution providers (1.24 or later can)"
    )


def test_tensorrt_backend_without_the_provider_compiled_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "package_version", {"onnxruntime": "1.32.0"}.get)
    status = OnnxRuntimeTensorRTBackend(ort=FakeOrt(providers=(CPU,)), cuda=FakeCuda()).availability()
    assert status.reason.startswith("onnxruntime-gpu is not installed: onnxruntime 1.30.0 has no TensorrtExecutionProvider")


def test_rtx_refusal_at_session_creation_is_reported_when_it_lists_no_device(fresh_registrations) -> None:
    said = "[NvTensorRTRTX EP] The execution provider only supports RTX devices with compute capabilities 86, 89, 120 and above"

    class RefusesByName(RtxOrt):
        def InferenceSession(self, source, sess_options=None, providers=None, **kwargs):
            if providers == ["NvTensorRTRTXExecutionProvider"]:
                raise RuntimeError(f"[ONNXRuntimeError] : 1 : FAIL : {said}")
            return super().InferenceSession(source, sess_options, providers, **kwargs)

    backend = OnnxRuntimeTrtRtxBackend(ort=RefusesByName(), plugin=FakePlugin, cuda=FakeCuda())
    assert backend.availability().reason == f"NvTensorRTRTXExecutionProvider offers no device on this machine: {said}"


def test_provider_words_prefer_the_refusal_over_verbose_chatter() -> None:
    from pytest_trt.backends.onnxruntime_trt_rtx import provider_words

    lines = [
        "\x1b[0;93m2026-12-01 [V:onnxruntime:Default, ep.cc:3 Create] [NvTensorRTRTX EP] creating factory\x1b[m",
        "2026-12-01 [I:onnxruntime:Default, ep.cc:9 Devices] [NvTensorRTRTX EP] The execution provider only supports "
        "RTX devices with compute capabilities 86, 89, 120 and above",
        "2026-12-01 [W:onnxruntime:Default, other.cc:1 x] unrelated warning",
    ]
    assert provider_words(lines) == (
        "[NvTensorRTRTX EP] The execution provider only supports RTX devices with compute capabilities 86, 89, 120 and above"
    )
    assert provider_words(lines[:1] + lines[2:]) == ""  # chatter is no reason


@pytest.mark.parametrize(("cards", "tail"), [
    ([], "; it looks for GPUs under /sys/class/drm, which has no card on this machine"),
    (["/sys/class/drm/card0"], ""),
])
def test_rtx_offered_no_gpu_by_onnxruntime_says_so(fresh_registrations, monkeypatch, cards, tail) -> None:
    from pytest_trt.backends import onnxruntime_trt_rtx

    monkeypatch.setattr(onnxruntime_trt_rtx.glob, "glob", lambda pattern: cards)
    ort = RtxOrt()
    ort._devices = [FakeDevice("CPUExecutionProvider", "CPU")]
    backend = OnnxRuntimeTrtRtxBackend(ort=ort, plugin=FakePlugin, cuda=FakeCuda())
    assert backend.availability().reason == (
        "NvTensorRTRTXExecutionProvider offers no device on this machine: onnxruntime found no GPU to offer it "
        "(it lists: CPU)" + tail
    )


def test_device_memory_is_what_the_gpu_holds_beyond_its_use_before_the_session_opened(no_probe, mlp) -> None:
    from contract.fake_cuda import FakeDeviceMemory

    runner = loaded(cuda_backend(), mlp)
    try:
        before = runner.device_memory()
        arena = FakeDeviceMemory(3 * 2**20)  # what the session's arena would grow by
        assert runner.device_memory() == before + 3 * 2**20
        arena.free()
    finally:
        runner.close()


def test_several_profiles_repeat_each_input_in_the_tensorrt_providers_shape_options() -> None:
    two = [{"x": ((1, 3), (2, 3), (4, 3))}, {"x": ((8, 3), (16, 3), (32, 3))}]
    options = tensorrt_provider_options(BuildSpec(), two, None)
    assert options["trt_profile_min_shapes"] == "x:1x3,x:8x3"
    assert options["trt_profile_opt_shapes"] == "x:2x3,x:16x3"
    assert options["trt_profile_max_shapes"] == "x:4x3,x:32x3"
    assert rtx_provider_options(BuildSpec(), two, None)["nv_profile_max_shapes"] == "x:4x3,x:32x3"
