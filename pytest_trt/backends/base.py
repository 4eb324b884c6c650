"""The backend protocol: the one seam between shared logic and a runtime.

A backend turns a model plus a BuildSpec into an opaque serialized artifact (``build``), turns an
artifact back into a runnable engine (``load``), and runs it (``Runner``). Everything else
(hashing, inputs, caching, statistics, comparison, baselines, reports) lives outside backends.
The registry that names backends is ``pytest_trt.backends``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pytest_trt.errors import BackendError, BackendUnavailable, InferenceError
from pytest_trt.types import Artifact, Availability, HostCall, IterationTimes, TensorSpec

if TYPE_CHECKING:
    import numpy as np

    from pytest_trt.model import LoadedModel
    from pytest_trt.specs import BuildSpec, MeasureSettings

__all__ = [
    "Artifact",
    "Availability",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "HostCall",
    "InferenceError",
    "IterationTimes",
    "Runner",
    "TensorSpec",
    "TimedSession",
]


class TimedSession(Protocol):
    """A runner prepared for timing one fixed feed on its own clock (buffers bound, shapes set)."""

    clock: str  # "host" or "cuda-events"
    mode: dict[str, Any]  # the settings the numbers were taken in (cuda_graph, transfers, sync)
    warnings: list[str]  # e.g. "CUDA graph capture failed, timed plain enqueue"

    def run(self, iterations: int) -> IterationTimes: ...

    def close(self) -> None: ...


class Runner(Protocol):
    """A loaded engine, ready to run."""

    backend: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def timed_session(self, feed: Mapping[str, np.ndarray], settings: MeasureSettings) -> TimedSession | HostCall:
        """A session timed on the device's own clock, or, for a runner timed on the host clock,
        the call the timing loop times (it owns the host clock and the probe)."""
        ...

    def close(self) -> None: ...


def device_memory(runner: Runner) -> int | None:
    """The device memory a runner's engine and buffers take, where its backend can tell."""
    tell = getattr(runner, "device_memory", None)
    return int(tell()) if tell is not None else None


def device_memory_together(runners: Sequence[Runner]) -> int | None:
    """The device memory of runners open together: their sum, or, for runners that count the
    GPU's growth since they opened (onnxruntime's), the first one's count."""
    memory = [device_memory(r) for r in runners]
    if any(m is None for m in memory):
        return None
    since_open = getattr(runners[0], "device_memory_since_open", False)
    return max(m or 0 for m in memory) if since_open else sum(m or 0 for m in memory)


class Backend(Protocol):
    """A runtime. Cheap to construct; nothing heavy is imported until a method needs it."""

    name: str

    def availability(self) -> Availability:
        """Decide, without creating any runtime object that could crash, whether this can run."""
        ...

    def runtime_version(self) -> str:
        """Runtime name and full version, e.g. ``tensorrt 11.4.0.106`` (part of cache keys)."""
        ...

    def device_fingerprint(self, build: BuildSpec) -> dict[str, Any]:
        """What about the device makes an artifact valid to reuse (GPU name, CC, ...).

        For TensorRT engines built version/hardware compatible, only what that mode requires.
        """
        ...

    def build(self, model: LoadedModel, build: BuildSpec) -> Artifact: ...

    def load(self, artifact: Artifact, model: LoadedModel, build: BuildSpec) -> Runner: ...


@runtime_checkable
class ReadsIntermediates(Protocol):
    """A backend that returns a model's intermediate tensors as its own engine computes them
    (TensorRT: the tensors marked as network outputs at build)."""

    def intermediate_tensors(
        self, model: LoadedModel, build: BuildSpec, feed: Mapping[str, np.ndarray], names: Sequence[str]
    ) -> dict[str, np.ndarray]: ...


# (tensor names, feed) -> the tensors of a built model that were found, by name.
TensorReader = Callable[[Sequence[str], Mapping[str, "np.ndarray"]], dict[str, "np.ndarray"]]
