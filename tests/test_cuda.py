"""The CUDA layer without a GPU: status mapping through a fake cudart, the availability decision
on this machine, binding selection, and the pycuda face's shape. The real thing runs in tests/gpu/."""

from __future__ import annotations

import ctypes
import enum
import importlib.util
import inspect
import types

import numpy as np
import pytest
from contract.fake_cuda import FakeCuda, FakeStream

from pytest_trt.backends.base import BackendUnavailable
from pytest_trt.cuda import runtime as cuda
from pytest_trt.cuda.runtime import CudaApi, CudaError, CudaPython, EventTimedLoop


class Err(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNotReady = 600


def fake_cudart(**calls) -> types.SimpleNamespace:
    """A cudart whose functions return the given tuples (cuda-python's ``(status, *results)``)."""

    def error_name(status: Err) -> tuple:
        return (Err.cudaSuccess, Err(status).name.encode())

    rt = types.SimpleNamespace(cudaError_t=Err, cudaGetErrorName=error_name, log=[])
    calls = {"cudaSetDevice": (Err.cudaSuccess,), **calls}
    for name, result in calls.items():
        setattr(rt, name, (lambda n, r: lambda *args: rt.log.append((n, *args)) or r)(name, result))
    return rt


def test_a_failed_call_raises_naming_the_call_and_the_error() -> None:
    api = CudaPython(fake_cudart(cudaMalloc=(Err.cudaErrorMemoryAllocation, None)))
    with pytest.raises(CudaError) as excinfo:
        api.device_alloc(1 << 40)
    assert (excinfo.value.call, excinfo.value.error) == ("cudaMalloc", "cudaErrorMemoryAllocation")
    assert str(excinfo.value) == "cudaMalloc failed: cudaErrorMemoryAllocation"


def test_results_are_unwrapped() -> None:
    api = CudaPython(fake_cudart(one=(Err.cudaSuccess, 42), none=(Err.cudaSuccess,), two=(Err.cudaSuccess, 1, 2)))
    assert api.call("one") == 42
    assert api.call("none") is None
    assert api.call("two") == (1, 2)


@pytest.mark.parametrize(
    ("result", "ok", "reason"),
    [
        ((Err.cudaErrorInsufficientDriver, None), False, "no usable CUDA driver or GPU (cudaGetDeviceCount: cudaErrorInsufficientDriver)"),
        ((Err.cudaSuccess, 0), False, "no CUDA device found"),
        ((Err.cudaSuccess, 2), True, ""),
    ],
)
def test_availability_is_decided_from_the_driver(result, ok, reason) -> None:
    status = CudaPython(fake_cudart(cudaGetDeviceCount=result)).available()
    assert status.ok is ok and reason in status.reason


@pytest.mark.skipif(importlib.util.find_spec("cuda") is None, reason="cuda-python is not installed")
def test_this_machine_without_a_driver_is_unavailable_with_the_reason() -> None:
    status = cuda.available("cuda-python")
    if status.ok:
        pytest.skip("this machine has a usable GPU")
    assert "cudaGetDeviceCount" in status.reason


def test_event_query_not_ready_is_false_and_other_errors_raise() -> None:
    rt = fake_cudart(cudaEventCreateWithFlags=(Err.cudaSuccess, 5), cudaEventQuery=(Err.cudaErrorNotReady,))
    rt.cudaEventDefault, rt.cudaEventBlockingSync, rt.cudaEventDisableTiming = 0, 1, 2
    event = CudaPython(rt).create_event()
    assert event.query() is False
    rt.cudaEventQuery = lambda e: (Err.cudaSuccess,)
    assert event.query() is True
    rt.cudaEventQuery = lambda e: (Err.cudaErrorInsufficientDriver,)
    with pytest.raises(CudaError, match="cudaEventQuery failed: cudaErrorInsufficientDriver"):
        event.query()


def test_device_properties_are_read_into_the_shared_shape() -> None:
    props = types.SimpleNamespace(
        name=b"NVIDIA H100 80GB HBM3", major=9, minor=0, multiProcessorCount=132, totalGlobalMem=80 * 2**30,
        uuid=types.SimpleNamespace(bytes=bytes(range(16))),
    )
    api = CudaPython(fake_cudart(
        cudaGetDeviceProperties=(Err.cudaSuccess, props),
        cudaDriverGetVersion=(Err.cudaSuccess, 13000),
        cudaRuntimeGetVersion=(Err.cudaSuccess, 13050),
    ))
    assert api.device_properties(0) == {
        "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "sm_count": 132, "total_memory_gb": 80.0,
        "driver_version": "13.0", "cuda_runtime_version": "13.5", "uuid": bytes(range(16)).hex(),
    }


def test_pinned_buffers_are_numpy_views_of_the_host_allocation() -> None:
    backing = (ctypes.c_byte * 64)()
    freed = []
    rt = fake_cudart(cudaMallocHost=(Err.cudaSuccess, ctypes.addressof(backing)), cudaFreeHost=(Err.cudaSuccess,))
    rt.cudaFreeHost = lambda ptr: freed.append(ptr) or (Err.cudaSuccess,)
    pinned = CudaPython(rt).pinned_empty((4, 2), np.float16)
    assert pinned.array.shape == (4, 2) and pinned.array.dtype == np.float16
    pinned.array[...] = 1.5
    assert np.frombuffer(backing, np.float16, count=8).tolist() == [1.5] * 8
    pinned.free()
    pinned.free()  # a second free is a no-op, not a double cudaFreeHost
    assert freed == [ctypes.addressof(backing)]


def test_get_cuda_api_checks_the_name_and_says_what_is_missing(monkeypatch) -> None:
    with pytest.raises(ValueError, match="--trt-cuda-api must be one of cuda-python, pycuda"):
        cuda.get_cuda_api("cupy")
    monkeypatch.setattr(cuda, "_installed", lambda module: False)
    with pytest.raises(BackendUnavailable, match="pycuda is not installed"):
        cuda.get_cuda_api("pycuda")
    assert not cuda.available().ok


def test_the_pycuda_face_has_every_method_of_cuda_api() -> None:
    from pytest_trt.cuda.pycuda_binding import PyCuda  # importable without pycuda; only PyCuda() needs it

    for name, member in vars(CudaApi).items():
        if callable(member) and not name.startswith("_"):
            assert inspect.signature(getattr(PyCuda, name)).parameters.keys() == inspect.signature(member).parameters.keys(), name


@pytest.mark.skipif(importlib.util.find_spec("pycuda") is None, reason="pycuda is not installed (it builds from source against a CUDA toolkit)")
def test_pycuda_without_a_gpu_is_unavailable_with_the_reason() -> None:
    status = cuda.available("pycuda")
    assert status.ok or "cuInit" in status.reason


def test_event_timed_loop_rejects_bad_arguments() -> None:
    api = FakeCuda()
    with pytest.raises(ValueError, match="sync must be 'blocking' or 'spin'"):
        EventTimedLoop(api, FakeStream(), lambda: True, sync="busy")
    loop = EventTimedLoop(api, FakeStream(), lambda: True)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        loop.run(0)


def test_a_refused_capture_falls_back_with_the_cuda_error_in_the_warning() -> None:
    class NoCaptureStream(FakeStream):
        def begin_capture(self) -> None:
            raise CudaError("cudaStreamBeginCapture", "cudaErrorStreamCaptureUnsupported")

    loop = EventTimedLoop(FakeCuda(), NoCaptureStream(), lambda: True, cuda_graph=True, transfers=False)
    assert loop.mode["cuda_graph"] is False
    assert loop.warnings == [
        "CUDA graph capture failed (cudaStreamBeginCapture failed: cudaErrorStreamCaptureUnsupported); timed plain enqueue instead"
    ]
    assert len(loop.run(3).latency) == 3


def test_an_enqueue_that_fails_is_an_error_not_a_timing() -> None:
    loop = EventTimedLoop(FakeCuda(), FakeStream(), lambda: False, transfers=False)
    with pytest.raises(CudaError, match="enqueue failed: returned False"):
        loop.run(1)


def test_the_binding_makes_its_gpu_current_before_it_allocates_or_makes_streams_and_events() -> None:
    rt = fake_cudart(
        cudaMalloc=(Err.cudaSuccess, 0x10), cudaStreamCreateWithFlags=(Err.cudaSuccess, 5),
        cudaEventCreateWithFlags=(Err.cudaSuccess, 6), cudaGetDeviceCount=(Err.cudaSuccess, 4),
    )
    rt.cudaStreamNonBlocking, rt.cudaEventDefault, rt.cudaEventBlockingSync, rt.cudaEventDisableTiming = 1, 0, 1, 2
    api = CudaPython(rt, device=2)
    api.device_alloc(16)
    api.create_stream()
    api.create_event()
    made = [call[0] for call in rt.log]
    assert made == ["cudaSetDevice", "cudaMalloc", "cudaSetDevice", "cudaStreamCreateWithFlags",
                    "cudaSetDevice", "cudaEventCreateWithFlags"]
    assert {call[1] for call in rt.log if call[0] == "cudaSetDevice"} == {2}
    assert api.device_count() == 4


def test_a_device_the_driver_refuses_is_a_cuda_error_naming_cuda_set_device() -> None:
    api = CudaPython(fake_cudart(cudaSetDevice=(Err.cudaErrorInsufficientDriver,)), device=7)
    with pytest.raises(CudaError, match="cudaSetDevice failed: cudaErrorInsufficientDriver"):
        api.device_alloc(16)
