"""What a test is handed: an ``Engine`` (the model, its build, its runner and feed, and how each
was made: ``Provenance``). ``engines.EngineFactory`` makes them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt import serde
from pytest_trt.arguments import Precision
from pytest_trt.backends.base import Runner
from pytest_trt.baselines.subject import InputFacts, InputRange, InputSource, TensorSignature, Workload
from pytest_trt.model import LoadedModel, Shape
from pytest_trt.prepare.inputs import (
    with_batch,
)
from pytest_trt.prepare.model_steps import StepHow, StepProvenance
from pytest_trt.specs import BuildSpec, ModelSpec
from pytest_trt.specs.profiles import profile_index
from pytest_trt.types import Artifact, TensorSpec

if TYPE_CHECKING:
    from pytest_trt.specs import MeasureSettings
    from pytest_trt.timing.fresh_process import ProcessJob, ProcessPlace
    from pytest_trt.timing.lock import LockWait


@dataclass(frozen=True)
class Provenance:
    how: StepHow
    seconds: float
    cache: dict[str, Any] = field(default_factory=dict)
    # The steps before the engine, as this process obtained them: the torch= export and the
    # INT8 calibration (built now, or loaded from the engine cache); None where not taken.
    export: StepProvenance | None = None
    quantization: StepProvenance | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = serde.to_data(self)
        return data


@dataclass
class EngineEntry:
    """One engine in the session memo, shared by every test with the same model and build."""

    backend: str
    runtime_version: str
    model: LoadedModel  # the original model, as the reference runs it
    built_from: LoadedModel  # after the precision transform
    build: BuildSpec  # with every dynamic input's concrete shape filled in
    runner: Runner
    provenance: Provenance
    # A new runner from the same artifact: each onnxruntime session (each TensorRT context) has a
    # speed of its own, so the regression rule samples sessions, not one session repeatedly.
    reload: Callable[[], Runner]
    artifact: Artifact | None = None  # what ``reload`` loads, for a fresh process to load too


class Engine:
    """What ``trt_engine`` and ``trt_build`` hand to a test: run it, or read how it was made."""

    def __init__(self, entry: EngineEntry, spec: ModelSpec, feed: dict[str, np.ndarray], provenance: Provenance):
        self._entry = entry
        self._feed = feed
        self.spec = spec
        self.provenance = provenance

    @property
    def backend(self) -> str:
        return self._entry.backend

    @property
    def precision(self) -> Precision:
        return self._entry.build.precision

    @property
    def inputs(self) -> list[TensorSpec]:
        return list(self._entry.runner.inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        return list(self._entry.runner.outputs)

    @property
    def shapes(self) -> dict[str, Shape]:
        """The concrete input shapes this engine is run with."""
        return {name: tuple(a.shape) for name, a in self._feed.items()}

    @property
    def model(self) -> LoadedModel:
        """The model as the reference runs it: the file, or the torch= export, before any
        precision transform."""
        return self._entry.model

    @property
    def quantized(self) -> bool:
        """The engine runs a Q/DQ model (INT8 by calibration, or one that came quantized)."""
        return self._entry.built_from.quantized

    @property
    def converted(self) -> LoadedModel:
        """The model the engine was built from: after the precision transform or INT8 calibration."""
        return self._entry.built_from

    def shown_source(self, shown: Callable[[Path], str]) -> str:
        """The model as reports name it: its file (as ``shown`` writes paths), or
        ``torch=pkg.mod:func`` for a torch model, whose export lives in a work folder."""
        return self.spec.source if self.spec.torch is not None else shown(self.model.path)

    @property
    def runner(self) -> Runner:
        return self._entry.runner

    @contextmanager
    def fresh_runner(self, *, sharing: bool = False) -> Iterator[Runner]:
        """Another runner of the same engine (loaded again from its artifact), closed on exit;
        ``sharing``: another context of the loaded engine where the runner offers one (a
        ``sibling()``, as TensorRT's), for concurrent streams."""
        sibling = getattr(self._entry.runner, "sibling", None) if sharing else None
        runner = sibling() if sibling is not None else self._entry.reload()
        try:
            yield runner
        finally:
            runner.close()

    def process_job(
        self, place: ProcessPlace, feed: Mapping[str, np.ndarray], settings: MeasureSettings, batch: int,
        percentiles: tuple[float, ...], lock: LockWait,
    ) -> ProcessJob | None:
        """A measurement of this engine for a fresh process to make, or None where one cannot
        load it (a backend registered at run time, not by entry point, is not in the child)."""
        from pytest_trt import backends
        from pytest_trt.timing.fresh_process import ProcessJob

        entry = self._entry
        if entry.artifact is None or not place.enabled or entry.backend not in backends.registered_at_start():
            return None
        return ProcessJob(
            entry.backend, place.settings, place.gpu, entry.artifact, entry.built_from, entry.build, dict(feed),
            settings, batch, percentiles, lock.timeout_s, lock.notice_s,
        )

    @property
    def build(self) -> BuildSpec:
        """The build spec as used: every dynamic input's concrete shape filled in."""
        return self._entry.build

    @property
    def runtime_version(self) -> str:
        return self._entry.runtime_version

    @property
    def batch(self) -> int:
        """Queries per inference for throughput: ``batch_size`` if given, else the leading dim of
        the first input of rank 2 or more, else 1."""
        if self.spec.batch_size is not None:
            return self.spec.batch_size
        first = next(iter(self.shapes.values()), ())
        return int(first[0]) if len(first) >= 2 else 1

    def workload(self, feed: Mapping[str, np.ndarray] | None = None, batch: int | None = None) -> Workload:
        """What was run, as baselines compare it: input and output signatures, batch, precision
        (of the test's own feed, or of ``feed`` at ``batch``: a point of a sweep)."""
        used = self._feed if feed is None else feed
        return Workload(
            inputs={n: TensorSignature(tuple(a.shape), str(a.dtype)) for n, a in used.items()},
            outputs={o.name: TensorSignature(tuple(o.shape), str(o.dtype)) for o in self.outputs},
            batch=self.batch if batch is None else batch,
            precision=self.precision,
        )

    def batched(self, batch: int) -> dict[str, np.ndarray]:
        """The test's inputs at ``batch`` rows (a point of a ``batch_sizes=`` sweep), checked
        against the engine's profiles."""
        feed = with_batch(self._entry.model, self._feed, batch)
        self.check_shapes(feed)
        return feed

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        __tracebackhide__ = True
        self.check_shapes(feed)
        return self._entry.runner.infer(feed)

    def check_shapes(self, feed: Mapping[str, np.ndarray]) -> int:
        """The optimization profile that holds the feed's shapes (0 without ``profile=``); a
        shape outside every profile is a ShapeError naming the input, the shape and the bounds,
        on every backend alike."""
        __tracebackhide__ = True
        return profile_index(self._entry.build.profiles, {name: a.shape for name, a in feed.items()})

    def feed_facts(self) -> dict[str, InputFacts]:
        """Where each input of the feed came from and the values it holds, for ``-v``: read from
        the ``inputs=`` file, or generated in the ``input_ranges=`` range, the range the graph
        bounds an index to, or the default range (the order ``inputs.make_inputs`` follows)."""
        facts: dict[str, InputFacts] = {}
        ranges = self.spec.range_map
        graph = dict(self._entry.model.index_ranges)
        for name, array in self._feed.items():
            low: int | float | None = None
            high: int | float | None = None
            if array.size:
                kind = int if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_ else float
                low, high = kind(array.min()), kind(array.max())
            if self.spec.inputs is not None:
                facts[name] = InputFacts(InputSource.FILE, file=self.spec.inputs.name, min=low, max=high)
                continue
            if array.dtype == np.bool_:
                where = InputRange.BOTH_VALUES
            elif name in ranges:
                where = InputRange.INPUT_RANGES
            elif name in graph and np.issubdtype(array.dtype, np.integer):
                where = InputRange.GRAPH
            else:
                where = InputRange.DEFAULT
            facts[name] = InputFacts(InputSource.GENERATED, range=where, min=low, max=high)
        return facts

    def sample_inputs(self) -> dict[str, np.ndarray]:
        """The seeded (or ``.npz``) inputs the gates use; copies, so a test may modify them."""
        return {name: array.copy() for name, array in self._feed.items()}

    def __repr__(self) -> str:
        return (
            f"<Engine {self._entry.model.path.name} backend={self.backend} precision={self.precision} "
            f"{self.provenance.how} in {self.provenance.seconds:.3f} s>"
        )


def digest(feed: Mapping[str, np.ndarray]) -> str:
    """sha256 of a feed's names, dtypes, shapes and bytes: the reference's cache key part."""
    hashed = hashlib.sha256()
    for name in sorted(feed):
        array = np.ascontiguousarray(feed[name])
        hashed.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        hashed.update(array.tobytes())
    return hashed.hexdigest()
