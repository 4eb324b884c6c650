"""The face of a CUDA binding, as the backends and the event-timed loop use it: buffers, streams,
events, graphs. ``runtime.py`` implements it on cuda-python, ``pycuda_binding.py`` on pycuda; both
build device facts with ``device_facts``, so cache keys and baselines read one shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pytest_trt.types import Availability

if TYPE_CHECKING:
    import numpy as np


class DeviceMemory(Protocol):
    ptr: int
    nbytes: int

    def free(self) -> None: ...


class PinnedArray(Protocol):
    array: np.ndarray  # a numpy view of page-locked host memory

    def free(self) -> None: ...


class Stream(Protocol):
    handle: int

    def synchronize(self) -> None: ...

    def begin_capture(self) -> None: ...

    def end_capture(self) -> Graph: ...

    def close(self) -> None: ...


class Event(Protocol):
    def record(self, stream: Stream) -> None: ...

    def synchronize(self) -> None: ...

    def query(self) -> bool: ...

    def close(self) -> None: ...


class Graph(Protocol):
    def launch(self, stream: Stream) -> None: ...

    def close(self) -> None: ...


class CudaApi(Protocol):
    """What the TensorRT backend needs from a CUDA binding. A binding works on one GPU,
    ``device`` (an index as the CUDA runtime counts them): it makes that GPU the calling thread's
    current device before it allocates or makes streams and events (``use_device``)."""

    name: str
    device: int

    def available(self) -> Availability: ...

    def device_count(self) -> int: ...

    def use_device(self) -> None: ...

    def device_properties(self, index: int = 0) -> dict[str, Any]: ...

    def device_alloc(self, nbytes: int) -> DeviceMemory: ...

    def pinned_empty(self, shape: Sequence[int], dtype: np.dtype) -> PinnedArray: ...

    def create_stream(self) -> Stream: ...

    def memory_in_use(self) -> int:
        """Bytes of the current device's memory in use (total - free, cudaMemGetInfo): every
        process's, so differences are only this process's where nothing else runs."""
        ...

    def create_event(self, *, blocking_sync: bool = False, timing: bool = True) -> Event: ...

    def elapsed_ms(self, start: Event, end: Event) -> float: ...

    def copy_htod_async(self, dst: int, src: np.ndarray, stream: Stream) -> None: ...

    def copy_dtoh_async(self, dst: np.ndarray, src: int, stream: Stream) -> None: ...


def device_facts(
    *, name: str, major: int, minor: int, sm_count: int, total_memory: int, driver: int, runtime: int, uuid: str
) -> dict[str, Any]:
    """GPU facts in the one shape that cache keys and baselines read (both bindings use it)."""

    def version(v: int) -> str:  # CUDA encodes 13.0 as 13000
        return f"{v // 1000}.{(v % 1000) // 10}"

    return {
        "gpu_name": name,
        "compute_capability": f"{major}.{minor}",
        "sm_count": int(sm_count),
        "total_memory_gb": round(total_memory / 2**30, 1),
        "driver_version": version(driver),
        "cuda_runtime_version": version(runtime),
        "uuid": uuid,
    }
