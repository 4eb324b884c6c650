"""The onnxruntime backend: the reference runner, and a first-class backend on its own.

``build`` runs onnxruntime's graph optimizations once and keeps the optimized model as the
artifact; ``load`` opens that model with optimizations off, so a cached engine starts fast.
CPU by default; other execution providers only when asked for and actually in use.

The optimized model names the source model's external-data files by their relative location,
and a session made from bytes would look for them in the working directory. ``load`` names the
model's own folder instead, where onnxruntime can be told (1.21 and later; the cache key covers
those files through the model hash); on older versions the artifact holds the weights inline,
which protobuf allows up to 2 GB.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.backends.base import Artifact, Availability, BackendError, HostCall, InferenceError, TensorSpec
from pytest_trt.backends.feeds import check_feed
from pytest_trt.backends.layer_profile import PROFILE_RUNS, LayerProfile, profile_ort_session
from pytest_trt.fingerprint import host_facts
from pytest_trt.store import workdirs

if TYPE_CHECKING:
    import onnxruntime

    from pytest_trt.model import LoadedModel
    from pytest_trt.specs import BuildSpec, MeasureSettings

CPU = "CPUExecutionProvider"
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
# The largest message protobuf serializes or parses: an inline artifact must fit.
PROTOBUF_LIMIT = 2**31 - 1
# Where a session made from bytes finds external data. Older onnxruntime ignores the key and
# reads the working directory instead, so it is relied on only from this version on.
EXTERNAL_DATA_FOLDER_KEY = "session.model_external_initializers_file_folder_path"
EXTERNAL_DATA_FOLDER_SINCE = (1, 21)


class ExternalData(str, Enum):
    """Where an artifact's weights that came from external-data files are."""

    NONE = "none"  # the model had none
    MODEL_FOLDER = "model folder"  # read from the model's own files at load
    INLINE = "inline"  # copied into the artifact (onnxruntime before 1.21)


def _ort() -> ModuleType:
    return importlib.import_module("onnxruntime")


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def availability(self) -> Availability:
        try:
            _ort()
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not importable ({exc})")
        return Availability(True)

    def runtime_version(self) -> str:
        return f"onnxruntime {_ort().__version__}"

    def device_fingerprint(self, build: BuildSpec) -> dict[str, Any]:
        # Level "all" applies layout transforms chosen for this CPU's instruction set, so an
        # optimized model is reused only on the same kind of CPU with the same providers.
        facts = host_facts()
        return {"cpu_model": facts["cpu_model"], "machine": facts["machine"], "providers": list(_providers(build))}

    def build(self, model: LoadedModel, build: BuildSpec) -> Artifact:
        ort = _ort()
        level, ort_level = graph_optimization_level(ort, build)
        with workdirs.scratch("pytest-trt-ort-") as tmp:
            optimized = Path(tmp) / "optimized.onnx"
            options = _session_options(build)
            options.graph_optimization_level = ort_level
            options.optimized_model_filepath = str(optimized)
            session = _create_session(str(model.path), options, build, model.path)
            del session
            if not optimized.is_file():
                raise BackendError(f"{model.path}: onnxruntime wrote no optimized model")
            data, external = _with_external_data(optimized, model)
        metadata = {"graph_optimization_level": level, "providers": list(_providers(build)), "external_data": external.value}
        return Artifact(data=data, metadata=metadata)

    def load(self, artifact: Artifact, model: LoadedModel, build: BuildSpec) -> OnnxRuntimeRunner:
        ort = _ort()
        options = _session_options(build)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        # External data named by the artifact is the model's own (see _with_external_data).
        options.add_session_config_entry(EXTERNAL_DATA_FOLDER_KEY, str(model.path.parent))
        session = _create_session(artifact.data, options, build, model.path)

        def profiled(prefix: str) -> onnxruntime.InferenceSession:
            """A second session with the same options, profiling on: never the timed one."""
            options.enable_profiling = True
            options.profile_file_prefix = prefix
            try:
                return _create_session(artifact.data, options, build, model.path)
            finally:
                options.enable_profiling = False

        return OnnxRuntimeRunner(session, list(model.inputs), list(model.outputs), profiled)


def _with_external_data(optimized: Path, model: LoadedModel) -> tuple[bytes, ExternalData]:
    """The optimized model's bytes, in which external tensors name files of the model's folder
    (for ``load`` to point onnxruntime at) or, where onnxruntime cannot be told that folder,
    hold their bytes inline."""
    import onnx
    from onnx import external_data_helper

    from pytest_trt.model import external_tensors
    from pytest_trt.store.memory import format_bytes

    proto = onnx.load(str(optimized), load_external_data=False)
    tensors = external_tensors(proto)
    if not tensors:
        return optimized.read_bytes(), ExternalData.NONE
    base = model.path.parent
    size = proto.ByteSize() + sum(_external_length(tensor, base, model.path) for tensor in tensors)
    version = _ort().__version__
    if _version_tuple(version) >= EXTERNAL_DATA_FOLDER_SINCE:
        return optimized.read_bytes(), ExternalData.MODEL_FOLDER
    if size > PROTOBUF_LIMIT:
        raise BackendError(
            f"{model.path}: the optimized model with its external data takes {format_bytes(size)}, over "
            f"protobuf's 2 GiB limit for one model, and onnxruntime {version} cannot load a model "
            "from memory with its weights in separate files; onnxruntime "
            f"{'.'.join(map(str, EXTERNAL_DATA_FOLDER_SINCE))} or later can"
        )
    try:
        external_data_helper.load_external_data_for_model(proto, str(base))
        return proto.SerializeToString(), ExternalData.INLINE
    except Exception as exc:  # OSError, or onnx's ValueError for a location it refuses
        raise BackendError(f"{model.path}: cannot read the model's external data: {exc}") from None


def _external_length(tensor: Any, base: Path, model_path: Path) -> int:
    from onnx import external_data_helper

    info = external_data_helper.ExternalDataInfo(tensor)
    data_path = (base / info.location).resolve()
    if not data_path.is_relative_to(base) or not data_path.is_file():
        raise BackendError(
            f"{model_path}: the optimized model names external data {info.location!r}, which is not a "
            f"file in {base}"
        )
    if info.length is not None:
        return int(info.length)
    return data_path.stat().st_size - int(info.offset or 0)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def _providers(build: BuildSpec) -> tuple[str, ...]:
    return tuple(build.option_map.get("providers") or (CPU,))


def graph_optimization_level(ort: ModuleType, build: BuildSpec) -> tuple[str, Any]:
    """The build's ``graph_optimization_level`` (default ``all``), checked, and onnxruntime's value
    for it; every onnxruntime-based backend optimizes at build with it."""
    level = build.option_map.get("graph_optimization_level", "all")
    if level not in OPTIMIZATION_LEVELS:
        raise BackendError(f"graph_optimization_level must be one of {', '.join(OPTIMIZATION_LEVELS)}; got {level!r}")
    levels = ort.GraphOptimizationLevel
    return level, {
        "disable": levels.ORT_DISABLE_ALL,
        "basic": levels.ORT_ENABLE_BASIC,
        "extended": levels.ORT_ENABLE_EXTENDED,
        "all": levels.ORT_ENABLE_ALL,
    }[level]


def _session_options(build: BuildSpec) -> onnxruntime.SessionOptions:
    options = _ort().SessionOptions()
    threads = build.option_map.get("intra_op_threads")
    if threads is not None:
        if threads < 0:
            raise BackendError(f"intra_op_threads must be >= 0 (0: onnxruntime decides), got {threads}")
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: optimizer notes would flood the test output
    return options


def _create_session(
    source: str | bytes, options: onnxruntime.SessionOptions, build: BuildSpec, model_path: Path
) -> onnxruntime.InferenceSession:
    ort = _ort()
    wanted = _providers(build)
    installed = ort.get_available_providers()
    missing = [p for p in wanted if p not in installed]
    if missing:
        raise BackendError(
            f"{model_path}: execution provider {missing[0]} is not installed "
            f"(available: {', '.join(installed)})"
        )
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=_with_options(wanted, build))
    except Exception as exc:
        raise BackendError(f"{model_path}: onnxruntime could not create a session: {exc}") from None
    # onnxruntime falls back to CPU with only a log line when e.g. CUDA fails to initialise.
    active = session.get_providers()
    dropped = [p for p in wanted if p not in active]
    if dropped:
        raise BackendError(
            f"{model_path}: onnxruntime did not enable {dropped[0]} (active: {', '.join(active)}); "
            "check the CUDA/TensorRT libraries that provider needs"
        )
    return session


def _with_options(providers: tuple[str, ...], build: BuildSpec) -> list[Any]:
    """The CUDA provider runs fp32 matmuls in TF32 by default; "fp32" must mean fp32 here as on
    TensorRT, so TF32 is on only for precision="tf32"."""
    tf32 = "1" if build.precision == "tf32" else "0"
    return [(p, {"use_tf32": tf32}) if p == "CUDAExecutionProvider" else p for p in providers]


class OnnxRuntimeRunner:
    """A session ready to run; feeds are checked so a wrong name or dtype says which input."""

    backend = "onnxruntime"

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        profiled: Callable[[str], onnxruntime.InferenceSession] | None = None,
    ) -> None:
        self._session = session
        self._profiled = profiled
        self.inputs = inputs
        self.outputs = outputs
        self._output_names = [spec.name for spec in outputs]
        # A failed run comes back as an exception with the same text; its log line would repeat it.
        self._run_options = _ort().RunOptions()
        self._run_options.log_severity_level = 4

    def _checked_feed(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return check_feed(self.inputs, feed)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        checked = self._checked_feed(feed)
        try:
            values = self._session.run(self._output_names, checked, self._run_options)
        except Exception as exc:
            raise InferenceError(f"infer: onnxruntime failed: {exc}") from None
        return dict(zip(self._output_names, values, strict=True))

    def timed_session(self, feed: Mapping[str, np.ndarray], settings: MeasureSettings) -> HostCall:
        checked = self._checked_feed(feed)
        run, names, options = self._session.run, self._output_names, self._run_options

        def once() -> None:
            try:
                run(names, checked, options)
            except Exception as exc:  # onnxruntime raises its own types; a feed it rejects is one
                raise InferenceError(f"measuring: onnxruntime failed: {exc}") from None

        return HostCall(once, probe_applies=self._probe_applies())

    def profile_layers(self, feed: Mapping[str, np.ndarray], runs: int = PROFILE_RUNS) -> LayerProfile | None:
        """Per-node times from a second session with onnxruntime's profiler on (None: this runner
        was made without one)."""
        if self._profiled is None:
            return None
        checked = self._checked_feed(feed)
        names, options = self._output_names, self._run_options
        with workdirs.scratch("pytest-trt-profile-") as folder:
            session = self._profiled(str(folder / "ort"))
            try:
                return profile_ort_session(session, lambda s: s.run(names, checked, options), runs)
            except Exception as exc:  # onnxruntime's own error types
                raise InferenceError(f"profiling layers: onnxruntime failed: {exc}") from None

    def _probe_applies(self) -> bool:
        """Whether the host-speed probe measures what this session runs on: this CPU thread alone.
        A multi-threaded session spreads over many cores and the probe runs on one, so a state
        that slows one core slows the probe, not the session (on a 16-core host: probe floor +55%,
        session floor unchanged); a GPU provider's time is not the host's."""
        threads = self._session.get_session_options().intra_op_num_threads
        single = threads == 1 or (threads == 0 and os.cpu_count() == 1)
        return single and self._session.get_providers() == ["CPUExecutionProvider"]

    def close(self) -> None:
        self._session = None
