"""spec -> Engine: the model, its precision transform, the engine cache, the feed and the
reference outputs, each made once per process and kept in the engine cache across runs.

``EngineFactory`` is what the session owns; ``Engine`` is what ``trt_engine`` and ``trt_build``
hand to a test. Nothing here knows a backend by name: a backend's needs come from its
registration (``pytest_trt.backends``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt import backends
from pytest_trt.arguments import CalibrationMethod, Precision
from pytest_trt.backends.base import Backend, ReadsIntermediates, Runner, TensorReader
from pytest_trt.backends.profiles import check_profiles
from pytest_trt.errors import BackendError, ModelError, PrecisionError, PytestTrtError
from pytest_trt.model import LoadedModel, Shape, load_model
from pytest_trt.prepare import model_steps, precision
from pytest_trt.prepare.engine import Engine, EngineEntry, Provenance, digest
from pytest_trt.prepare.inputs import (
    DEFAULT_MAX_INPUT_BYTES,
    load_inputs_npz,
    make_inputs,
    resolve_shapes,
)
from pytest_trt.prepare.model_steps import CalibrationPlan, StepHow, StepProvenance, TorchModel
from pytest_trt.prepare.progress import Phase, Progress
from pytest_trt.specs import BuildSpec, ModelSpec, Reference, TorchSpec
from pytest_trt.specs.profiles import profile_index
from pytest_trt.store.arrays import decode_arrays, encode_arrays
from pytest_trt.store.cache import EngineCache
from pytest_trt.store.files import write_atomic
from pytest_trt.store.stats import CacheOutcome
from pytest_trt.types import Artifact, SetupStep

# The reference every backend is compared with: the original model in fp32 on this CPU.
REFERENCE_BACKEND = "onnxruntime"


class EngineFactory:
    """Engines, models, feeds and reference outputs of one process, each made once.

    ``backend_for(name)`` gives the session's backend object of that name; ``seed`` is the
    session's default input seed; ``max_input_bytes`` bounds one test's generated inputs;
    ``progress`` hears of builds, conversions and references that take long.
    """

    def __init__(
        self,
        cache: EngineCache,
        backend_for: Callable[[str], Backend],
        seed: int,
        max_input_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.cache = cache
        self._backend_for = backend_for
        self._seed = seed
        self._max_input_bytes = DEFAULT_MAX_INPUT_BYTES if max_input_bytes is None else max_input_bytes
        self._progress = progress or Progress()
        self._models: dict[Path, LoadedModel] = {}
        self._torch_models: dict[TorchSpec, TorchModel] = {}
        self._quantized: dict[tuple[str, CalibrationPlan], tuple[LoadedModel, StepProvenance]] = {}
        self._engines: dict[tuple[str, Path, BuildSpec, CalibrationPlan | None], EngineEntry] = {}
        self._feeds: dict[tuple[ModelSpec, str], dict[str, np.ndarray]] = {}
        self._references: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def close(self) -> None:
        for entry in self._engines.values():
            entry.runner.close()
        self._engines.clear()

    def discard(self, engine: Engine) -> None:
        """Close ``engine``'s runner and forget it: a later ``engine()`` of its spec builds (or
        loads from the engine cache) again."""
        for key, entry in list(self._engines.items()):
            if entry is engine._entry:
                del self._engines[key]
                entry.runner.close()

    def tensor_reader(self, engine: Engine) -> TensorReader | None:
        """How ``engine``'s backend reads the intermediate tensors of the model it built, or None
        where it cannot (the diagnosis then emulates the graph on onnxruntime's CPU provider)."""
        backend = self._backend_for(engine.backend)
        if not isinstance(backend, ReadsIntermediates):
            return None
        entry = engine._entry
        return lambda names, feed: backend.intermediate_tensors(entry.built_from, entry.build, feed, names)

    def workdir(self) -> Path:
        """A private folder for this process's converted models, removed at the end (or by a
        later run, if this one is killed)."""
        return self.cache.work_dir()

    def model(self, path: Path) -> LoadedModel:
        if path not in self._models:
            self._models[path] = load_model(path)
        return self._models[path]

    def engine(self, spec: ModelSpec, backend_name: str) -> Engine:
        """The engine for ``spec`` on ``backend_name``: from this process's memo, else the engine
        cache, else built now."""
        with failing_step(SetupStep.EXPORT if spec.torch is not None else SetupStep.MODEL):
            model = self.source_model(spec)
        with _export_named(spec, model):
            with failing_step(SetupStep.INPUTS):
                check_profiles(model, spec.build)
                shapes = self._shapes(model, spec)
                profile_index(spec.build.profiles, shapes)
                build = dataclasses.replace(spec.build, shapes=tuple(sorted(shapes.items())))
                feed = self._feed(spec, model, shapes)
                plan = self._calibration_plan(spec, shapes)
            key = (backend_name, model.path, build, plan)
            entry = self._engines.get(key)
            if entry is not None:
                made = entry.provenance  # the steps before it, as this process obtained them
                reused = Provenance(StepHow.MEMORY, 0.0, export=made.export, quantization=made.quantization)
                return Engine(entry, spec, feed, reused)
            entry = self._make_engine(backend_name, model, build, plan, self._export_provenance(spec))
        self._engines[key] = entry
        return Engine(entry, spec, feed, entry.provenance)

    def _inputs_npz(self, spec: ModelSpec, model: LoadedModel) -> dict[str, np.ndarray]:
        """The ``inputs=`` file, read once per spec (it decides shapes and is the feed)."""
        key = (spec, model.content_hash)
        if key not in self._feeds:
            assert spec.inputs is not None
            self._feeds[key] = load_inputs_npz(spec.inputs, model)
        return self._feeds[key]

    def _shapes(self, model: LoadedModel, spec: ModelSpec) -> dict[str, Shape]:
        if spec.inputs is not None and not spec.build.shapes:
            # Real inputs decide the shapes they were recorded with.
            return {name: tuple(a.shape) for name, a in self._inputs_npz(spec, model).items()}
        # Without shapes=, an input a profile bounds runs at the first profile's opt shape.
        opt = spec.build.profiles[0].opt_shapes if spec.build.profiles else {}
        if spec.batch_size is not None:
            opt = {name: (spec.batch_size, *shape[1:]) for name, shape in opt.items()}
        given = {**opt, **spec.build.shape_map}
        if spec.torch is not None:
            return resolve_shapes(model, {**_example_shapes(spec, model), **given})
        return resolve_shapes(model, given, spec.batch_size)

    def _feed(self, spec: ModelSpec, model: LoadedModel, shapes: dict[str, Shape]) -> dict[str, np.ndarray]:
        if spec.inputs is not None:
            feed = self._inputs_npz(spec, model)
            wrong = {n: a.shape for n, a in feed.items() if tuple(a.shape) != shapes[n]}
            if wrong:
                name = next(iter(wrong))
                raise ModelError(
                    f"{spec.inputs}: array {name!r} has shape {list(wrong[name])} but shapes gives "
                    f"{list(shapes[name])}"
                )
            return feed
        key = (spec, model.content_hash)
        if key not in self._feeds:
            seed = self._seed if spec.seed is None else spec.seed
            self._feeds[key] = make_inputs(model, shapes, seed, spec.range_map, max_bytes=self._max_input_bytes)
        return self._feeds[key]

    def _make_engine(
        self,
        backend_name: str,
        model: LoadedModel,
        build: BuildSpec,
        plan: CalibrationPlan | None = None,
        export: StepProvenance | None = None,
    ) -> EngineEntry:
        transform = _transform_options(backend_name, build)
        quantization = None
        if plan is not None:
            with failing_step(SetupStep.QUANTIZATION):
                built_from, quantization = self._calibrated(model, plan)
        else:
            with failing_step(SetupStep.CONVERSION):
                built_from = self._transformed(model, build.precision, transform)
        with failing_step(SetupStep.BUILD):
            return self._built(backend_name, model, built_from, build, quantization, export)

    def _built(
        self,
        backend_name: str,
        model: LoadedModel,
        built_from: LoadedModel,
        build: BuildSpec,
        quantization: StepProvenance | None,
        export: StepProvenance | None,
    ) -> EngineEntry:
        backend = self._backend_for(backend_name)
        transform = _transform_options(backend_name, build)
        runtime_version = backend.runtime_version()
        parts = {
            "model_hash": built_from.content_hash,
            "build": build.as_dict(),
            "runtime_version": runtime_version,
            "device": backend.device_fingerprint(build),
            "transform": precision.transform_key(build.precision, transform),
        }
        shown = model.path.name if build.precision is Precision.FP32 else f"{model.path.name} ({build.precision})"
        started = time.perf_counter()
        loaded: list[Artifact] = []

        def load(artifact: Artifact) -> Runner:
            runner = backend.load(artifact, built_from, build)
            loaded[:] = [artifact]  # the one that loaded, for fresh runners later
            return runner

        with self._progress.phase(Phase.BUILD, f"{shown} for {backend_name}") as step, \
                _build_step_named(backend_name, model, built_from, build.precision):
            runner, event = self.cache.get_or_build(
                backend_name, parts, build=lambda: backend.build(built_from, build), load=load
            )
            if not event.outcome.built:
                step.phase = Phase.LOAD
        how = StepHow.BUILT if event.outcome.built else StepHow.LOADED
        provenance = Provenance(how, time.perf_counter() - started, event.as_dict(), export, quantization)
        artifact = loaded[0]
        return EngineEntry(
            backend_name, runtime_version, model, built_from, build, runner, provenance,
            reload=lambda: backend.load(artifact, built_from, build), artifact=artifact,
        )

    def _transformed(self, model: LoadedModel, precision_name: Precision, transform: dict[str, Any]) -> LoadedModel:
        """The model in ``precision_name``: the model itself for fp32/tf32 and Q/DQ models, else
        a converted model kept in the engine cache like any artifact."""
        def out_dir() -> Path:  # asked each time: it moves when the cache's disk fills up
            return self.workdir() / model.content_hash[:16]

        if precision_name not in precision.CONVERTED_PRECISIONS:
            precision.apply_precision(model.path, precision_name, out_dir(), **transform)  # checks Q/DQ
            return model
        parts = {"model_hash": model.content_hash, "transform": precision.transform_key(precision_name, transform)}

        def convert() -> Artifact:
            return Artifact(precision.apply_precision(model.path, precision_name, out_dir(), **transform).read_bytes())

        def load(artifact: Artifact) -> LoadedModel:
            path = out_dir() / f"{model.path.stem}.{precision_name}-{self.cache.key('converted-model', parts)[:16]}.onnx"
            if not path.is_file():
                write_atomic(path, artifact.data)
            return load_model(path)

        with self._progress.phase(Phase.CONVERT, f"{model.path.name} to {precision_name}") as step:
            converted, event = self.cache.get_or_build("converted-model", parts, build=convert, load=load)
            if event.outcome is CacheOutcome.HIT:
                step.phase, step.subject = Phase.LOAD, f"{model.path.name} in {precision_name}"
        return converted

    def reference_outputs(self, model: LoadedModel, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The original model in fp32 on onnxruntime's CPU provider, for the same feed; kept in
        the engine cache so a later run skips it too."""
        feed_digest = digest(feed)
        key = (model.content_hash, feed_digest)
        if key in self._references:
            return self._references[key]
        backend = self._backend_for(REFERENCE_BACKEND)
        parts = {
            "model_hash": model.content_hash,
            "inputs": feed_digest,
            "runtime_version": backend.runtime_version(),
            "mode": "cpu fp32",
        }

        def run_reference() -> Artifact:
            runner = backend.load(backend.build(model, BuildSpec()), model, BuildSpec())
            try:
                return Artifact(encode_arrays(runner.infer(feed)))
            finally:
                runner.close()

        # get_or_build holds the key's lock, so xdist workers compute a reference only once.
        with self._progress.phase(Phase.REFERENCE, f"the reference outputs of {model.path.name}") as step:
            outputs, event = self.cache.get_or_build(
                "reference", parts, build=run_reference, load=lambda artifact: decode_arrays(artifact.data)
            )
            if event.outcome is CacheOutcome.HIT:
                step.phase = Phase.LOAD
        self._references[key] = outputs
        return outputs

    # ---- torch= models and INT8 by calibration (model_steps.py) ------------------------------

    def source_model(self, spec: ModelSpec) -> LoadedModel:
        """The ONNX model the spec names: its file, or the export of its torch= module."""
        if spec.torch is not None:
            return self.torch_model(spec.torch).model
        assert spec.path is not None
        return self.model(spec.path)

    def torch_model(self, source: TorchSpec) -> TorchModel:
        """The torch= module and its export, made (or loaded from the engine cache) once."""
        if source not in self._torch_models:
            self._torch_models[source] = model_steps.export_torch(self.cache, self.workdir, source)
        return self._torch_models[source]

    def _export_provenance(self, spec: ModelSpec) -> StepProvenance | None:
        return self.torch_model(spec.torch).provenance if spec.torch is not None else None

    def _calibration_plan(self, spec: ModelSpec, shapes: Mapping[str, Shape]) -> CalibrationPlan | None:
        """How to quantize for ``calibration=``: seeded batches at the test's shapes, seed and
        ranges; nodes kept in fp32 as for fp16."""
        if spec.calibration is None:
            return None
        options = spec.build.option_map
        return CalibrationPlan(
            data=spec.calibration,
            method=spec.calibration_method or CalibrationMethod.MINMAX,
            shapes=tuple(sorted(shapes.items())),
            seed=self._seed if spec.seed is None else spec.seed,
            input_ranges=spec.input_ranges,
            keep_fp32_ops=tuple(options.get("keep_fp32_ops", ())),
            keep_fp32_nodes=tuple(options.get("keep_fp32_nodes", ())),
        )

    def _calibrated(self, model: LoadedModel, plan: CalibrationPlan) -> tuple[LoadedModel, StepProvenance]:
        """The Q/DQ model every backend builds from, quantized once per process."""
        key = (model.content_hash, plan)
        if key not in self._quantized:
            data = plan.data.name if isinstance(plan.data, Path) else f"{plan.data} seeded batches"
            with self._progress.phase(Phase.CALIBRATE, f"{model.path.name} to int8 on {data}") as step:
                self._quantized[key] = model_steps.quantize(self.cache, self.workdir, model, plan)
                if self._quantized[key][1].how is StepHow.LOADED:
                    step.phase, step.subject = Phase.LOAD, f"{model.path.name} in int8"
        return self._quantized[key]

    def reference(self, engine: Engine, feed: Mapping[str, np.ndarray], kind: Reference) -> dict[str, np.ndarray]:
        """What the engine is compared with: onnxruntime running the model (for torch=, the
        export) in fp32 on CPU, or the torch module itself."""
        with failing_step(SetupStep.REFERENCE):
            if kind is Reference.TORCH:
                return self.torch_reference_outputs(engine.spec, feed)
            return self.reference_outputs(engine.model, feed)

    def torch_reference_outputs(self, spec: ModelSpec, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The torch= module's outputs for ``feed`` (CPU, fp32, no_grad), kept in the engine cache."""
        if spec.torch is None:
            raise ModelError(f"{spec.source}: reference='torch' needs torch= (the module to compare with)")
        torch_model = self.torch_model(spec.torch)
        feed_digest = digest(feed)
        key = (f"torch:{torch_model.export_key}", feed_digest)
        if key not in self._references:
            self._references[key] = model_steps.torch_outputs(self.cache, torch_model, feed, feed_digest)
        return self._references[key]


@contextmanager
def failing_step(step: SetupStep) -> Iterator[None]:
    """Tag an error raised in the block with the step it came from (the innermost tag stays),
    so that reports say which step of making an engine failed."""
    try:
        yield
    except PytestTrtError as exc:
        if exc.step is None:
            exc.step = step
        raise


@contextmanager
def _export_named(spec: ModelSpec, model: LoadedModel) -> Iterator[None]:
    """A torch= model's export lives in this session's work folder: errors about it name the
    model as the mark does (``the export of torch=pkg.mod:func``), not that passing path."""
    try:
        yield
    except (ModelError, PrecisionError) as exc:
        if spec.torch is None or str(model.path) not in str(exc):
            raise
        raise type(exc)(str(exc).replace(str(model.path), f"the export of {spec.source}")) from None


@contextmanager
def _build_step_named(backend_name: str, model: LoadedModel, built_from: LoadedModel, precision_name: Precision) -> Iterator[None]:
    """A backend's failure to build or load an engine names the step and the user's model, not
    the converted or quantized copy in this session's work folder it was built from."""
    try:
        yield
    except BackendError as exc:
        if type(exc) is not BackendError:  # unavailable, or a failed run: already named
            raise
        message, what = str(exc), f"({precision_name})"
        if built_from.path != model.path:
            what = f"from its {precision_name} form {built_from.path.name}"
            message = message.replace(f"{built_from.path}: ", "").replace(str(built_from.path), built_from.path.name)
        raise BackendError(f"{model.path}: building the {backend_name} engine {what} failed: {message}") from None


def _example_shapes(spec: ModelSpec, model: LoadedModel) -> dict[str, Shape]:
    """A torch= model runs at its example shapes unless shapes= says otherwise; batch_size
    replaces the leading dim of inputs whose leading axis was exported dynamic."""
    assert spec.torch is not None
    dynamic_leading = {s.name for s in model.inputs if s.shape and s.shape[0] is None}
    shapes = {}
    for name, shape in spec.torch.example_shapes().items():
        if spec.batch_size is not None and name in dynamic_leading:
            shape = (spec.batch_size, *shape[1:])
        shapes[name] = shape
    return shapes


def _transform_options(backend_name: str, build: BuildSpec) -> dict[str, Any]:
    """Options for the precision transform; a backend that computes a reduced-precision graph in
    fp32 gets a graph that rounds every stored value instead (see docs/precision.md)."""
    options = build.option_map
    return {
        "keep_fp32_ops": tuple(options.get("keep_fp32_ops", ())),
        "keep_fp32_nodes": tuple(options.get("keep_fp32_nodes", ())),
        "emulate": backends.get(backend_name).emulates_reduced_precision(build),
    }
