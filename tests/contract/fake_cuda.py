"""A CPU stand-in for the CUDA layer (``pytest_trt.cuda.runtime.CudaApi``), for adapter unit tests.

"Device" memory is numpy bytes keyed by fake pointers; work on a stream runs at once; a fake
clock advances by fixed amounts per copy and per compute so event timings are predictable.
``GPU`` is shared with ``fake_trt`` so that a fake engine can read and write device memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pytest_trt.backends.base import Availability
from pytest_trt.cuda.runtime import CudaError

H2D_MS = 0.25  # per input copy
COMPUTE_MS = 1.0  # per enqueue
D2H_MS = 0.5  # per output copy


@dataclass
class FakeGpu:
    memory: dict[int, np.ndarray] = field(default_factory=dict)
    clock_ms: float = 0.0
    capturing: list[Callable[[], None]] | None = None  # work recorded during stream capture
    _pointers: itertools.count = field(default_factory=lambda: itertools.count(0x1000, 0x1000))

    def run(self, work: Callable[[], None], cost_ms: float) -> None:
        def step() -> None:
            work()
            self.clock_ms += cost_ms

        if self.capturing is not None:
            self.capturing.append(step)
        else:
            step()

    def reset(self) -> None:
        self.memory.clear()
        self.clock_ms = 0.0
        self.capturing = None


GPU = FakeGpu()


class FakeDeviceMemory:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.ptr = next(GPU._pointers)
        GPU.memory[self.ptr] = np.zeros(max(nbytes, 1), np.uint8)

    def free(self) -> None:
        GPU.memory.pop(self.ptr, None)
        self.ptr = 0


class FakePinned:
    def __init__(self, shape: Sequence[int], dtype: np.dtype) -> None:
        self.array = np.zeros(tuple(shape), dtype)
        self.freed = False

    def free(self) -> None:
        self.freed = True


class FakeGraph:
    def __init__(self, steps: list[Callable[[], None]]) -> None:
        self.steps = steps

    def launch(self, stream: FakeStream) -> None:
        for step in self.steps:
            step()

    def close(self) -> None:
        self.steps = []


class FakeStream:
    handle = 7

    def synchronize(self) -> None:
        pass

    def begin_capture(self) -> None:
        GPU.capturing = []

    def end_capture(self) -> FakeGraph:
        steps, GPU.capturing = GPU.capturing or [], None
        return FakeGraph(steps)

    def close(self) -> None:
        pass


class FakeEvent:
    def __init__(self) -> None:
        self.time_ms: float | None = None

    def record(self, stream: FakeStream) -> None:
        def mark() -> None:
            self.time_ms = GPU.clock_ms

        GPU.run(mark, 0.0)

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def close(self) -> None:
        pass


class FakeCuda:
    name = "fake-cuda"

    def __init__(self, *, ok: bool = True, reason: str = "", device: int = 0, count: int = 1) -> None:
        self._availability = Availability(ok, reason)
        self.device = device
        self.count = count
        self.current: int | None = None  # the device use_device made current, as cudaSetDevice would

    def available(self) -> Availability:
        return self._availability

    def device_count(self) -> int:
        return self.count

    def use_device(self) -> None:
        self.current = self.device

    def device_properties(self, index: int = 0) -> dict:
        return {
            "gpu_name": "Fake GPU", "compute_capability": "9.0", "sm_count": 132, "total_memory_gb": 80.0,
            "driver_version": "13.0", "cuda_runtime_version": "13.0", "uuid": "00" * 16,
        }

    def device_alloc(self, nbytes: int) -> FakeDeviceMemory:
        self.use_device()
        return FakeDeviceMemory(nbytes)

    def pinned_empty(self, shape: Sequence[int], dtype: np.dtype) -> FakePinned:
        return FakePinned(shape, dtype)

    def create_stream(self) -> FakeStream:
        self.use_device()
        return FakeStream()

    def memory_in_use(self) -> int:
        return sum(block.nbytes for block in GPU.memory.values())

    def create_event(self, *, blocking_sync: bool = False, timing: bool = True) -> FakeEvent:
        return FakeEvent()

    def elapsed_ms(self, start: FakeEvent, end: FakeEvent) -> float:
        if start.time_ms is None or end.time_ms is None:
            raise CudaError("cudaEventElapsedTime", "cudaErrorInvalidResourceHandle")
        return end.time_ms - start.time_ms

    def copy_htod_async(self, dst: int, src: np.ndarray, stream: FakeStream) -> None:
        data = src.tobytes()

        def copy() -> None:
            GPU.memory[dst][: len(data)] = np.frombuffer(data, np.uint8)

        GPU.run(copy, H2D_MS)

    def copy_dtoh_async(self, dst: np.ndarray, src: int, stream: FakeStream) -> None:
        def copy() -> None:
            dst.reshape(-1).view(np.uint8)[:] = GPU.memory[src][: dst.nbytes]

        GPU.run(copy, D2H_MS)
