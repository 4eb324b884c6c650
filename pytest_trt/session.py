"""The run state of one pytest session, and the per-item flow the plugin's hooks call into.

One ``RunState`` lives on ``config.stash``: the settings, the backend chosen for the run, the
engine cache, the in-session memo of engines (each distinct model + build is built or loaded
once per process) and the records of gated tests. ``plugin.py`` stays a list of hooks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from . import accuracy, baseline, ci_report, measure, precision
from .files import write_atomic
from .fingerprint import machine_fingerprint
from .backends.base import Artifact, Availability, Backend, BackendError, Runner, TensorSpec, get_backend
from .cache import CacheError, EngineCache, decode_arrays, encode_arrays, parse_size
from .model import LoadedModel, ModelError, Shape, load_inputs_npz, load_model, make_inputs, resolve_shapes
from .options import Settings
from .results import BudgetOutcome, TestRecord
from .spec import (
    AccuracySpec,
    BuildSpec,
    MeasureSettings,
    ModelSpec,
    PerfBudget,
    SpecError,
    make_accuracy_spec,
    make_model_spec,
    make_perf_budget,
)

REFERENCE_BACKEND = "onnxruntime"
# Errors a user can cause through a mark, a model file or the machine; anything else is a bug
# in pytest-trt and keeps its traceback.
USER_ERRORS = (SpecError, ModelError, BackendError, CacheError, precision.PrecisionError)

# Positional arguments each mark accepts, in order, as in the marks' documented signatures.
_POSITIONAL = {
    "trt_model": ("path",),
    "trt_accuracy": ("rtol", "atol"),
    "trt_perf": ("max_latency_ms", "percentile", "min_throughput", "backend"),
}


# ---- marks -> specs (collection) --------------------------------------------------------------


@dataclass(frozen=True)
class ItemGates:
    """What the marks on one test item ask for, validated at collection."""

    model: ModelSpec | None = None
    accuracy: AccuracySpec | None = None
    budgets: tuple[PerfBudget, ...] = ()

    @property
    def gated(self) -> bool:
        return self.model is not None and (self.accuracy is not None or bool(self.budgets))


GATES_KEY = pytest.StashKey[ItemGates]()


def _mark_kwargs(mark: pytest.Mark) -> dict[str, Any]:
    names = _POSITIONAL[mark.name]
    if len(mark.args) > len(names):
        raise SpecError(
            f"{mark.name}: takes at most {len(names)} positional argument(s) ({', '.join(names)}), "
            f"got {len(mark.args)}"
        )
    kwargs = dict(mark.kwargs)
    for name, value in zip(names, mark.args, strict=False):
        if name in kwargs:
            raise SpecError(f"{mark.name}: argument {name!r} given both by position and by keyword")
        kwargs[name] = value
    return kwargs


def _prefixed(mark: str, exc: Exception) -> str:
    text = str(exc)
    return text if text.startswith(mark) else f"{mark}: {text}"


def search_dirs(test_path: Path, config: pytest.Config) -> tuple[Path, ...]:
    """Where a relative model path is looked up: the test file's folder, then the rootdir."""
    return tuple(dict.fromkeys((Path(test_path).parent, Path(config.rootpath))))


def read_gates(item: pytest.Item, settings: Settings) -> ItemGates:
    """Validate the item's marks; a SpecError names the mark and the argument."""
    model_mark = item.get_closest_marker("trt_model")
    accuracy_mark = item.get_closest_marker("trt_accuracy")
    perf_marks = list(item.iter_markers("trt_perf"))
    if model_mark is None:
        for mark in (accuracy_mark, *perf_marks):
            if mark is not None:
                raise SpecError(f"{mark.name} needs a trt_model mark naming the model to gate")
        return ItemGates()
    base_dirs = search_dirs(item.path, item.config)
    try:
        kwargs = _mark_kwargs(model_mark)
        if "path" not in kwargs:
            raise SpecError("trt_model: missing the model path (first argument)")
        model = make_model_spec(kwargs.pop("path"), base_dirs=base_dirs, **kwargs)
    except (SpecError, TypeError) as exc:
        raise SpecError(_prefixed("trt_model", exc)) from None
    accuracy_spec = None
    if accuracy_mark is not None:
        try:
            accuracy_spec = make_accuracy_spec(**_mark_kwargs(accuracy_mark))
        except (SpecError, TypeError) as exc:
            raise SpecError(_prefixed("trt_accuracy", exc)) from None
    # iter_markers yields the closest marks first: a function's budget for a backend overrides
    # a class or module budget for the same backend; two on the function itself are a mistake.
    budgets: dict[str, PerfBudget] = {}
    own = {id(m) for m in item.own_markers}
    for mark in perf_marks:
        try:
            budget = make_perf_budget(settings.measure, **_mark_kwargs(mark))
        except (SpecError, TypeError) as exc:
            raise SpecError(_prefixed("trt_perf", exc)) from None
        if budget.backend in budgets:
            if id(mark) in own:
                raise SpecError(f"trt_perf: two marks for backend {budget.backend!r}; keep one per backend")
            continue
        budgets[budget.backend] = budget
    return ItemGates(model=model, accuracy=accuracy_spec, budgets=tuple(budgets.values()))


# ---- backend choice -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendChoice:
    name: str
    reason: str  # shown in the header: why this backend runs

    def header(self) -> str:
        return f"pytest-trt: backend {self.name} ({self.reason})"


def _tensorrt_options(settings: Settings) -> dict[str, Any]:
    return {"runtime": settings.runtime, "cuda_api": settings.cuda_api}


def _tensorrt_availability(settings: Settings) -> Availability:
    try:
        return get_backend("tensorrt", **_tensorrt_options(settings)).availability()
    except Exception as exc:  # a missing or broken TensorRT adapter means "not available"
        return Availability(False, f"{type(exc).__name__}: {exc}")


def choose_backend(settings: Settings) -> BackendChoice:
    """The backend for this run. Raises UsageError where falling back would hide a problem:
    ``--trt-backend=tensorrt`` or ``--trt-require-gpu`` without a usable TensorRT."""
    if settings.backend == "onnxruntime":
        if settings.require_gpu:
            raise pytest.UsageError(
                "pytest-trt: --trt-require-gpu needs the tensorrt backend, but --trt-backend=onnxruntime was given"
            )
        return BackendChoice("onnxruntime", "--trt-backend=onnxruntime")
    found = _tensorrt_availability(settings)
    if found.ok:
        return BackendChoice("tensorrt", f"--trt-backend={settings.backend}")
    if settings.backend == "tensorrt" or settings.require_gpu:
        flag = "--trt-require-gpu" if settings.require_gpu else "--trt-backend=tensorrt"
        raise pytest.UsageError(f"pytest-trt: {flag}, but TensorRT is unavailable: {found.reason}")
    return BackendChoice("onnxruntime", f"TensorRT unavailable: {found.reason}")


# ---- engines --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    how: str  # "built", "loaded" (from the engine cache) or "memory" (earlier in this session)
    seconds: float
    cache: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"how": self.how, "seconds": self.seconds, "cache": dict(self.cache)}


@dataclass
class _EngineEntry:
    """One engine in the session memo, shared by every test with the same model and build."""

    backend: str
    runtime_version: str
    model: LoadedModel  # the original model, as the reference runs it
    built_from: LoadedModel  # after the precision transform
    build: BuildSpec  # with every dynamic input's concrete shape filled in
    runner: Runner
    provenance: Provenance


class Engine:
    """What ``trt_engine`` and ``trt_build`` hand to a test: run it, or read how it was made."""

    def __init__(self, entry: _EngineEntry, spec: ModelSpec, feed: dict[str, np.ndarray], provenance: Provenance):
        self._entry = entry
        self._feed = feed
        self.spec = spec
        self.provenance = provenance

    @property
    def backend(self) -> str:
        return self._entry.backend

    @property
    def precision(self) -> str:
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
        return self._entry.model

    @property
    def runner(self) -> Runner:
        return self._entry.runner

    @property
    def build(self) -> BuildSpec:
        """The build spec as used: every dynamic input's concrete shape filled in."""
        return self._entry.build

    @property
    def runtime_version(self) -> str:
        return self._entry.runtime_version

    def workload(self, batch: int) -> dict[str, Any]:
        """What was run, as baselines compare it: input and output signatures, batch, precision."""
        return {
            "inputs": {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in self._feed.items()},
            "outputs": {o.name: {"shape": list(o.shape), "dtype": str(o.dtype)} for o in self.outputs},
            "batch": batch,
            "precision": self.precision,
        }

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        __tracebackhide__ = True
        return self._entry.runner.infer(feed)

    def sample_inputs(self) -> dict[str, np.ndarray]:
        """The seeded (or ``.npz``) inputs the gates use; copies, so a test may modify them."""
        return {name: array.copy() for name, array in self._feed.items()}

    def __repr__(self) -> str:
        return (
            f"<Engine {self._entry.model.path.name} backend={self.backend} precision={self.precision} "
            f"{self.provenance.how} in {self.provenance.seconds:.3f} s>"
        )


def _digest(feed: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(feed):
        array = np.ascontiguousarray(feed[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _outcome_to_how(outcome: str) -> str:
    return "loaded" if outcome == "hit" else "built"


# ---- the run state --------------------------------------------------------------------------------


class RunState:
    """Everything one process of a pytest session keeps for pytest-trt."""

    def __init__(self, config: pytest.Config, settings: Settings, session_start: float | None = None) -> None:
        self.config = config
        self.settings = settings
        self.rootpath = Path(config.rootpath)
        try:
            max_size = parse_size(settings.cache_max_size) if settings.cache_max_size else None
            self.cache = EngineCache(
                settings.engine_cache_dir,
                rebuild=settings.rebuild,
                max_size_bytes=max_size,
                lock_timeout_s=settings.lock_timeout_s,
                session_start=session_start,
            )
        except CacheError as exc:
            raise pytest.UsageError(f"pytest-trt: {exc}") from None
        self._choice: BackendChoice | None = None
        self._backends: dict[str, Backend] = {}
        self._models: dict[Path, LoadedModel] = {}
        self._engines: dict[tuple[str, Path, BuildSpec], _EngineEntry] = {}
        self._feeds: dict[tuple[ModelSpec, str], dict[str, np.ndarray]] = {}
        self._references: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._baselines: dict[str, tuple[baseline.BaselineStore, dict[str, str]]] = {}
        self.records: list[TestRecord] = []  # gated tests run by this process
        self.record_dicts: list[dict[str, Any]] = []  # every gated test, incl. xdist workers'
        # Baselines staged by xdist workers, and the tests that measure latency (all processes).
        self.staged_baselines: dict[str, dict[str, dict[str, Any]]] = {}
        self.measured_tests: dict[str, set[str]] = {}
        self.summary_notes: list[str] = []  # baseline lines for the terminal summary

    def choice(self) -> BackendChoice:
        """The backend for this run, decided on first use (it may probe the CUDA driver)."""
        if self._choice is None:
            self._choice = choose_backend(self.settings)
        return self._choice

    def close(self) -> None:
        for entry in self._engines.values():
            entry.runner.close()
        self._engines.clear()
        self.cache.close()

    def workdir(self) -> Path:
        """A private folder for this process's converted models, removed at the end (or by a later
        run, if this one is killed)."""
        return self.cache.work_dir()

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            if name == "tensorrt":
                timing_cache = _TimingCache(self.cache, lambda: self._timing_cache_parts())
                self._backends[name] = get_backend(
                    name, **_tensorrt_options(self.settings), timing_cache=timing_cache, progress=self._progress
                )
            else:
                self._backends[name] = get_backend(name)
        return self._backends[name]

    def _timing_cache_parts(self) -> dict[str, Any]:
        backend = self.backend("tensorrt")
        return {"runtime_version": backend.runtime_version(), "device": backend.device_fingerprint(BuildSpec())}

    def _progress(self, line: str) -> None:
        """Long TensorRT builds report their phases on the terminal (not under xdist workers)."""
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"pytest-trt: {line}")

    def model(self, path: Path) -> LoadedModel:
        if path not in self._models:
            self._models[path] = load_model(path)
        return self._models[path]

    def engine(self, spec: ModelSpec, backend_name: str | None = None) -> Engine:
        """The engine for ``spec`` on the run's backend: from this session's memo, else the
        engine cache, else built now."""
        backend_name = backend_name or self.choice().name
        model = self.model(spec.path)
        shapes = self._shapes(model, spec)
        build = dataclasses.replace(spec.build, shapes=tuple(sorted(shapes.items())))
        feed = self._feed(spec, model, shapes)
        key = (backend_name, model.path, build)
        entry = self._engines.get(key)
        if entry is not None:
            return Engine(entry, spec, feed, Provenance("memory", 0.0))
        entry = self._make_engine(backend_name, model, build)
        self._engines[key] = entry
        return Engine(entry, spec, feed, entry.provenance)

    def _shapes(self, model: LoadedModel, spec: ModelSpec) -> dict[str, Shape]:
        if spec.inputs is not None and not spec.build.shapes:
            # Real inputs decide the shapes they were recorded with.
            return {name: tuple(a.shape) for name, a in load_inputs_npz(spec.inputs, model).items()}
        return resolve_shapes(model, spec.build.shape_map, spec.batch_size)

    def _feed(self, spec: ModelSpec, model: LoadedModel, shapes: dict[str, Shape]) -> dict[str, np.ndarray]:
        key = (spec, model.content_hash)
        if key not in self._feeds:
            if spec.inputs is not None:
                feed = load_inputs_npz(spec.inputs, model)
                wrong = {n: a.shape for n, a in feed.items() if tuple(a.shape) != shapes[n]}
                if wrong:
                    name = next(iter(wrong))
                    raise ModelError(
                        f"{spec.inputs}: array {name!r} has shape {list(wrong[name])} but shapes gives "
                        f"{list(shapes[name])}"
                    )
            else:
                seed = self.settings.seed if spec.seed is None else spec.seed
                feed = make_inputs(model, shapes, seed, spec.range_map)
            self._feeds[key] = feed
        return self._feeds[key]

    def _make_engine(self, backend_name: str, model: LoadedModel, build: BuildSpec) -> _EngineEntry:
        backend = self.backend(backend_name)
        transform = _transform_options(backend_name, build)
        built_from = self._transformed(model, build.precision, transform)
        runtime_version = backend.runtime_version()
        parts = {
            "model_hash": built_from.content_hash,
            "build": build.as_dict(),
            "runtime_version": runtime_version,
            "device": backend.device_fingerprint(build),
            "transform": precision.transform_key(build.precision, transform),
        }
        started = time.perf_counter()
        runner, event = self.cache.get_or_build(
            backend_name,
            parts,
            build=lambda: backend.build(built_from, build),
            load=lambda artifact: backend.load(artifact, built_from, build),
        )
        provenance = Provenance(_outcome_to_how(event.outcome), time.perf_counter() - started, event.as_dict())
        return _EngineEntry(backend_name, runtime_version, model, built_from, build, runner, provenance)

    def _transformed(self, model: LoadedModel, precision_name: str, transform: dict[str, Any]) -> LoadedModel:
        """The model in ``precision_name``: the model itself for fp32/tf32 and Q/DQ models, else
        a converted model kept in the engine cache like any artifact."""
        out_dir = self.workdir() / model.content_hash[:16]
        if precision_name not in precision.CONVERTED_PRECISIONS:
            precision.apply_precision(model.path, precision_name, out_dir, **transform)  # checks Q/DQ
            return model
        parts = {"model_hash": model.content_hash, "transform": precision.transform_key(precision_name, transform)}

        def convert() -> Artifact:
            return Artifact(precision.apply_precision(model.path, precision_name, out_dir, **transform).read_bytes())

        def load(artifact: Artifact) -> LoadedModel:
            path = out_dir / f"{model.path.stem}.{precision_name}-{self.cache.key('converted-model', parts)[:16]}.onnx"
            if not path.is_file():
                write_atomic(path, artifact.data)
            return load_model(path)

        converted, _ = self.cache.get_or_build("converted-model", parts, build=convert, load=load)
        return converted

    def reference_outputs(self, model: LoadedModel, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The original model in fp32 on onnxruntime's CPU provider, for the same feed; kept in
        the engine cache so a later run skips it too."""
        digest = _digest(feed)
        key = (model.content_hash, digest)
        if key in self._references:
            return self._references[key]
        backend = self.backend(REFERENCE_BACKEND)
        parts = {
            "model_hash": model.content_hash,
            "inputs": digest,
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
        outputs, _ = self.cache.get_or_build(
            "reference", parts, build=run_reference, load=lambda artifact: decode_arrays(artifact.data)
        )
        self._references[key] = outputs
        return outputs

    # ---- one gated item -----------------------------------------------------------------------

    def evaluate(self, item: pytest.Item, engine: Engine) -> None:
        """Run the item's accuracy and perf gates after its body passed; fail the item with one
        message holding every failure."""
        __tracebackhide__ = True
        gates = item.stash[GATES_KEY]
        record = self._new_record(item, engine)
        failures: list[str] = []
        try:
            feed = engine.sample_inputs()
            if gates.accuracy is not None:
                failures += self._check_accuracy(item, engine, gates.accuracy, feed, record)
            if gates.budgets:
                failures += self._check_perf(engine, gates.budgets, feed, record)
                failures += self._check_baseline(engine, gates.budgets, feed, record)
        except USER_ERRORS as exc:
            record.status = "error"
            problem = f"pytest-trt: {exc}"
        else:
            record.status = "failed" if failures else "passed"
            problem = f"pytest-trt gates failed (backend {engine.backend}):\n" + "\n".join(failures)
        self._add(record)
        item.user_properties.extend(ci_report.junit_properties(record))
        if record.status != "passed":
            pytest.fail(problem, pytrace=False)

    def _add(self, record: TestRecord) -> None:
        self.records.append(record)
        self.record_dicts.append(record.as_dict())

    def _new_record(self, item: pytest.Item, engine: Engine) -> TestRecord:
        return TestRecord(
            nodeid=item.nodeid,
            module=self._shown(Path(item.path)),
            backend=engine.backend,
            runtime_version=engine.runtime_version,
            model={"path": self._shown(engine.model.path), "content_hash": engine.model.content_hash},
            build=engine.build.as_dict(),
            workload=engine.workload(batch_of(engine)),
            engine=engine.provenance.as_dict(),
        )

    def _shown(self, path: Path) -> str:
        """A path relative to the rootdir with forward slashes, as reports and baselines key it."""
        return path.relative_to(self.rootpath).as_posix() if path.is_relative_to(self.rootpath) else str(path)

    def _check_accuracy(
        self, item: pytest.Item, engine: Engine, spec: AccuracySpec, feed: dict[str, np.ndarray], record: TestRecord
    ) -> list[str]:
        actual = engine.infer(feed)
        reference = self.reference_outputs(engine.model, feed)
        result = accuracy.compare_outputs(actual, reference, spec)
        if spec.batch_consistency:
            # Rows may differ by kernel rounding (batched GEMMs pick other tactics), not more.
            for problem in accuracy.check_batch_consistency(engine.infer, feed, tolerance=spec.default):
                result.add_problem(problem)
        record.accuracy = result
        if result.passed:
            return []
        message = result.failure_message()
        if self.settings.save_failures is not None:
            saved = accuracy.save_failure(self.settings.save_failures, item.nodeid, feed, actual, reference)
            message += f"\ninputs, outputs and reference saved to {saved}"
        return ["accuracy: " + message.replace("\n", "\n  ")]

    def _check_perf(
        self, engine: Engine, budgets: tuple[PerfBudget, ...], feed: dict[str, np.ndarray], record: TestRecord
    ) -> list[str]:
        running = engine.backend
        mode = self.settings.perf
        result = None
        if mode != "off":
            settings = _measure_settings(budgets, running)
            result = measure.measure(engine.runner, feed, settings, batch_of(engine))
            record.perf = result
            record.warnings.extend(result.warnings)
        failures: list[str] = []
        for budget in budgets:
            description = measure.describe_budget(budget)
            if result is None:
                outcome = BudgetOutcome(budget.backend, description, False, None, "not measured (--trt-perf=off)")
            elif budget.backend != running:
                outcome = BudgetOutcome(budget.backend, description, False, None, f"not enforced (running {running})")
            else:
                missed = measure.budget_failures(result, budget)
                if mode == "enforce":
                    outcome = BudgetOutcome(budget.backend, description, True, not missed, "; ".join(missed))
                    failures += [f"perf ({running}): {m}" for m in missed]
                else:
                    note = "; ".join(missed) if missed else "within budget"
                    outcome = BudgetOutcome(budget.backend, description, False, None, f"report only: {note}")
            record.budgets.append(outcome)
        return failures

    def baselines(self, backend: str) -> tuple[baseline.BaselineStore, dict[str, str]]:
        """The baseline store of this machine's hardware class for ``backend``, and the software
        facts (driver, CUDA) recorded with its entries."""
        if backend not in self._baselines:
            hardware, software = baseline.hardware_for(backend, machine_fingerprint())
            self._baselines[backend] = (baseline.BaselineStore(self.settings.baseline_dir, hardware), software)
        return self._baselines[backend]

    def _check_baseline(
        self, engine: Engine, budgets: tuple[PerfBudget, ...], feed: dict[str, np.ndarray], record: TestRecord
    ) -> list[str]:
        """Compare the sample with the stored baseline (or record it with --trt-update-baselines)."""
        if record.perf is None or self.settings.baseline_mode == "off":
            return []
        own = _running_budget(budgets, engine.backend)
        settings = _measure_settings(budgets, engine.backend)
        threshold = self.settings.regression_threshold
        if own is not None and own.max_regression is not None:
            threshold = own.max_regression

        def remeasure() -> measure.PerfResult:
            # The re-measurement is what the verdict reports, so the record shows its numbers.
            record.perf = measure.measure(engine.runner, feed, settings, batch_of(engine))
            return record.perf

        store, software = self.baselines(engine.backend)
        lines = baseline.compare_record(
            store,
            record,
            mode=self.settings.baseline_mode,
            update=self.settings.update_baselines,
            threshold=threshold,
            remeasure=remeasure,
            enforce=self.settings.perf == "enforce",
            commit=baseline.current_commit(self.rootpath),
            software=software,
        )
        return lines

    def note_measured(self, items: list[pytest.Item]) -> None:
        """Remember which collected tests measure latency, so unused baselines can be listed."""
        if self.settings.perf == "off":
            return
        for item in items:
            gates = item.stash.get(GATES_KEY, None)
            if gates is not None and gates.model is not None and gates.budgets:
                self.measured_tests.setdefault(self._shown(Path(item.path)), set()).add(item.nodeid)

    def merge_worker(self, data: Mapping[str, Any]) -> None:
        """Fold in what one xdist worker sent (see ``worker_output``)."""
        self.record_dicts.extend(data["records"])
        for module, entries in data["baselines"].items():
            self.staged_baselines.setdefault(module, {}).update(entries)
        for module, nodeids in data["measured"].items():
            self.measured_tests.setdefault(module, set()).update(nodeids)

    def worker_output(self) -> dict[str, Any]:
        staged: dict[str, dict[str, dict[str, Any]]] = {}
        for store, _ in self._baselines.values():
            for module, entries in store.staged.items():
                staged.setdefault(module, {}).update(entries)
        return {
            "records": self.record_dicts,
            "baselines": staged,
            "measured": {module: sorted(ids) for module, ids in self.measured_tests.items()},
        }


class _TimingCache:
    """TensorRT's timing cache, kept in the engine cache per TensorRT version and GPU. A build
    loads it and hands back the cache it built with (old timings included), which replaces the
    stored one under the key's lock; two builds racing can lose each other's new timings, which
    costs build time only, never correctness."""

    def __init__(self, cache: EngineCache, parts: Callable[[], dict[str, Any]]) -> None:
        self._cache = cache
        self._parts = parts

    def load(self) -> bytes | None:
        return self._cache.get_bytes("timing-cache", self._parts())

    def merge(self, data: bytes) -> None:
        self._cache.update_bytes("timing-cache", self._parts(), lambda _old: data)


def _transform_options(backend_name: str, build: BuildSpec) -> dict[str, Any]:
    """Options for the precision transform. onnxruntime's CPU provider computes fp16 in fp32, so
    there the converted graph rounds every stored value instead (see docs/precision.md)."""
    options = build.option_map
    providers = options.get("providers") or ("CPUExecutionProvider",)
    return {
        "keep_fp32_ops": tuple(options.get("keep_fp32_ops", ())),
        "keep_fp32_nodes": tuple(options.get("keep_fp32_nodes", ())),
        "emulate": backend_name == REFERENCE_BACKEND and set(providers) == {"CPUExecutionProvider"},
    }


def _running_budget(budgets: tuple[PerfBudget, ...], backend: str) -> PerfBudget | None:
    return next((b for b in budgets if b.backend == backend), None)


def _measure_settings(budgets: tuple[PerfBudget, ...], backend: str) -> MeasureSettings:
    """How to measure: the running backend's mark decides; else the first mark's settings."""
    return (_running_budget(budgets, backend) or budgets[0]).measure


def batch_of(engine: Engine) -> int:
    """Queries per inference for throughput: ``batch_size`` if given, else the leading dim of
    the first input of rank 2 or more, else 1."""
    if engine.spec.batch_size is not None:
        return engine.spec.batch_size
    first = next(iter(engine.shapes.values()), ())
    return int(first[0]) if len(first) >= 2 else 1


def write_reports(state: RunState) -> None:
    """At the end of the session, on the controller: baselines written or listed, then the JSON
    and Markdown reports of every gated test (xdist workers' included)."""
    settings = state.settings
    gated = bool(state.record_dicts or state.measured_tests)
    if not gated and settings.report_json is None and settings.report_md is None:
        return  # a session without gated tests: nothing to record or report
    backend = state.choice().name
    store, _ = state.baselines(backend)
    if gated and settings.baseline_mode != "off":
        state.summary_notes += baseline.finish_session(
            store,
            staged=state.staged_baselines,
            used=state.measured_tests,
            update=settings.update_baselines,
            prune=settings.prune_baselines,
        )
    if settings.report_json is None and settings.report_md is None:
        return
    meta = {
        "backend": backend,
        "backend_reason": state.choice().reason,
        "hardware": store.hardware,
        "machine": machine_fingerprint(),
        "commit": baseline.current_commit(state.rootpath),
        "regression_threshold": settings.regression_threshold,
    }
    if settings.report_json is not None:
        ci_report.write_json(settings.report_json, state.record_dicts, meta)
    if settings.report_md is not None:
        ci_report.write_markdown(settings.report_md, state.record_dicts, meta)
