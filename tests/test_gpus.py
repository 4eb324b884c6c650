"""--trt-gpus without a GPU: the value's rule, the pinning of xdist workers, the device every
backend is handed (CUDA layer, onnxruntime provider options, TensorRT), and one measurement lock
per GPU. Runs of the plugin: tests/test_plugin_gpus.py; on a GPU: tests/gpu/test_gpus_gpu.py."""

from __future__ import annotations

import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
from contract import fake_trt
from contract.fake_cuda import GPU, FakeCuda
from contract.fake_ort import FakeBinding, FakeOrt

from pytest_trt import backends, fingerprint
from pytest_trt.backends import onnxruntime_gpu as gpu
from pytest_trt.backends.onnxruntime_cuda import OnnxRuntimeCudaBackend
from pytest_trt.backends.onnxruntime_tensorrt import OnnxRuntimeTensorRTBackend, tensorrt_provider_options
from pytest_trt.backends.tensorrt import TensorRTBackend
from pytest_trt.model import LoadedModel, load_model
from pytest_trt.run.gpus import GpuSelection, GpusError, parse_gpus, pinned, worker_number
from pytest_trt.specs import BuildSpec, MeasureSettings
from pytest_trt.timing.lock import MeasureLockTimeout, _lock_name, measuring
from pytest_trt.types import BackendContext

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"


@pytest.fixture(autouse=True)
def fresh_gpu():
    GPU.reset()
    yield
    GPU.reset()


@pytest.fixture(scope="module")
def mlp() -> LoadedModel:
    return load_model(MODELS / "mlp.onnx")


# -- the value -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "count", "gpus"), [
    ("all", 4, (0, 1, 2, 3)),
    ("ALL", 2, (0, 1)),
    ("2", 4, (0, 1)),
    ("0,2,3", 4, (0, 2, 3)),
    (" 3, 1 ", 4, (3, 1)),
    ("3,", 4, (3,)),
])
def test_a_value_names_the_gpus_of_this_host(text: str, count: int, gpus: tuple[int, ...]) -> None:
    assert parse_gpus(text).resolve(count) == gpus


@pytest.mark.parametrize(("text", "message"), [
    ("", "invalid GPU selection ''"),
    ("x", "invalid GPU selection 'x'"),
    ("0", "invalid GPU selection '0'"),
    ("-1", "invalid GPU selection '-1'"),
    ("0,x", "invalid GPU index list '0,x'"),
    ("0,-1", "invalid GPU index list '0,-1'"),
    ("0,,1", "invalid GPU index list '0,,1'"),
    ("1,0,1", "'1,0,1' names GPU 1 more than once"),
])
def test_a_malformed_value_is_refused_naming_it(text: str, message: str) -> None:
    with pytest.raises(GpusError, match=message.replace("(", r"\(")):
        parse_gpus(text)


@pytest.mark.parametrize(("text", "count", "message"), [
    ("0,5", 2, "'0,5' names GPU 5, but this host has 2 GPUs (indices 0-1)"),
    ("4,7,1", 4, "'4,7,1' names GPU 4, 7, but this host has 4 GPUs (indices 0-3)"),
    ("3", 2, "'3' asks for the first 3 GPUs, but this host has 2 GPUs (indices 0-1)"),
    ("all", 0, "'all' names GPUs, but no CUDA device is visible here"),
])
def test_gpus_this_host_does_not_have_are_refused_naming_them(text: str, count: int, message: str) -> None:
    with pytest.raises(GpusError) as info:
        parse_gpus(text).resolve(count)
    assert str(info.value) == message


def test_workers_take_the_gpus_round_robin() -> None:
    assert [pinned((0, 1), f"gw{k}") for k in range(4)] == [0, 1, 0, 1]
    assert [pinned((0, 2, 3), f"gw{k}") for k in range(5)] == [0, 2, 3, 0, 2]
    assert pinned((2, 0), None) == 2 and pinned((2, 0), "") == 2  # no xdist: the first of the list
    assert worker_number("gw12") == 12 and worker_number("main") == 0


# -- every backend on the process's GPU ---------------------------------------------------------


@pytest.mark.parametrize("name", ["tensorrt", "onnxruntime-tensorrt", "onnxruntime-cuda", "onnxruntime-trt-rtx"])
def test_a_session_hands_its_gpu_to_every_gpu_backend(name: str) -> None:
    made = backends.create(name, BackendContext(gpu=3))
    assert made.gpu == 3  # type: ignore[attr-defined]


def test_the_cuda_provider_runs_on_the_gpu_its_buffers_and_stream_are_on(
    mlp: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu, "library_load_error", lambda ort, library: "")
    ort, cuda = FakeOrt(), FakeCuda(device=1)
    backend = OnnxRuntimeCudaBackend(ort=ort, cuda=cuda, gpu=1)
    assert backend.availability().ok
    runner = backend.load(backend.build(mlp, BuildSpec()), mlp, BuildSpec())
    try:
        assert runner.device == "cuda:1"
        assert [s.providers[0][1]["device_id"] for s in ort.sessions] == ["1", "1", "1"]  # probe, build, load
        cuda.current = None
        feed = {"x": np.zeros((32, 256), np.float32)}
        session = runner.timed_session(feed, MeasureSettings(warmup_ms=0, min_iterations=1, min_duration_ms=0))
        try:
            session.run(1)
        finally:
            session.close()
        assert cuda.current == 1  # its buffers and stream were made with GPU 1 current
    finally:
        runner.close()


def test_the_tensorrt_provider_options_name_the_gpu() -> None:
    backend = OnnxRuntimeTensorRTBackend(ort=FakeOrt(), cuda=FakeCuda(device=2), gpu=2)
    assert tensorrt_provider_options(BuildSpec(), {}, None, device=backend.gpu)["device_id"] == "2"
    assert gpu.cuda_provider_options("fp32", None, device=2)["device_id"] == "2"
    assert gpu.cuda_provider_options("fp32", None)["device_id"] == "0"  # without --trt-gpus: GPU 0


def test_buffers_are_bound_on_the_runners_gpu() -> None:
    cuda = FakeCuda(device=3)
    buffers = gpu._Buffers(cuda, {"x": np.zeros((2, 2), np.float32)}, {"y": np.zeros((2,), np.float32)})
    try:
        binding = buffers.bind(types.SimpleNamespace(io_binding=FakeBinding))
        assert binding.devices == {("cuda", 3)}
    finally:
        buffers.free()


def test_tensorrt_builds_loads_and_runs_with_its_gpu_current(mlp: LoadedModel) -> None:
    cuda = FakeCuda(device=2)
    backend = TensorRTBackend(trt_module=fake_trt, cuda=cuda, gpu=2)
    artifact = backend.build(mlp, BuildSpec(shapes=(("x", (4, 256)),)))
    assert cuda.current == 2  # set before the builder was made
    cuda.current = None
    runner = backend.load(artifact, mlp, BuildSpec())
    try:
        assert cuda.current == 2 and runner.device == "cuda:2"
    finally:
        runner.close()


# -- one measurement lock per GPU ---------------------------------------------------------------


@pytest.fixture
def two_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # GPU 2 is GPU 0 seen under another index (as two CUDA_VISIBLE_DEVICES orders can show it).
    uuids = {0: "aa" * 16, 1: "bb" * 16, 2: "aa" * 16}
    monkeypatch.setattr(fingerprint, "gpu_facts", lambda index=0: {"uuid": uuids[index]})


def test_two_gpus_have_two_locks_and_one_gpu_one(two_gpus: None) -> None:
    assert _lock_name("cuda:0") != _lock_name("cuda:1")
    assert _lock_name("cuda:0") == _lock_name("cuda:2")


def test_a_gpu_measures_while_another_gpu_is_held(two_gpus: None) -> None:
    with measuring("cuda:0"), measuring("cuda:1", timeout_s=0.5) as other:
        assert other.device == "cuda:1"


def test_the_same_gpu_waits_for_its_lock_under_any_index(two_gpus: None) -> None:
    with measuring("cuda:0"):
        for device in ("cuda:0", "cuda:2"):
            with pytest.raises(MeasureLockTimeout, match=f"measurement lock of {device}"), measuring(device, timeout_s=0.2):
                pass


def test_a_selection_is_plain_data() -> None:
    assert parse_gpus("0,2") == GpuSelection("0,2", indices=(0, 2))
