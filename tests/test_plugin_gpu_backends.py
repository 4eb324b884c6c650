"""The onnxruntime GPU backends as users meet them where they cannot run: ``--trt-backend=NAME``
stops the session with the exact reason, in the words of whatever refused (the package, the
driver, the dynamic loader, the provider)."""

from __future__ import annotations

import importlib.util
import sys
import types

import onnxruntime
import pytest
from contract.fake_ort import FakeOrt

from pytest_trt.backends import onnxruntime_gpu, onnxruntime_trt_rtx
from pytest_trt.types import Availability

GPU_BUILD = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
PROVIDERS = ", ".join(onnxruntime.get_available_providers())
PASSING = "def test_ok():\n    pass\n"


def stopped(trt_pytester, *args: str) -> pytest.RunResult:
    trt_pytester.pytester.makepyfile(test_nothing=PASSING)
    result = trt_pytester.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    return result


@pytest.fixture
def gpu_build(monkeypatch: pytest.MonkeyPatch):
    """onnxruntime claims the GPU providers, as onnxruntime-gpu's build does."""
    providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(providers))
    monkeypatch.setattr(onnxruntime_gpu, "package_version", {"onnxruntime-gpu": "1.30.0"}.get)


def with_gpu(monkeypatch: pytest.MonkeyPatch, status: Availability) -> None:
    monkeypatch.setattr("pytest_trt.cuda.runtime.available", lambda name="": status)


@pytest.mark.skipif(GPU_BUILD, reason="this onnxruntime is a GPU build")
@pytest.mark.parametrize(("backend", "title", "provider"), [
    ("onnxruntime-cuda", "onnxruntime's CUDA provider", "CUDAExecutionProvider"),
    ("onnxruntime-tensorrt", "onnxruntime's TensorRT provider", "TensorrtExecutionProvider"),
])
def test_without_onnxruntime_gpu_the_session_stops_and_says_so(trt_pytester, backend, title, provider):
    result = stopped(trt_pytester, f"--trt-backend={backend}")
    result.stderr.fnmatch_lines([
        f"ERROR: pytest-trt: --trt-backend={backend}, but {title} is unavailable: onnxruntime-gpu is not installed: "
        f"onnxruntime {onnxruntime.__version__} has no {provider} (its providers: {PROVIDERS}); pip install onnxruntime-gpu"
    ])


def test_the_cpu_wheel_installed_over_the_gpu_one_is_named(trt_pytester, monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime_gpu, "package_version", {"onnxruntime": "1.30.0", "onnxruntime-gpu": "1.30.0"}.get)
    result = stopped(trt_pytester, "--trt-backend=onnxruntime-cuda")
    result.stderr.fnmatch_lines([
        "ERROR: pytest-trt: --trt-backend=onnxruntime-cuda, but onnxruntime's CUDA provider is unavailable: "
        f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider: onnxruntime 1.30.0 and onnxruntime-gpu "
        "1.30.0 are both installed and share one folder, and the CPU one won; pip uninstall -y onnxruntime "
        "onnxruntime-gpu, then pip install onnxruntime-gpu"
    ])


def test_no_gpu_stops_the_session_with_the_drivers_answer(trt_pytester, monkeypatch, gpu_build):
    with_gpu(monkeypatch, Availability(False, "no CUDA device found (cudaGetDeviceCount returned 0)"))
    result = stopped(trt_pytester, "--trt-backend=onnxruntime-cuda")
    result.stderr.fnmatch_lines([
        "ERROR: pytest-trt: --trt-backend=onnxruntime-cuda, but onnxruntime's CUDA provider is unavailable: "
        "no GPU: no CUDA device found (cudaGetDeviceCount returned 0)"
    ])


@pytest.mark.skipif(GPU_BUILD, reason="this onnxruntime is a GPU build")
def test_a_provider_library_that_does_not_load_is_named_with_the_loaders_words(trt_pytester, monkeypatch, gpu_build):
    # The CPU wheel has no TensorRT provider library: the loader says so, as it says
    # "libnvinfer.so.10: cannot open shared object file" where onnxruntime-gpu lacks TensorRT.
    with_gpu(monkeypatch, Availability(True))
    result = stopped(trt_pytester, "--trt-backend=onnxruntime-tensorrt")
    result.stderr.fnmatch_lines([
        "ERROR: pytest-trt: --trt-backend=onnxruntime-tensorrt, but onnxruntime's TensorRT provider is unavailable: "
        "onnxruntime cannot load libonnxruntime_providers_tensorrt.so: "
        "*/onnxruntime/capi/libonnxruntime_providers_tensorrt.so: cannot open shared object file: No such file or directory"
    ])


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime_ep_nv_tensorrt_rtx") is not None, reason="the TensorRT-RTX plugin is installed"
)
def test_without_the_trt_rtx_package_the_session_says_what_to_install(trt_pytester):
    result = stopped(trt_pytester, "--trt-backend=onnxruntime-trt-rtx")
    result.stderr.fnmatch_lines([
        "ERROR: pytest-trt: --trt-backend=onnxruntime-trt-rtx, but onnxruntime's TensorRT-RTX provider is unavailable: "
        "onnxruntime-ep-nv-tensorrt-rtx-cu13 is not installed (pip install onnxruntime-ep-nv-tensorrt-rtx-cu13)"
    ])


def test_trt_rtx_refusing_this_gpu_stops_the_session_in_the_providers_words(trt_pytester, monkeypatch):
    said = "[NvTensorRTRTX EP] The execution provider only supports RTX devices with compute capabilities 86, 89, 120 and above"

    class RefusingOrt(FakeOrt):
        def register_execution_provider_library(self, name: str, path: str) -> None:
            import os

            os.write(2, f"2026-12-01 10:00:00 [W:onnxruntime:Default, plugin_ep.cc:12 Enumerate] {said}\n".encode())

        def get_ep_devices(self) -> list:
            return []

    plugin = types.ModuleType("onnxruntime_ep_nv_tensorrt_rtx")
    plugin.get_library_path = lambda: "/nowhere/libonnxruntime_providers_nv_tensorrt_rtx.so"
    monkeypatch.setitem(sys.modules, "onnxruntime_ep_nv_tensorrt_rtx", plugin)
    monkeypatch.setattr(onnxruntime_gpu, "onnxruntime_status", lambda: (RefusingOrt(), Availability(True)))
    monkeypatch.setattr(onnxruntime_trt_rtx, "_REGISTERED", {})
    with_gpu(monkeypatch, Availability(True))
    result = stopped(trt_pytester, "--trt-backend=onnxruntime-trt-rtx")
    result.stderr.fnmatch_lines([
        "ERROR: pytest-trt: --trt-backend=onnxruntime-trt-rtx, but onnxruntime's TensorRT-RTX provider is unavailable: "
        f"NvTensorRTRTXExecutionProvider offers no device on this machine: {said}"
    ])


def test_require_gpu_lists_every_gpu_backend_that_cannot_run(trt_pytester, monkeypatch, gpu_build):
    with_gpu(monkeypatch, Availability(False, "no CUDA device found (cudaGetDeviceCount returned 0)"))
    result = stopped(trt_pytester, "--trt-require-gpu")
    result.stderr.fnmatch_lines([
        "ERROR: pytest-trt: --trt-require-gpu, but TensorRT is unavailable: *; "
        "onnxruntime's TensorRT provider is unavailable: no GPU: no CUDA device found (cudaGetDeviceCount returned 0); "
        "onnxruntime's CUDA provider is unavailable: no GPU: no CUDA device found (cudaGetDeviceCount returned 0)"
    ])


GATED = """
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=4)
@pytest.mark.trt_accuracy(rtol=1e-4, atol=1e-5)
@pytest.mark.trt_perf(max_latency_ms=1000.0, backend="onnxruntime-cuda")
@pytest.mark.trt_perf(max_latency_ms=1000.0, backend="onnxruntime")
def test_mlp(trt_engine):
    assert trt_engine.backend == "onnxruntime-cuda"
"""


@pytest.fixture
def fresh_machine_facts():
    """GPU facts are read once per process; this test fakes the GPU, so it reads them afresh,
    and so do the tests after it."""
    from contract.fake_cuda import GPU

    from pytest_trt import fingerprint

    GPU.reset()
    fingerprint.gpu_facts.cache_clear()
    yield
    GPU.reset()
    fingerprint.gpu_facts.cache_clear()


def test_a_gated_test_runs_end_to_end_on_a_faked_gpu_build(trt_pytester, monkeypatch, tmp_path, fresh_machine_facts):
    """The whole flow (engine cache, accuracy, event-timed perf, baseline, report) through the
    CUDA backend, with onnxruntime's GPU surface and the CUDA layer faked on the CPU."""
    from contract.fake_cuda import FakeCuda

    monkeypatch.setattr(onnxruntime_gpu, "onnxruntime_status", lambda: (FakeOrt(), Availability(True)))
    monkeypatch.setattr(onnxruntime_gpu, "library_load_error", lambda ort, library: "")
    with_gpu(monkeypatch, Availability(True))
    monkeypatch.setattr("pytest_trt.cuda.runtime.get_cuda_api", lambda name="", device=0: FakeCuda(device=device))
    trt_pytester.pytester.makepyfile(test_gated=GATED)
    report = tmp_path / "report.json"
    result = trt_pytester.run(
        "--trt-backend=onnxruntime-cuda", f"--trt-engine-cache={tmp_path / 'cache'}", f"--trt-report-json={report}",
        "--trt-update-baselines", f"--trt-baseline-dir={tmp_path / 'baselines'}",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pytest-trt: backend onnxruntime-cuda (--trt-backend=onnxruntime-cuda)"])
    import json

    (record,) = json.loads(report.read_text())["tests"]
    assert record["backend"] == "onnxruntime-cuda"
    assert record["perf"]["clock"] == "cuda-events"
    assert record["perf"]["mode"]["provider_sync"] is False
    # The fake GPU's clock: H2D 0.25 + compute 1.0 + D2H 0.5 ms per iteration.
    assert record["perf"]["latency"]["median"] == pytest.approx(1.75)
    assert record["perf"]["compute"]["median"] == pytest.approx(1.0)
    # Baselines belong to the GPU's hardware class, read from the device, not to the host CPU.
    classes = [p.name for p in (tmp_path / "baselines").iterdir() if not p.name.startswith(".")]
    assert classes == ["fake-gpu-80gb-cc9.0-132sm-drv13.0"]
