"""The CUDA layer on cuda-python: device and pinned buffers, streams, events, async copies, graphs.

Every CUDA call goes through ``_call``, which checks the status and raises ``CudaError`` naming the
call and the CUDA error. ``pycuda_binding.py`` offers the same face (``CudaApi``) on pycuda;
``get_cuda_api`` picks one. ``EventTimedLoop`` is the GPU side of the measurement loop: trtexec's
per-iteration event timeline (H2D, compute, D2H, host enqueue time) on one non-blocking stream.

What ran where is stated in docs/tensorrt.md: this module ran for real on an H100/H200
(tests/gpu/, bench/gpu_cuda_layer.py) and against a fake ``cudart`` in unit tests.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from pytest_trt.cuda.api import CudaApi, DeviceMemory, Event, Graph, PinnedArray, Stream, device_facts
from pytest_trt.errors import BackendUnavailable, CudaError
from pytest_trt.types import Availability, IterationTimes

__all__ = [
    "CUDA_APIS",
    "CudaApi",
    "CudaError",
    "CudaPython",
    "DeviceMemory",
    "Event",
    "EventTimedLoop",
    "Graph",
    "PinnedArray",
    "Stream",
    "available",
    "device_count",
    "device_facts",
    "device_properties",
    "get_cuda_api",
]

CUDA_APIS = ("cuda-python", "pycuda")
# Iterations allowed in flight before the host waits: the GPU never idles between iterations,
# and the host cannot run arbitrarily far ahead of it (trtexec keeps two in flight as well).
INFLIGHT = 2


def get_cuda_api(name: str = "", device: int = 0) -> CudaApi:
    """The binding called ``name``, or the installed one (cuda-python first) when ``name`` is
    empty, working on GPU ``device``."""
    if name not in ("", *CUDA_APIS):
        raise ValueError(f"--trt-cuda-api must be one of {', '.join(CUDA_APIS)}; got {name!r}")
    if name in ("", "cuda-python") and _installed("cuda.bindings"):
        return CudaPython(device=device)
    if name in ("", "pycuda") and _installed("pycuda"):
        from pytest_trt.cuda.pycuda_binding import PyCuda

        return PyCuda(device=device)
    wanted = name or "cuda-python or pycuda"
    raise BackendUnavailable(f"{wanted} is not installed (pip install 'pytest-trt[tensorrt]')")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class CudaPython:
    """``CudaApi`` on cuda-python 12.x/13.x (``cuda.bindings.runtime``)."""

    name = "cuda-python"

    def __init__(self, cudart: ModuleType | None = None, *, device: int = 0) -> None:
        self.rt = cudart if cudart is not None else importlib.import_module("cuda.bindings.runtime")
        self.device = device

    def call(self, name: str, *args: Any) -> Any:
        """Call ``cudart.<name>(*args)``; raise ``CudaError`` unless it returned cudaSuccess.

        cuda-python returns ``(status, *results)``; this returns None, the one result, or a tuple.
        """
        status, *results = getattr(self.rt, name)(*args)
        if status != self.rt.cudaError_t.cudaSuccess:
            raise CudaError(name, self.error_name(status))
        if not results:
            return None
        return results[0] if len(results) == 1 else tuple(results)

    def error_name(self, status: Any) -> str:
        err, name = self.rt.cudaGetErrorName(status)
        if err != self.rt.cudaError_t.cudaSuccess:
            return f"CUDA error {int(status)}"
        return name.decode() if isinstance(name, bytes) else str(name)

    def available(self) -> Availability:
        # Decided from the driver alone: TensorRT objects made without a usable GPU crash on use.
        status, count = self.rt.cudaGetDeviceCount()
        if status != self.rt.cudaError_t.cudaSuccess:
            return Availability(False, f"no usable CUDA driver or GPU (cudaGetDeviceCount: {self.error_name(status)})")
        if count < 1:
            return Availability(False, "no CUDA device found (cudaGetDeviceCount returned 0)")
        return Availability(True)

    def device_count(self) -> int:
        return int(self.call("cudaGetDeviceCount"))

    def use_device(self) -> None:
        """Make ``device`` the calling thread's current GPU: memory, streams, events and the
        TensorRT objects made next belong to it (the current device is per thread)."""
        self.call("cudaSetDevice", self.device)

    def device_properties(self, index: int = 0) -> dict[str, Any]:
        props = self.call("cudaGetDeviceProperties", index)
        driver = self.call("cudaDriverGetVersion")
        runtime = self.call("cudaRuntimeGetVersion")
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return device_facts(
            name=name.rstrip("\x00"),
            major=props.major,
            minor=props.minor,
            sm_count=props.multiProcessorCount,
            total_memory=props.totalGlobalMem,
            driver=driver,
            runtime=runtime,
            uuid=bytes(props.uuid.bytes).hex(),
        )

    def device_alloc(self, nbytes: int) -> DeviceMemory:
        self.use_device()
        return _CudartDeviceMemory(self, nbytes)

    def pinned_empty(self, shape: Sequence[int], dtype: np.dtype) -> PinnedArray:
        self.use_device()
        return _CudartPinned(self, tuple(shape), np.dtype(dtype))

    def create_stream(self) -> Stream:
        self.use_device()
        return _CudartStream(self)

    def memory_in_use(self) -> int:
        free, total = self.call("cudaMemGetInfo")
        return int(total) - int(free)

    def create_event(self, *, blocking_sync: bool = False, timing: bool = True) -> Event:
        self.use_device()
        flags = self.rt.cudaEventDefault
        if blocking_sync:
            flags |= self.rt.cudaEventBlockingSync
        if not timing:
            flags |= self.rt.cudaEventDisableTiming
        return _CudartEvent(self, flags)

    def elapsed_ms(self, start: Event, end: Event) -> float:
        return float(self.call("cudaEventElapsedTime", _CudartEvent.of(start).handle, _CudartEvent.of(end).handle))

    def copy_htod_async(self, dst: int, src: np.ndarray, stream: Stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.call("cudaMemcpyAsync", dst, src.ctypes.data, src.nbytes, kind, stream.handle)

    def copy_dtoh_async(self, dst: np.ndarray, src: int, stream: Stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.call("cudaMemcpyAsync", dst.ctypes.data, src, dst.nbytes, kind, stream.handle)


def available(name: str = "") -> Availability:
    """Whether the CUDA binding ``name`` (or the installed one) sees a usable driver and GPU."""
    try:
        api = get_cuda_api(name)
    except BackendUnavailable as exc:
        return Availability(False, str(exc))
    return api.available()


def device_count(name: str = "") -> int:
    """How many GPUs the CUDA driver shows this process (``CUDA_VISIBLE_DEVICES`` applies)."""
    return get_cuda_api(name).device_count()


def device_properties(index: int = 0, name: str = "") -> dict[str, Any]:
    """GPU name, compute capability, SM count, memory, driver/runtime versions and UUID."""
    return get_cuda_api(name).device_properties(index)


class _CudartDeviceMemory:
    def __init__(self, api: CudaPython, nbytes: int) -> None:
        self._api = api
        self.nbytes = nbytes
        self.ptr = int(api.call("cudaMalloc", max(nbytes, 1)))

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            self._api.call("cudaFree", ptr)


class _CudartPinned:
    def __init__(self, api: CudaPython, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._api = api
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self._ptr = int(api.call("cudaMallocHost", max(nbytes, 1)))
        raw = (ctypes.c_byte * max(nbytes, 1)).from_address(self._ptr)
        # Byte view first so dtypes without a ctypes twin (float16) work.
        self.array = np.frombuffer(memoryview(raw), dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)

    def free(self) -> None:
        if self._ptr:
            ptr, self._ptr = self._ptr, 0
            self._api.call("cudaFreeHost", ptr)


class _CudartStream:
    def __init__(self, api: CudaPython) -> None:
        self._api = api
        # Non-blocking: TensorRT on the legacy default stream adds hidden device syncs.
        self._stream = api.call("cudaStreamCreateWithFlags", api.rt.cudaStreamNonBlocking)
        self.handle = int(self._stream)

    def synchronize(self) -> None:
        self._api.call("cudaStreamSynchronize", self._stream)

    def begin_capture(self) -> None:
        mode = self._api.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._api.call("cudaStreamBeginCapture", self._stream, mode)

    def end_capture(self) -> Graph:
        graph = self._api.call("cudaStreamEndCapture", self._stream)
        try:
            exe = self._api.call("cudaGraphInstantiate", graph, 0)
        except CudaError:
            self._api.call("cudaGraphDestroy", graph)
            raise
        return _CudartGraph(self._api, graph, exe)

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._api.call("cudaStreamDestroy", stream)


class _CudartEvent:
    def __init__(self, api: CudaPython, flags: int) -> None:
        self._api = api
        self._event = api.call("cudaEventCreateWithFlags", flags)
        self.handle = int(self._event)

    @staticmethod
    def of(event: Event) -> _CudartEvent:
        """``event`` as this binding's event: events of another binding have no cudart handle."""
        if not isinstance(event, _CudartEvent):
            raise TypeError(f"cuda-python cannot time an event of another CUDA binding ({type(event).__name__})")
        return event

    def record(self, stream: Stream) -> None:
        self._api.call("cudaEventRecord", self._event, stream.handle)

    def synchronize(self) -> None:
        self._api.call("cudaEventSynchronize", self._event)

    def query(self) -> bool:
        (status,) = self._api.rt.cudaEventQuery(self._event)
        if status == self._api.rt.cudaError_t.cudaErrorNotReady:
            return False
        if status != self._api.rt.cudaError_t.cudaSuccess:
            raise CudaError("cudaEventQuery", self._api.error_name(status))
        return True

    def close(self) -> None:
        if self._event is not None:
            event, self._event = self._event, None
            self._api.call("cudaEventDestroy", event)


class _CudartGraph:
    def __init__(self, api: CudaPython, graph: Any, exe: Any) -> None:
        self._api = api
        self._graph = graph
        self._exe = exe

    def launch(self, stream: Stream) -> None:
        self._api.call("cudaGraphLaunch", self._exe, stream.handle)

    def close(self) -> None:
        if self._exe is not None:
            exe, graph, self._exe, self._graph = self._exe, self._graph, None, None
            self._api.call("cudaGraphExecDestroy", exe)
            self._api.call("cudaGraphDestroy", graph)


@dataclass
class _IterationEvents:
    start: Event  # before H2D (the compute start when transfers are off)
    compute_start: Event
    compute_end: Event
    end: Event  # after D2H


class EventTimedLoop:
    """Times ``enqueue`` the way trtexec does: CUDA events per iteration on one stream.

    Per iteration: H2D copies of ``inputs`` (host array -> device pointer), the enqueue (or the
    replay of a CUDA graph captured from it), D2H copies of ``outputs``. Latency is H2D + compute
    + D2H on the event timeline, or compute alone when ``transfers`` is off; the host time of
    each enqueue call is measured with ``perf_counter``; throughput comes from ``span_ms``, the
    event-timeline time from the first iteration's start to the last one's end.
    """

    def __init__(
        self,
        api: CudaApi,
        stream: Stream,
        enqueue: Callable[[], bool],
        *,
        inputs: Sequence[tuple[int, np.ndarray]] = (),
        outputs: Sequence[tuple[np.ndarray, int]] = (),
        transfers: bool = True,
        sync: str = "blocking",
        cuda_graph: bool = False,
    ) -> None:
        if sync not in ("blocking", "spin"):
            raise ValueError(f"sync must be 'blocking' or 'spin', got {sync!r}")
        self._api = api
        self._stream = stream
        self._enqueue = enqueue
        self._inputs = list(inputs)
        self._outputs = list(outputs)
        self._transfers = transfers
        self._sync = sync
        self._events: list[_IterationEvents] = []
        self._graph: Graph | None = None
        self.clock = "cuda-events"
        self.warnings: list[str] = []
        if cuda_graph:
            self._graph = self._capture()
        self.mode: dict[str, Any] = {
            "clock": self.clock,
            "cuda_graph": self._graph is not None,
            "cuda_graph_requested": cuda_graph,
            "transfers": transfers,
            "sync": sync,
            "streams": 1,
            "inflight": INFLIGHT,
            "cuda_api": api.name,
        }

    def _capture(self) -> Graph | None:
        """Capture one enqueue; on failure warn and return None (plain enqueue is timed)."""
        # One plain enqueue first: TensorRT's first enqueue may allocate, which capture forbids.
        if not self._enqueue():
            raise CudaError("enqueue", "returned False before capture")
        self._stream.synchronize()
        try:
            self._stream.begin_capture()
        except CudaError as exc:
            self.warnings.append(f"CUDA graph capture failed ({exc}); timed plain enqueue instead")
            return None
        try:
            captured_ok = bool(self._enqueue())
        except Exception as exc:  # the capture must still be ended
            captured_ok = False
            self.warnings.append(f"enqueue raised under CUDA graph capture: {exc}")
        try:
            graph = self._stream.end_capture()
        except CudaError as exc:
            self.warnings.append(f"CUDA graph capture failed ({exc}); timed plain enqueue instead")
            return None
        if not captured_ok:
            graph.close()
            self.warnings.append(
                "CUDA graph capture failed (enqueue returned False under capture: the engine has "
                "operations not permitted in a graph); timed plain enqueue instead"
            )
            return None
        return graph

    def _launch(self) -> None:
        if self._graph is not None:
            self._graph.launch(self._stream)
        elif not self._enqueue():
            raise CudaError("enqueue", "returned False")

    def _wait(self, event: Event) -> None:
        if self._sync == "spin":
            while not event.query():
                pass
        else:
            event.synchronize()

    def _event(self) -> Event:
        return self._api.create_event(blocking_sync=self._sync == "blocking")

    def _grow(self, iterations: int) -> None:
        while len(self._events) < iterations:
            self._events.append(_IterationEvents(self._event(), self._event(), self._event(), self._event()))

    def run(self, iterations: int) -> IterationTimes:
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self._grow(iterations)
        enqueue_ms: list[float] = []
        stream = self._stream
        for i in range(iterations):
            if i >= INFLIGHT:
                self._wait(self._events[i - INFLIGHT].end)
            ev = self._events[i]
            ev.start.record(stream)
            if self._transfers:
                for dst, src in self._inputs:
                    self._api.copy_htod_async(dst, src, stream)
            ev.compute_start.record(stream)
            t0 = time.perf_counter()
            self._launch()
            enqueue_ms.append((time.perf_counter() - t0) * 1e3)
            ev.compute_end.record(stream)
            if self._transfers:
                for host, device in self._outputs:
                    self._api.copy_dtoh_async(host, device, stream)
            ev.end.record(stream)
        self._wait(self._events[iterations - 1].end)
        used = self._events[:iterations]
        ms = self._api.elapsed_ms
        compute = [ms(e.compute_start, e.compute_end) for e in used]
        if not self._transfers:
            return IterationTimes(
                latency=list(compute), span_ms=ms(used[0].start, used[-1].end), compute=compute, enqueue=enqueue_ms
            )
        h2d = [ms(e.start, e.compute_start) for e in used]
        d2h = [ms(e.compute_end, e.end) for e in used]
        return IterationTimes(
            latency=[a + b + c for a, b, c in zip(h2d, compute, d2h, strict=True)],
            span_ms=ms(used[0].start, used[-1].end),
            compute=compute,
            h2d=h2d,
            d2h=d2h,
            enqueue=enqueue_ms,
        )

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
        for ev in self._events:
            for event in (ev.start, ev.compute_start, ev.compute_end, ev.end):
                event.close()
        self._events.clear()
