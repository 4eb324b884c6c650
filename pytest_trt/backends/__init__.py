"""The backend registry: every backend pytest-trt can run, by name.

A backend registers a ``BackendInfo``: its name (valid in ``trt_perf(backend=...)`` and
``--trt-backend``), the ``trt_model`` build options it understands, whether its timings belong
to a GPU or to the host CPU, its place in ``--trt-backend=auto`` and a factory that imports the
backend's module only when called, so that loading the plugin imports no runtime. Built-in
backends are listed below; other packages register theirs through the entry point group
``pytest_trt.backends`` (each entry point names a ``BackendInfo`` or a callable returning one)
or by calling ``register`` from a conftest or plugin. Nothing outside this package tests a
backend's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from pytest_trt.errors import BackendError
from pytest_trt.types import BackendContext

if TYPE_CHECKING:
    from pytest_trt.backends.base import Backend
    from pytest_trt.specs import BuildSpec

__all__ = ["BackendContext", "BackendInfo", "DeviceKind", "create", "get", "names", "register", "registered"]

ENTRY_POINT_GROUP = "pytest_trt.backends"
_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
RESERVED_NAME = "gpu"  # judge.records.GPU_BUDGET: a trt_perf budget without backend=


class DeviceKind(Enum):
    """What a backend's timings belong to: the host CPU or a GPU (baselines, --trt-require-gpu)."""

    CPU = "cpu"
    GPU = "gpu"


def _never(build: BuildSpec) -> bool:
    return False


@dataclass(frozen=True)
class BackendInfo:
    """One registered backend."""

    name: str
    factory: Callable[[BackendContext], Backend]
    title: str = ""  # how messages name it, e.g. "TensorRT"; the name when empty
    build_options: Mapping[str, type] = field(default_factory=dict)  # trt_model keyword -> type
    device: DeviceKind = DeviceKind.CPU
    auto_rank: int | None = None  # lower is preferred by --trt-backend=auto; None: never chosen
    # True where the backend computes a reduced-precision graph in fp32 anyway, so that the
    # precision transform rounds every stored value instead (see docs/precision.md).
    emulates_reduced_precision: Callable[[BuildSpec], bool] = _never
    # True where two builds of one model, runtime and build options run the same kernels, so that
    # with nothing a baseline records changed, a slower floor is the host's (baselines/regression.py,
    # ``nothing_changed``). onnxruntime's optimizations are rules; a kernel it picks by timing
    # (cuDNN's convolution search) is picked per session, which a recording samples. TensorRT picks
    # its tactics by timing them once per build, which a baseline's sessions of one engine do not.
    reproducible_build: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise BackendError(f"backend name must be lower-case words joined by '-', got {self.name!r}")
        if self.name == RESERVED_NAME:
            raise BackendError(f"backend name {RESERVED_NAME!r} is taken: reports name GPU budgets so")
        for option, kind in self.build_options.items():
            if not isinstance(option, str) or not isinstance(kind, type):
                raise BackendError(f"backend {self.name}: build option {option!r} must map a name to a type")

    @property
    def label(self) -> str:
        return self.title or self.name

    def create(self, context: BackendContext | None = None) -> Backend:
        return self.factory(context or BackendContext())


_REGISTRY: dict[str, BackendInfo] = {}
_LOADED = False
_AT_START: set[str] = set()  # built in or from entry points: what a fresh interpreter knows too


def register(info: BackendInfo) -> None:
    """Add a backend. Registering the same name twice with another factory is an error."""
    if not isinstance(info, BackendInfo):
        raise BackendError(f"register() takes a BackendInfo, got {type(info).__name__}")
    known = _REGISTRY.get(info.name)
    # The same module registering again (a conftest imported anew) replaces its own entry.
    if known is not None and known.factory.__module__ != info.factory.__module__:
        raise BackendError(f"backend {info.name!r} is registered already (by {known.factory.__module__})")
    _REGISTRY[info.name] = info


def registered() -> dict[str, BackendInfo]:
    """Every backend: the built-in ones, then those of installed packages' entry points."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for info in _builtin():
            register(info)
        _load_entry_points()
        _AT_START.update(_REGISTRY)
    return dict(_REGISTRY)


def registered_at_start() -> frozenset[str]:
    """The backends a fresh interpreter has as well: built in, or from installed entry points
    (not those a conftest registers at run time)."""
    registered()
    return frozenset(_AT_START)


def names() -> tuple[str, ...]:
    return tuple(registered())  # built-in ones first, in registration order


def get(name: str) -> BackendInfo:
    try:
        return registered()[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r} (known: {', '.join(names())})") from None


def create(name: str, context: BackendContext | None = None) -> Backend:
    """A new backend object for ``name``; cheap, imports its runtime only when used."""
    return get(name).create(context)


def build_options() -> dict[str, type]:
    """Every build option some backend understands; a trt_model mark serves every backend."""
    merged: dict[str, type] = {}
    for info in registered().values():
        for option, kind in info.build_options.items():
            if merged.get(option, kind) is not kind:
                raise BackendError(f"build option {option!r} is declared with two types by different backends")
            merged[option] = kind
    return merged


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
            info = loaded if isinstance(loaded, BackendInfo) else loaded()
        except Exception as exc:
            raise BackendError(f"entry point {point.name!r} ({point.value}) of {ENTRY_POINT_GROUP} failed: {exc}") from None
        register(info)


# ---- the built-in backends ----------------------------------------------------------------------

ONNXRUNTIME_BUILD_OPTIONS: dict[str, type] = {
    "graph_optimization_level": str,  # disable | basic | extended | all
    "intra_op_threads": int,
    "providers": tuple,
}
TENSORRT_BUILD_OPTIONS: dict[str, type] = {
    "workspace_mb": int,
    "optimization_level": int,
    "hardware_compatibility": str,  # none | ampere_plus | same_compute_capability
    "version_compatible": bool,
    "exclude_lean_runtime": bool,
    "builder_flags": tuple,  # extra BuilderFlag names (e.g. weak-typing FP16 on TensorRT 10.x)
    "max_aux_streams": int,
    "timing_cache": bool,
}


def _onnxruntime(context: BackendContext) -> Backend:
    from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend()


def _onnxruntime_on_cpu_only(build: BuildSpec) -> bool:
    """onnxruntime's CPU provider computes fp16 in fp32."""
    return set(build.option_map.get("providers") or ("CPUExecutionProvider",)) == {"CPUExecutionProvider"}


def _tensorrt(context: BackendContext) -> Backend:
    from pytest_trt.backends.tensorrt import TensorRTBackend

    return TensorRTBackend.for_session(context)


ONNXRUNTIME_CUDA_BUILD_OPTIONS: dict[str, type] = {"graph_optimization_level": str}
ONNXRUNTIME_TENSORRT_BUILD_OPTIONS: dict[str, type] = {
    "workspace_mb": int,
    "optimization_level": int,
    "timing_cache": bool,
}
ONNXRUNTIME_TRT_RTX_BUILD_OPTIONS: dict[str, type] = {"workspace_mb": int}


def _onnxruntime_cuda(context: BackendContext) -> Backend:
    from pytest_trt.backends.onnxruntime_cuda import OnnxRuntimeCudaBackend

    return OnnxRuntimeCudaBackend.for_session(context)


def _onnxruntime_tensorrt(context: BackendContext) -> Backend:
    from pytest_trt.backends.onnxruntime_tensorrt import OnnxRuntimeTensorRTBackend

    return OnnxRuntimeTensorRTBackend.for_session(context)


def _onnxruntime_trt_rtx(context: BackendContext) -> Backend:
    from pytest_trt.backends.onnxruntime_trt_rtx import OnnxRuntimeTrtRtxBackend

    return OnnxRuntimeTrtRtxBackend.for_session(context)


def _builtin() -> list[BackendInfo]:
    return [
        BackendInfo(
            "tensorrt", _tensorrt, title="TensorRT", build_options=TENSORRT_BUILD_OPTIONS,
            device=DeviceKind.GPU, auto_rank=0,
        ),
        BackendInfo(
            "onnxruntime-tensorrt", _onnxruntime_tensorrt, title="onnxruntime's TensorRT provider",
            build_options=ONNXRUNTIME_TENSORRT_BUILD_OPTIONS, device=DeviceKind.GPU, auto_rank=10,
        ),
        BackendInfo(
            "onnxruntime-cuda", _onnxruntime_cuda, title="onnxruntime's CUDA provider",
            build_options=ONNXRUNTIME_CUDA_BUILD_OPTIONS, device=DeviceKind.GPU, auto_rank=20,
            reproducible_build=True,
        ),
        # Never chosen by auto: TensorRT-RTX runs on RTX GPUs only, and is asked for by name.
        BackendInfo(
            "onnxruntime-trt-rtx", _onnxruntime_trt_rtx, title="onnxruntime's TensorRT-RTX provider",
            build_options=ONNXRUNTIME_TRT_RTX_BUILD_OPTIONS, device=DeviceKind.GPU,
        ),
        BackendInfo(
            "onnxruntime", _onnxruntime, build_options=ONNXRUNTIME_BUILD_OPTIONS, auto_rank=100,
            emulates_reduced_precision=_onnxruntime_on_cpu_only, reproducible_build=True,
        ),
    ]
