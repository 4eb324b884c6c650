"""The backend protocol: the one seam between shared logic and a runtime.

A backend turns a model plus a BuildSpec into an opaque serialized artifact (``build``), turns an
artifact back into a runnable engine (``load``), and runs it (``Runner``). Everything else
(hashing, inputs, caching, statistics, comparison, baselines, reports) lives outside backends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..model import LoadedModel
    from ..spec import BuildSpec, MeasureSettings


class BackendError(RuntimeError):
    """A backend could not build, load or run; the message says which step and why."""


class BackendUnavailable(BackendError):
    """The backend cannot run on this machine (missing package, no GPU); ``reason`` says why."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the engine sees it. Dynamic dims are None."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


@dataclass
class Artifact:
    """What ``build`` returns: bytes to cache plus JSON-able facts about the build."""

    data: bytes
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class IterationTimes:
    """Per-iteration timings in milliseconds, one list entry per iteration.

    ``latency`` is what budgets apply to: host wall time per query for host backends; for GPU
    backends, trtexec's "Latency" (H2D + compute + D2H on the event timeline, or compute alone
    when transfers are off). The other phases are filled where the backend can tell them apart.
    ``span_ms`` is the wall (or event-timeline) time of the whole batch of iterations, so
    throughput = queries / span, as trtexec computes it.
    """

    latency: list[float]
    span_ms: float
    compute: list[float] | None = None
    h2d: list[float] | None = None
    d2h: list[float] | None = None
    enqueue: list[float] | None = None
    probe: list[float] | None = None  # host-speed probe times (host_probe.py), not per iteration
    after_probe: list[int] | None = None  # indices of iterations run right after a probe


class TimedSession(Protocol):
    """A runner prepared for timing one fixed feed (buffers bound, shapes set)."""

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

    def timed_session(self, feed: Mapping[str, np.ndarray], settings: MeasureSettings) -> TimedSession: ...

    def close(self) -> None: ...


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


_REGISTRY: dict[str, Callable[..., Backend]] = {}


def register(name: str, factory: Callable[..., Backend]) -> None:
    _REGISTRY[name] = factory


def get_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name``; ``options`` go to its factory (e.g. ``runtime="lean"``)."""
    if name not in _REGISTRY:
        from . import _builtin  # noqa: F401  (registers the built-in backends)
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None
    return factory(**options)
