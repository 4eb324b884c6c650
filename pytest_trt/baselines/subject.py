"""What ran for one test: the identity baselines are keyed and compared by, and reports show."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class ModelRef:
    """The model as reports name it, and the hash of its content (external data included)."""

    path: str  # the test file's view of it, or ``torch=pkg.mod:func``
    content_hash: str


@dataclass(frozen=True)
class TensorSignature:
    shape: tuple[int | None, ...]  # None: a dynamic dimension
    dtype: str


@dataclass(frozen=True)
class Workload:
    """What was run, as baselines compare it: a different workload makes a baseline stale."""

    inputs: dict[str, TensorSignature]
    outputs: dict[str, TensorSignature]
    batch: int
    precision: str


@dataclass(frozen=True)
class BuildFacts:
    """The build spec as used: every dynamic input's concrete shape filled in."""

    precision: str
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class InputSource(str, Enum):
    FILE = "file"  # the trt_model(inputs=...) .npz
    GENERATED = "generated"


class InputRange(str, Enum):
    """Where a generated input's range came from (the order ``make_inputs`` follows)."""

    INPUT_RANGES = "input_ranges"
    GRAPH = "graph"  # an index the graph bounds (a Gather's table size)
    DEFAULT = "default"
    BOTH_VALUES = "both values"  # booleans


@dataclass(frozen=True)
class InputFacts:
    """Where one input's values came from and the values it holds, for ``-v``."""

    source: InputSource
    file: str | None = None
    range: InputRange | None = None
    min: int | float | None = None
    max: int | float | None = None


@dataclass(frozen=True)
class TestSubject:
    """What ran for one test: the identity baselines key and compare by."""

    __test__ = False

    nodeid: str
    module: str  # test file relative to the rootdir, with forward slashes
    backend: str
    runtime_version: str
    model: ModelRef
    build: BuildFacts
    workload: Workload
    engine: dict[str, Any] = field(default_factory=dict)  # how obtained: built/loaded, seconds (Provenance)
    feed: dict[str, InputFacts] = field(default_factory=dict)
