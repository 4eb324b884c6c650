"""The TensorRT backend: a thin adapter from BuildSpec to the TensorRT 10.x/11.x Python API.

It builds with the full runtime (ONNX parser, builder config, optimization profiles, timing cache,
progress monitor, engine inspector) and loads with the full, lean or dispatch runtime. Shared
logic lives elsewhere: precision transform (prepare/precision.py), cache, statistics
(timing/measure.py), and the CUDA event timeline (cuda.runtime.EventTimedLoop).

TensorRT objects are held only in variables named after their class (``builder``, ``network``,
``config``, ``parser``, ``error``, ``profile``, ``runtime``, ``engine``, ``context``, ``inspector``,
``cache``, ``plan``; ``self._engine`` etc.), and the module only as ``trt``: the contract test
(tests/contract/) reads this file's syntax tree, finds every TensorRT name and call arity through
those variables, and checks each against the real 11.x API. What that proves and what it does not
is in docs/tensorrt.md: the builder path has never run against a real libnvinfer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pytest_trt.backends import tensorrt_layers
from pytest_trt.backends.base import Artifact, Availability, BackendError, BackendUnavailable, TensorSpec
from pytest_trt.backends.layer_profile import PROFILE_RUNS, LayerProfile
from pytest_trt.backends.profiles import ProfileShapes, optimization_profiles
from pytest_trt.backends.trt_api import (
    HARDWARE_COMPATIBILITY,
    RUNTIMES,
    TensorRTImportError,
    hardware_level,
    import_tensorrt,
    major_version,
    positive,
    ranged,
)
from pytest_trt.backends.trt_timing_cache import EngineCacheTimingStore, TimingCacheStore
from pytest_trt.cuda.runtime import CudaApi, DeviceMemory, EventTimedLoop, PinnedArray, get_cuda_api
from pytest_trt.types import BackendContext

if TYPE_CHECKING:
    from pytest_trt.model import LoadedModel
    from pytest_trt.specs import BuildSpec, MeasureSettings

# BuilderFlags that make a network weakly typed (TensorRT 10.x only; gone in 11.x).
WEAK_TYPING_FLAGS = ("FP16", "BF16", "INT8", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS")
QUANTIZED_PRECISIONS = ("int8", "fp8")


class TensorRTBackend:
    """``TensorRTBackend(runtime=..., cuda_api=..., timing_cache=..., progress=...)``.

    ``runtime``: full (builds and loads), lean or dispatch (load version-compatible plans only).
    ``cuda_api``: cuda-python or pycuda; empty picks the installed one.
    ``timing_cache``: a ``TimingCacheStore``; builds read it and merge their timings back.
    ``progress``: called with one line per build phase started/finished (TensorRT's progress
    monitor); None keeps builds quiet.
    ``gpu``: the device index its builders, engines, buffers and streams use.
    ``trt_module`` / ``cuda``: a TensorRT module and CUDA layer to use instead of importing them
    (the unit tests pass a test double here).
    """

    name = "tensorrt"

    def __init__(
        self,
        runtime: str = "full",
        cuda_api: str = "",
        *,
        timing_cache: TimingCacheStore | None = None,
        progress: Callable[[str], None] | None = None,
        trt_module: ModuleType | None = None,
        cuda: CudaApi | None = None,
        gpu: int = 0,
    ) -> None:
        if runtime not in RUNTIMES:
            raise BackendError(f"--trt-runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
        self._runtime_kind = runtime
        self._cuda_api_name = cuda_api
        self._timing_cache = timing_cache
        self._progress = progress
        self._trt = trt_module
        self._cuda = cuda
        self.gpu = gpu
        self._availability: Availability | None = None

    @classmethod
    def for_session(cls, services: BackendContext) -> TensorRTBackend:
        """The backend as a session runs it: the runtime and CUDA binding the options name, the
        timing cache in the session's engine cache, build progress on the terminal."""
        made = cls(runtime=services.runtime, cuda_api=services.cuda_api, progress=services.progress, gpu=services.gpu)
        if services.cache is not None:
            from pytest_trt.specs import BuildSpec

            made._timing_cache = EngineCacheTimingStore(
                services.cache,
                lambda: {"runtime_version": made.runtime_version(), "device": made.device_fingerprint(BuildSpec())},
            )
        return made

    # -- availability: decided before any TensorRT object exists ------------------------------

    def availability(self) -> Availability:
        if self._availability is None:
            self._availability = self._decide_availability()
        return self._availability

    def _decide_availability(self) -> Availability:
        try:
            self._module()
            cuda = self._cuda_layer()
        except (TensorRTImportError, BackendUnavailable) as exc:
            return Availability(False, str(exc))
        return cuda.available()

    def _module(self) -> ModuleType:
        if self._trt is None:
            self._trt = import_tensorrt(self._runtime_kind)
        return self._trt

    def _cuda_layer(self) -> CudaApi:
        if self._cuda is None:
            self._cuda = get_cuda_api(self._cuda_api_name, self.gpu)
        return self._cuda

    def _require(self) -> ModuleType:
        status = self.availability()
        if not status.ok:
            raise BackendUnavailable(status.reason)
        # TensorRT's builders, runtimes and engines live on the thread's current device.
        self._cuda_layer().use_device()
        return self._module()

    def runtime_version(self) -> str:
        trt = self._module()
        prefix = "tensorrt" if self._runtime_kind == "full" else f"tensorrt-{self._runtime_kind}"
        return f"{prefix} {trt.__version__}"

    def device_fingerprint(self, build: BuildSpec) -> dict[str, Any]:
        cuda = self._cuda_layer()
        gpu = cuda.device_properties(cuda.device)
        level = hardware_level(build.option_map)
        if level == "ampere_plus":  # runs on any compute capability >= 8.0
            return {"hardware_compatibility": level, "ampere_or_newer": float(gpu["compute_capability"]) >= 8.0}
        if level == "same_compute_capability":
            return {"hardware_compatibility": level, "compute_capability": gpu["compute_capability"]}
        return {key: gpu[key] for key in ("gpu_name", "compute_capability", "sm_count")}

    # -- build -------------------------------------------------------------------------------

    def build(self, model: LoadedModel, build: BuildSpec, *, marked: Sequence[str] = ()) -> Artifact:
        """The serialized engine; ``marked``: tensors of the network to make outputs as well."""
        self._check_build_request(model, build)
        options = build.option_map
        profiles = optimization_profiles(model, build)
        level = hardware_level(options)
        if options.get("exclude_lean_runtime") and not options.get("version_compatible"):
            raise BackendError("exclude_lean_runtime=True needs version_compatible=True")
        trt = self._require()
        logger = _logger(trt)
        logger._clear()
        network_typing = _network_typing(trt, tuple(options.get("builder_flags", ())))
        builder = trt.Builder(logger)
        network = _parsed_network(trt, builder, logger, model, network_typing)
        tensorrt_layers.mark_outputs(network, marked)
        config = builder.create_builder_config()
        flag_names = _configure(trt, config, build, level)
        _add_profiles(builder, config, logger, profiles)
        cache = self._attach_timing_cache(config, options)
        if self._progress is not None:
            config.progress_monitor = _progress_monitor(trt, self._progress)

        started = time.perf_counter()
        plan = builder.build_serialized_network(network, config)
        build_s = time.perf_counter() - started
        if plan is None:
            raise BackendError(f"TensorRT failed to build {model.path}: {logger._errors() or 'no error logged'}")
        data = bytes(memoryview(plan))
        self._merge_timing_cache(cache)
        metadata: dict[str, Any] = {
            "tensorrt_version": trt.__version__,
            "build_s": round(build_s, 3),
            "engine_bytes": len(data),
            "precision": build.precision,
            "tf32": build.precision == "tf32",
            "strongly_typed": network_typing.strongly_typed,
            "builder_flags": flag_names,
            "network_flags": list(network_typing.creation_flag_names),
            "version_compatible": bool(options.get("version_compatible")),
            "hardware_compatibility": level,
            "profiles": [{k: [list(s) for s in v] for k, v in triples.items()} for triples in profiles],
            "timing_cache": cache is not None,
        }
        metadata.update(self._inspect(trt, logger, data, metadata["version_compatible"]))
        return Artifact(data=data, metadata=metadata)

    def intermediate_tensors(
        self, model: LoadedModel, build: BuildSpec, feed: Mapping[str, np.ndarray], names: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """The tensors ``names`` of ``model``'s network as one run on ``feed`` computes them, from an
        engine built with them marked as outputs; names the parsed network lacks are left out."""
        with closing(self.load(self.build(model, build, marked=names), model, build)) as runner:
            outputs = runner.infer(feed)
        return {name: outputs[name] for name in names if name in outputs}

    def _check_build_request(self, model: LoadedModel, build: BuildSpec) -> None:
        """Builds this runtime or this model cannot have, refused before TensorRT is touched."""
        if self._runtime_kind != "full":
            raise BackendError(
                f"the TensorRT {self._runtime_kind} runtime cannot build engines: build with the full "
                f"runtime and version_compatible=True, then load with --trt-runtime={self._runtime_kind}"
            )
        if build.precision in QUANTIZED_PRECISIONS and not model.quantized:
            raise BackendError(
                f"precision={build.precision!r} needs an explicitly quantized model (QuantizeLinear/"
                f"DequantizeLinear nodes), and {model.path} has none"
            )

    def _attach_timing_cache(self, config: Any, options: Mapping[str, Any]) -> Any:
        """The timing cache the build starts from (the stored one, or an empty one where the
        stored one was made on another device or version), or None when none is kept."""
        if self._timing_cache is None or not options.get("timing_cache", True):
            return None
        cache = config.create_timing_cache(self._timing_cache.load() or b"")
        if not config.set_timing_cache(cache, False):
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)
        return cache

    def _merge_timing_cache(self, cache: Any) -> None:
        if cache is not None and self._timing_cache is not None:
            self._timing_cache.merge(bytes(memoryview(cache.serialize())))

    def _inspect(self, trt: ModuleType, logger: _CapturedLog, data: bytes, version_compatible: bool) -> dict[str, Any]:
        """Device memory size and the layer list, from the plan just built."""
        runtime = trt.Runtime(logger)
        runtime.engine_host_code_allowed = version_compatible
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise BackendError(f"TensorRT could not load the engine it just built: {logger._errors()}")
        inspector = engine.create_engine_inspector()
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        layers = [layer if isinstance(layer, str) else layer.get("Name", "") for layer in info.get("Layers", [])]
        return {"device_memory_bytes": int(engine.device_memory_size_v2), "layers": layers}

    # -- load --------------------------------------------------------------------------------

    def load(self, artifact: Artifact, model: LoadedModel, build: BuildSpec) -> TensorRTRunner:
        version_compatible = bool(artifact.metadata.get("version_compatible"))
        if self._runtime_kind != "full" and not version_compatible:
            raise BackendError(
                f"the TensorRT {self._runtime_kind} runtime loads only version-compatible plans; "
                f"build with version_compatible=True (the plan for {model.path} was not)"
            )
        trt = self._require()
        logger = _logger(trt)
        logger._clear()
        runtime = trt.Runtime(logger)
        # Our own plans carry the lean runtime when version compatible; TensorRT refuses to run
        # that host code unless told the plan is trusted.
        runtime.engine_host_code_allowed = version_compatible
        engine = runtime.deserialize_cuda_engine(artifact.data)
        if engine is None:
            raise BackendError(
                f"TensorRT ({self.runtime_version()}, {self._runtime_kind} runtime) could not deserialize "
                f"the engine for {model.path}: {logger._errors() or 'no reason logged'}"
            )
        return TensorRTRunner(trt, self._cuda_layer(), runtime, engine)


@dataclass
class _Binding:
    spec: TensorSpec
    shape: tuple[int, ...]
    device: DeviceMemory
    host: PinnedArray


class TensorRTRunner:
    """A deserialized engine with one execution context and one non-blocking stream."""

    backend = "tensorrt"
    def __init__(self, trt: ModuleType, cuda: CudaApi, runtime: Any, engine: Any) -> None:
        self._trt = trt
        self._cuda = cuda
        self.device = f"cuda:{cuda.device}"  # the GPU the engine runs on (timing/lock.py)
        self._runtime = runtime  # engines must not outlive their runtime
        self._engine = engine
        self._context = engine.create_execution_context()
        self._stream = cuda.create_stream()
        self._profile = 0  # a new context starts on profile 0
        self._bindings: dict[str, _Binding] = {}
        self.inputs, self.outputs = self._io_specs()

    def sibling(self) -> TensorRTRunner:
        """Another execution context of this engine on a stream of its own, for concurrent
        streams (TensorRT >= 10 lets contexts share optimization profile 0)."""
        return TensorRTRunner(self._trt, self._cuda, self._runtime, self._engine)

    def _io_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        trt = self._trt
        inputs: list[TensorSpec] = []
        outputs: list[TensorSpec] = []
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            dtype = self._engine.get_tensor_dtype(name)
            try:
                np_dtype = np.dtype(trt.nptype(dtype))
            except TypeError:
                raise BackendError(
                    f"tensor {name!r} has type {dtype}, which numpy cannot hold; keep the model's "
                    f"inputs and outputs fp32/fp16 (keep_io_types in the precision transform)"
                ) from None
            shape = tuple(None if d < 0 else int(d) for d in self._engine.get_tensor_shape(name))
            spec = TensorSpec(name, np_dtype, shape)
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(spec)
        return inputs, outputs

    def _bind(self, feed: Mapping[str, np.ndarray], context: Any = None) -> list[_Binding]:
        """Set input shapes, size outputs, and point every tensor (of ``context``, by default the
        runner's) at a device buffer."""
        context = self._context if context is None else context
        names = {spec.name for spec in self.inputs}
        if set(feed) != names:
            raise BackendError(
                f"the feed must hold exactly the engine's inputs {sorted(names)}; "
                f"missing {sorted(names - set(feed))}, unknown {sorted(set(feed) - names)}"
            )
        self._select_profile({spec.name: tuple(feed[spec.name].shape) for spec in self.inputs})
        for spec in self.inputs:
            array = feed[spec.name]
            if array.dtype != spec.dtype:
                raise BackendError(f"input {spec.name!r} is {array.dtype}, the engine takes {spec.dtype}")
            if not context.set_input_shape(spec.name, array.shape):
                low, _, high = self._engine.get_tensor_profile_shape(
                    spec.name, self._profile if context is self._context else 0
                )
                raise BackendError(
                    f"input {spec.name!r}: shape {tuple(array.shape)} is outside the engine's "
                    f"optimization profile (min {tuple(low)}, max {tuple(high)})"
                )
        unresolved = context.infer_shapes()
        if unresolved:
            raise BackendError(f"TensorRT cannot infer the shapes of {list(unresolved)} from the inputs")
        bound = []
        for spec in self.inputs + self.outputs:
            shape = tuple(int(d) for d in context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise BackendError(
                    f"output {spec.name!r} has a data-dependent shape {shape}; pytest-trt does not "
                    f"run engines with data-dependent output shapes (no output allocator)"
                )
            binding = self._buffer(spec, shape)
            if not context.set_tensor_address(spec.name, binding.device.ptr):
                raise BackendError(f"TensorRT refused the device address of tensor {spec.name!r}")
            bound.append(binding)
        for binding in bound[: len(self.inputs)]:
            binding.host.array[...] = feed[binding.spec.name]
        return bound

    def _select_profile(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Switch to the first optimization profile that holds ``shapes`` (the plugin has checked
        that one does); the switch comes before ``set_input_shape``, as TensorRT requires."""
        engine = self._engine
        for index in range(engine.num_optimization_profiles):
            if all(self._holds(engine.get_tensor_profile_shape(name, index), shape) for name, shape in shapes.items()):
                break
        else:
            return  # set_input_shape refuses the shape and says so
        if index != self._profile:
            if not self._context.set_optimization_profile_async(index, self._stream.handle):
                raise BackendError(f"TensorRT refused to switch to optimization profile {index}")
            self._stream.synchronize()  # the switch may enqueue copies on this stream
            self._profile = index

    @staticmethod
    def _holds(bounds: Any, shape: tuple[int, ...]) -> bool:
        low, _, high = bounds
        return len(low) == len(shape) and all(a <= d <= b for a, d, b in zip(low, shape, high, strict=True))

    def _buffer(self, spec: TensorSpec, shape: tuple[int, ...]) -> _Binding:
        binding = self._bindings.get(spec.name)
        if binding is not None and binding.shape == shape:
            return binding
        if binding is not None:
            binding.device.free()
            binding.host.free()
        nbytes = int(np.prod(shape, dtype=np.int64)) * spec.dtype.itemsize
        binding = _Binding(spec, shape, self._cuda.device_alloc(nbytes), self._cuda.pinned_empty(shape, spec.dtype))
        self._bindings[spec.name] = binding
        return binding

    def device_memory(self) -> int:
        """The engine's activation memory (``device_memory_size_v2``) and this runner's buffers."""
        return int(self._engine.device_memory_size_v2) + sum(b.device.nbytes for b in self._bindings.values())

    def _enqueue(self) -> bool:
        return bool(self._context.execute_async_v3(self._stream.handle))

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        bound = self._bind(feed)
        inputs, outputs = bound[: len(self.inputs)], bound[len(self.inputs) :]
        for b in inputs:
            self._cuda.copy_htod_async(b.device.ptr, b.host.array, self._stream)
        if not self._enqueue():
            raise BackendError("execute_async_v3 returned False (see the TensorRT log)")
        for b in outputs:
            self._cuda.copy_dtoh_async(b.host.array, b.device.ptr, self._stream)
        self._stream.synchronize()
        return {b.spec.name: b.host.array.copy() for b in outputs}

    def timed_session(self, feed: Mapping[str, np.ndarray], settings: MeasureSettings) -> EventTimedLoop:
        """trtexec's timeline for this feed; the session's buffers stay bound until it closes,
        so do not call ``infer`` with other shapes while it is open."""
        bound = self._bind(feed)
        inputs, outputs = bound[: len(self.inputs)], bound[len(self.inputs) :]
        session = EventTimedLoop(
            self._cuda,
            self._stream,
            self._enqueue,
            inputs=[(b.device.ptr, b.host.array) for b in inputs],
            outputs=[(b.host.array, b.device.ptr) for b in outputs],
            transfers=settings.transfers,
            sync=settings.sync,
            cuda_graph=settings.cuda_graph,
        )
        session.mode["backend"] = "tensorrt"
        return session

    def profile_layers(self, feed: Mapping[str, np.ndarray], runs: int = PROFILE_RUNS) -> LayerProfile:
        """Per-layer times from a second execution context (backends/tensorrt_layers.py)."""
        return tensorrt_layers.profile(self._trt, self._engine, lambda context: self._bind(feed, context), self._stream, runs)

    def close(self) -> None:
        self._stream.synchronize()
        for binding in self._bindings.values():
            binding.device.free()
            binding.host.free()
        self._bindings.clear()
        self._stream.close()
        # Context before engine before runtime: TensorRT's required destruction order.
        self._context = None
        self._engine = None
        self._runtime = None


# -- helpers ---------------------------------------------------------------------------------

class _CapturedLog(Protocol):
    """The TensorRT logger this module installs, which keeps what TensorRT logged."""

    def _clear(self) -> None: ...

    def _errors(self) -> str: ...


_LOGGERS: dict[str, _CapturedLog] = {}


def _logger(trt: ModuleType) -> _CapturedLog:
    """The one logger per TensorRT module: TensorRT keeps the first logger it sees per process."""
    key = trt.__name__
    if key not in _LOGGERS:

        class CapturingLogger(trt.ILogger):  # type: ignore[name-defined]  # a class of the untyped bindings
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self._messages: list[tuple[str, str]] = []

            def log(self, severity: Any, msg: str) -> None:
                self._messages.append((str(severity), msg))

            def _clear(self) -> None:
                self._messages.clear()

            def _errors(self) -> str:
                return " | ".join(m for s, m in self._messages if s.endswith("ERROR"))

        _LOGGERS[key] = CapturingLogger()
    return _LOGGERS[key]


def _progress_monitor(trt: ModuleType, report: Callable[[str], None]) -> Any:
    class ProgressMonitor(trt.IProgressMonitor):  # type: ignore[name-defined]  # a class of the untyped bindings
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            report(f"TensorRT build: {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            report(f"TensorRT build: {phase_name} done")

    return ProgressMonitor()


@dataclass(frozen=True)
class _NetworkTyping:
    """How the network is typed: strongly (in the graph's own types) unless builder flags that
    only a weakly typed network has are asked for (TensorRT 10.x)."""

    weak_flags: tuple[str, ...]
    creation_flags: int  # NetworkDefinitionCreationFlag bits
    creation_flag_names: tuple[str, ...]

    @property
    def strongly_typed(self) -> bool:
        return not self.weak_flags


def _network_typing(trt: ModuleType, extra_flags: tuple[str, ...]) -> _NetworkTyping:
    weak = tuple(f for f in extra_flags if f in WEAK_TYPING_FLAGS)
    major = major_version(trt.__version__)
    if weak and major >= 11:
        raise BackendError(
            f"builder_flags {list(weak)}: TensorRT {trt.__version__} is strongly typed only and has no "
            f"such BuilderFlag; precision comes from the ONNX graph (use precision=)"
        )
    if major == 10 and not weak:  # 11.x is always strongly typed; the flag is ignored there
        return _NetworkTyping(weak, 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED), ("STRONGLY_TYPED",))
    return _NetworkTyping(weak, 0, ())


def _parsed_network(
    trt: ModuleType, builder: Any, logger: _CapturedLog, model: LoadedModel, network_typing: _NetworkTyping
) -> Any:
    """The model's network, parsed from its file; a BackendError lists every parser error."""
    flags = network_typing.creation_flags
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(model.path)):
        problems = []
        for index in range(parser.num_errors):
            error = parser.get_error(index)
            problems.append(
                f"node {error.node()} {error.node_name()!r} (op {error.node_operator()}): "
                f"{error.code()}: {error.desc()}"
            )
        listing = "\n  ".join(problems) or logger._errors() or "no parser error recorded"
        raise BackendError(f"TensorRT could not parse {model.path}:\n  {listing}")
    return network


def _configure(trt: ModuleType, config: Any, build: BuildSpec, level: str) -> list[str]:
    """Set the build options on the builder config; the BuilderFlags set, by name."""
    options = build.option_map
    if "workspace_mb" in options:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, positive(options, "workspace_mb") << 20)
    if "optimization_level" in options:
        config.builder_optimization_level = ranged(options, "optimization_level", 0, 5)
    if "max_aux_streams" in options:
        config.max_aux_streams = ranged(options, "max_aux_streams", 0, 1 << 10)
    if level != "none":
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, HARDWARE_COMPATIBILITY[level])
    # TF32 is on by default in TensorRT; precision="fp32" means real fp32 math.
    if build.precision != "tf32":
        config.clear_flag(trt.BuilderFlag.TF32)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer list for the inspector
    flag_names = _flag_names(build)
    for name in flag_names:
        _set_flag(trt, config, name)
    return flag_names


def _flag_names(build: BuildSpec) -> list[str]:
    """The BuilderFlags a build asks for, by name, in the order they are set."""
    options = build.option_map
    wanted = [
        ("VERSION_COMPATIBLE", bool(options.get("version_compatible"))),
        ("EXCLUDE_LEAN_RUNTIME", bool(options.get("exclude_lean_runtime"))),
        ("TF32", build.precision == "tf32"),
    ]
    return [name for name, on in wanted if on] + list(options.get("builder_flags", ()))


def _set_flag(trt: ModuleType, config: Any, name: str) -> None:
    flag = getattr(trt.BuilderFlag, name, None)
    if flag is None:
        raise BackendError(f"builder_flags: TensorRT {trt.__version__} has no BuilderFlag {name!r}")
    config.set_flag(flag)


def _add_profiles(builder: Any, config: Any, logger: _CapturedLog, profiles: ProfileShapes) -> None:
    """One optimization profile per ``profile=`` entry, with every dynamic input's (min, opt, max)
    shapes (a single one from the concrete shapes where ``profile=`` is not given)."""
    for triples in profiles:
        profile = builder.create_optimization_profile()
        for input_name, (low, opt, high) in triples.items():
            profile.set_shape(input_name, low, opt, high)
        if config.add_optimization_profile(profile) < 0:
            raise BackendError(f"TensorRT rejected the optimization profile {dict(triples)}: {logger._errors()}")
