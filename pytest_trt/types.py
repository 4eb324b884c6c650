"""Plain data shared by the backends, the CUDA layer and the timing loop: the leaf of the house.

Nothing here imports another pytest-trt module, so every layer may use these types without an
arrow running back up the flow. numpy is imported for annotations only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np


class SetupStep(str, Enum):
    """The step of making an engine (or its reference) that failed, as reports name it."""

    MODEL = "model"  # reading and checking the ONNX file
    EXPORT = "export"  # the torch= module to ONNX
    INPUTS = "inputs"  # shapes and the feed: generated or read from inputs=
    QUANTIZATION = "quantization"  # INT8 by calibration
    CONVERSION = "conversion"  # the fp16/bf16 precision transform
    BUILD = "build"  # the backend's build or load of the engine
    REFERENCE = "reference"  # the reference outputs the engine is compared with


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
    probe: list[float] | None = None  # host-speed probe times (timing/host_probe.py), not per iteration
    after_probe: list[int] | None = None  # indices of iterations run right after a probe


@dataclass(frozen=True)
class HostCall:
    """What a runner timed on the host clock hands to the timing loop: one inference per call.

    The timing loop owns the host clock and the host-speed probe; ``probe_applies`` says whether
    the probe measures what the call runs on (a single CPU thread), as only the runner knows.
    """

    call: Callable[[], Any]
    probe_applies: bool


class BackendSettings(Protocol):
    """The session settings a backend reads (``run.options.Settings`` has them)."""

    @property
    def runtime(self) -> str: ...  # the TensorRT runtime: full, lean or dispatch

    @property
    def cuda_api(self) -> str: ...  # the CUDA binding; "" for the installed one


class BytesStore(Protocol):
    """Bytes kept between builds beside the engines, by kind and key parts (the engine cache,
    ``store.cache.EngineCache``, is one): TensorRT timing caches, for instance."""

    def get_bytes(self, kind: str, parts: Mapping[str, Any]) -> bytes | None: ...

    def update_bytes(self, kind: str, parts: Mapping[str, Any], merge: Callable[[bytes | None], bytes]) -> bytes: ...


@dataclass(frozen=True)
class BackendContext:
    """What a backend factory gets (pytest_trt.backends): the session's settings, its engine
    cache (for artifacts beside the engines such as timing caches) and a callable that prints a
    progress line on the terminal. Any may be None outside a session. ``gpu``: the CUDA device
    index this process is pinned to; GPU backends build, load and run there."""

    settings: BackendSettings | None = None
    cache: BytesStore | None = None
    progress: Callable[[str], None] | None = None
    gpu: int = 0  # the device index this process runs on (--trt-gpus)

    @property
    def runtime(self) -> str:
        """The TensorRT runtime the settings name; the full one outside a session."""
        return self.settings.runtime if self.settings is not None else "full"

    @property
    def cuda_api(self) -> str:
        """The CUDA binding the settings name; "" (the installed one) outside a session."""
        return self.settings.cuda_api if self.settings is not None else ""


@dataclass(frozen=True)
class GpuPlacement:
    """The GPU a test ran on (its CUDA index in this process, name and UUID) and the xdist
    worker that ran it ("" outside xdist)."""

    index: int
    name: str = ""
    uuid: str = ""
    worker: str = ""
