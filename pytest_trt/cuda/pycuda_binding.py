"""``CudaApi`` on pycuda, for projects that already live in pycuda (``--trt-cuda-api=pycuda``).

It uses the device's primary context (``pycuda.autoprimaryctx``), the one the CUDA runtime and
TensorRT use. CUDA graph capture is not offered here: ``begin_capture`` raises ``CudaError``, so a
``cuda_graph=True`` measurement falls back to plain enqueue with a warning.

Not run anywhere: pycuda builds from source against a CUDA toolkit, which neither the CPU box nor
the GPU machine used for verification had; its tests skip with that reason (docs/tensorrt.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from pytest_trt.cuda.api import Event, Graph, PinnedArray, Stream, device_facts
from pytest_trt.errors import CudaError
from pytest_trt.types import Availability

_CU_STREAM_NON_BLOCKING = 1  # CUstream_flags: pycuda does not name it


class _HostAllocation(Protocol):
    """pycuda's owner of page-locked memory (the ``base`` of a ``pagelocked_empty`` array)."""

    def free(self) -> None: ...


class PyCuda:
    name = "pycuda"

    def __init__(self, *, device: int = 0) -> None:
        import pycuda.driver as drv

        self.drv = drv
        self.device = device
        self._context: Any = None  # the primary context of ``device`` when it is not GPU 0

    def call(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one pycuda call; its exceptions become ``CudaError`` naming the call."""
        try:
            return fn(*args)
        except self.drv.Error as exc:
            raise CudaError(name, type(exc).__name__, str(exc)) from exc

    def available(self) -> Availability:
        try:
            self.drv.init()
            count = self.drv.Device.count()
        except self.drv.Error as exc:
            return Availability(False, f"no usable CUDA driver or GPU (cuInit: {exc})")
        if count < 1:
            return Availability(False, "no CUDA device found (cuDeviceGetCount returned 0)")
        import pycuda.autoprimaryctx  # noqa: F401  (retain and push the primary context)

        return Availability(True)

    def device_count(self) -> int:
        self.call("cuInit", self.drv.init)
        return int(self.call("cuDeviceGetCount", self.drv.Device.count))

    def use_device(self) -> None:
        """``autoprimaryctx`` makes GPU 0's primary context current; another GPU's is pushed
        over it once, so that what this binding makes next belongs to that GPU."""
        if self.device == 0 or self._context is not None:
            return
        dev = self.call("cuDeviceGet", self.drv.Device, self.device)
        self._context = self.call("cuDevicePrimaryCtxRetain", dev.retain_primary_context)
        self.call("cuCtxPushCurrent", self._context.push)

    def device_properties(self, index: int = 0) -> dict[str, Any]:
        dev = self.call("cuDeviceGet", self.drv.Device, index)
        major, minor = dev.compute_capability()
        cuda_major, cuda_minor, _ = self.drv.get_version()
        return device_facts(
            name=dev.name(),
            major=major,
            minor=minor,
            sm_count=dev.get_attribute(self.drv.device_attribute.MULTIPROCESSOR_COUNT),
            total_memory=dev.total_memory(),
            driver=self.drv.get_driver_version(),
            runtime=cuda_major * 1000 + cuda_minor * 10,
            uuid=dev.pci_bus_id(),  # pycuda exposes no UUID; the PCI bus id identifies the card
        )

    def device_alloc(self, nbytes: int) -> _PyCudaDeviceMemory:
        self.use_device()
        return _PyCudaDeviceMemory(self, nbytes)

    def pinned_empty(self, shape: Sequence[int], dtype: np.dtype) -> PinnedArray:
        self.use_device()
        array = self.call("cuMemHostAlloc", self.drv.pagelocked_empty, tuple(shape), np.dtype(dtype))
        return _PyCudaPinned(array, array.base)

    def create_stream(self) -> Stream:
        self.use_device()
        return _PyCudaStream(self)

    def memory_in_use(self) -> int:
        free, total = self.call("cuMemGetInfo", self.drv.mem_get_info)
        return int(total) - int(free)

    def create_event(self, *, blocking_sync: bool = False, timing: bool = True) -> Event:
        self.use_device()
        flags = 0
        if blocking_sync:
            flags |= self.drv.event_flags.BLOCKING_SYNC
        if not timing:
            flags |= self.drv.event_flags.DISABLE_TIMING
        return _PyCudaEvent(self, self.call("cuEventCreate", self.drv.Event, flags))

    def elapsed_ms(self, start: Event, end: Event) -> float:
        return float(self.call("cuEventElapsedTime", _PyCudaEvent.of(end).event.time_since, _PyCudaEvent.of(start).event))

    def copy_htod_async(self, dst: int, src: np.ndarray, stream: Stream) -> None:
        self.call("cuMemcpyHtoDAsync", self.drv.memcpy_htod_async, dst, src, _PyCudaStream.of(stream).stream)

    def copy_dtoh_async(self, dst: np.ndarray, src: int, stream: Stream) -> None:
        self.call("cuMemcpyDtoHAsync", self.drv.memcpy_dtoh_async, dst, src, _PyCudaStream.of(stream).stream)


class _PyCudaDeviceMemory:
    def __init__(self, api: PyCuda, nbytes: int) -> None:
        self._alloc = api.call("cuMemAlloc", api.drv.mem_alloc, max(nbytes, 1))
        self.ptr = int(self._alloc)
        self.nbytes = nbytes

    def free(self) -> None:
        self._alloc.free()
        self.ptr = 0


class _PyCudaPinned:
    def __init__(self, array: np.ndarray, allocation: _HostAllocation) -> None:
        self.array = array
        self._allocation = allocation

    def free(self) -> None:
        self._allocation.free()


class _PyCudaStream:
    def __init__(self, api: PyCuda) -> None:
        self._api = api
        self.stream = api.call("cuStreamCreate", api.drv.Stream, _CU_STREAM_NON_BLOCKING)
        self.handle = int(self.stream.handle)

    @staticmethod
    def of(stream: Stream) -> _PyCudaStream:
        """``stream`` as this binding's stream: another binding's stream has no pycuda object."""
        if not isinstance(stream, _PyCudaStream):
            raise TypeError(f"pycuda cannot use a stream of another CUDA binding ({type(stream).__name__})")
        return stream

    def synchronize(self) -> None:
        self._api.call("cuStreamSynchronize", self.stream.synchronize)

    def begin_capture(self) -> None:
        raise CudaError("cuStreamBeginCapture", "not offered by the pycuda CUDA layer (use --trt-cuda-api=cuda-python)")

    def end_capture(self) -> Graph:
        raise CudaError("cuStreamEndCapture", "not offered by the pycuda CUDA layer")

    def close(self) -> None:
        self.stream = None


class _PyCudaEvent:
    def __init__(self, api: PyCuda, event: Any) -> None:
        self._api = api
        self.event = event

    @staticmethod
    def of(event: Event) -> _PyCudaEvent:
        """``event`` as this binding's event: another binding's event has no pycuda object."""
        if not isinstance(event, _PyCudaEvent):
            raise TypeError(f"pycuda cannot time an event of another CUDA binding ({type(event).__name__})")
        return event

    def record(self, stream: Stream) -> None:
        self._api.call("cuEventRecord", self.event.record, _PyCudaStream.of(stream).stream)

    def synchronize(self) -> None:
        self._api.call("cuEventSynchronize", self.event.synchronize)

    def query(self) -> bool:
        return bool(self._api.call("cuEventQuery", self.event.query))

    def close(self) -> None:
        self.event = None
