"""The onnxruntime-trt-rtx backend: TensorRT-RTX as an onnxruntime plugin execution provider.

The provider ships on PyPI as ``onnxruntime-ep-nv-tensorrt-rtx-cu13`` (TensorRT-RTX's builder,
ONNX parser and runtime included) and is loaded into onnxruntime 1.24+ with
``register_execution_provider_library``; sessions take it per device (``get_ep_devices``,
``SessionOptions.add_provider_for_devices``). ``build`` opens the model with it and keeps the
EP-context model onnxruntime writes (the serialized engine embedded in ONNX) as the artifact,
in the engine cache like every artifact; ``load`` opens that model on a stream the runner owns.

TensorRT-RTX runs on RTX GPUs only (compute capability 8.6, 8.9, 12.0 and newer): elsewhere the
provider refuses the device, and that refusal, in its words, is what availability reports.
Precision is the graph's, as for the TensorRT provider; fp32 engines are built with
NVIDIA_TF32_OVERRIDE=0 (the provider has no TF32 option).
"""

from __future__ import annotations

import glob
import importlib
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pytest_trt.backends import onnxruntime_gpu as gpu
from pytest_trt.backends.base import Artifact, Availability, BackendError
from pytest_trt.backends.profiles import ProfileShapes, optimization_profiles, shape_texts
from pytest_trt.cuda.runtime import CudaApi, Stream
from pytest_trt.store import workdirs

if TYPE_CHECKING:
    from pytest_trt.model import LoadedModel
    from pytest_trt.specs import BuildSpec

PROVIDER = "NvTensorRTRTXExecutionProvider"
PACKAGE = "onnxruntime-ep-nv-tensorrt-rtx-cu13"
MODULE = "onnxruntime_ep_nv_tensorrt_rtx"
CONTEXT_MODEL = "model_ctx.onnx"
# onnxruntime's session config keys that make it write the EP-context model.
EP_CONTEXT_CONFIG = ("ep.context_enable", "ep.context_file_path", "ep.context_embed_mode")

DRM_CARDS = "/sys/class/drm/card*"
VERBOSE, WARNING = 0, 2  # onnxruntime's logging severities (WARNING is its default)
_REFUSAL = re.compile(r"support|capabilit|refus", re.IGNORECASE)
_OWN_TAGS = ("NvTensorRTRTX", "TensorRT-RTX", "TensorRT RTX")
_OWN_WORDS = re.compile(r"\[?(NvTensorRTRTX|TensorRT-RTX|TensorRT RTX).*")


@dataclass(frozen=True)
class _Registration:
    problem: str  # why the library did not load; "" when it did
    log: tuple[str, ...]  # what onnxruntime and the provider logged meanwhile


# register_execution_provider_library is process-wide: its outcome per onnxruntime module.
_REGISTERED: dict[str, _Registration] = {}


def provider_words(lines: Sequence[str]) -> str:
    """The provider's own sentence about this machine in onnxruntime's log: its first line that
    speaks of support or capabilities, else its last error or warning; "" if none."""
    own = [line for line in lines if any(tag in line for tag in _OWN_TAGS)]
    refusals = [line for line in own if _REFUSAL.search(gpu.strip_log_prefix(line))]
    flagged = [line for line in own if "[E:" in line or "[W:" in line]
    chosen = refusals[:1] or flagged[-1:]
    if not chosen:
        return ""
    text = gpu.strip_log_prefix(chosen[0])
    own_words = _OWN_WORDS.search(text)  # from the provider's own tag on
    return own_words.group(0) if own_words is not None else text


def _set_log_severity(ort: ModuleType, level: int) -> None:
    setter = getattr(ort, "set_default_logger_severity", None)
    if setter is not None:
        setter(level)


def rtx_provider_options(
    build: BuildSpec,
    profiles: ProfileShapes,
    stream: Stream | None,
    *,
    cuda_graph: bool = False,
) -> dict[str, str]:
    options = build.option_map
    result = dict(gpu.stream_options(stream))
    if "workspace_mb" in options:
        workspace = options["workspace_mb"]
        if not 1 <= workspace <= 1 << 30:
            raise BackendError(f"workspace_mb must be in [1, {1 << 30}], got {workspace!r}")
        result["nv_max_workspace_size"] = str(workspace << 20)
    if profiles:
        keys = ("nv_profile_min_shapes", "nv_profile_opt_shapes", "nv_profile_max_shapes")
        result.update(zip(keys, shape_texts(profiles), strict=True))
    if cuda_graph:
        result["enable_cuda_graph"] = "1"
    return result


def ep_context_config(path: Path) -> dict[str, str]:
    """Session config entries that write the EP-context model to ``path``, engine embedded."""
    return dict(zip(EP_CONTEXT_CONFIG, ("1", str(path), "1"), strict=True))


class OnnxRuntimeTrtRtxBackend(gpu.GpuProviderBackend):
    """``OnnxRuntimeTrtRtxBackend(cuda_api=...)``; ``ort`` / ``plugin`` / ``cuda`` replace the
    imported modules in unit tests."""

    name = "onnxruntime-trt-rtx"
    provider = PROVIDER

    def __init__(
        self,
        cuda_api: str = "",
        *,
        ort: ModuleType | None = None,
        plugin: ModuleType | None = None,
        cuda: CudaApi | None = None,
        gpu: int = 0,
    ) -> None:
        super().__init__(cuda_api, ort=ort, cuda=cuda, gpu=gpu)
        self._plugin = plugin

    # -- availability ------------------------------------------------------------------------

    def _decide(self) -> Availability:
        ort, found = self._onnxruntime()
        if ort is None:
            return found
        if not hasattr(ort, "register_execution_provider_library"):
            return Availability(
                False, f"onnxruntime {ort.__version__} cannot load plugin execution providers (1.24 or later can)"
            )
        plugin, found = self._provider_package()
        if plugin is None:
            return found
        for check in (
            lambda: gpu.gpu_status(self._cuda_available),
            lambda: self._offers_a_device(ort, plugin),
            lambda: self._runs_a_session(ort),
        ):
            found = check()
            if not found.ok:
                return found
        return Availability(True)

    def _provider_package(self) -> tuple[ModuleType | None, Availability]:
        """The provider's package (imported once), or None and why it cannot be imported."""
        if self._plugin is None:
            try:
                self._plugin = importlib.import_module(MODULE)
            except ModuleNotFoundError as exc:
                if exc.name != MODULE:
                    return None, Availability(False, f"{PACKAGE} is not importable ({exc})")
                return None, Availability(False, f"{PACKAGE} is not installed (pip install {PACKAGE})")
            except ImportError as exc:
                return None, Availability(False, f"{PACKAGE} is not importable ({exc})")
        return self._plugin, Availability(True)

    def _offers_a_device(self, ort: ModuleType, plugin: ModuleType) -> Availability:
        """The provider library loads and offers a device; else the provider's words on why."""
        registration = self._register(ort, plugin)
        if registration.problem:
            return Availability(
                False, f"onnxruntime could not load the TensorRT-RTX provider library: {registration.problem}"
            )
        if not self._devices(ort):
            said = provider_words(registration.log) or self._named_session_refusal(ort) or self._no_gpu_offered(ort)
            return Availability(False, f"{PROVIDER} offers no device on this machine" + (f": {said}" if said else ""))
        return Availability(True)

    def _runs_a_session(self, ort: ModuleType) -> Availability:
        """A one-node session comes up with the provider active in it."""
        with gpu.native_stderr() as log:
            try:
                session = self._session(ort, gpu.one_node_model(), {}, {})
            except BackendError as exc:
                return Availability(False, f"{PROVIDER} cannot run here: {exc}")
        if PROVIDER not in session.get_providers():
            return Availability(False, f"onnxruntime did not enable {PROVIDER}: {gpu.logged_reason(log) or 'no reason logged'}")
        return Availability(True)

    def _register(self, ort: ModuleType, plugin: ModuleType) -> _Registration:
        """Load the provider library into onnxruntime, once per process. The provider judges the
        devices while it loads, and says why it refuses one only in onnxruntime's log, at verbose
        level: the log is kept for the reason."""
        key = ort.__name__
        if key not in _REGISTERED:
            problem = ""
            with gpu.native_stderr() as log:
                _set_log_severity(ort, VERBOSE)
                try:
                    ort.register_execution_provider_library(PROVIDER, plugin.get_library_path())
                    self._devices(ort)
                except Exception as exc:  # onnxruntime's Fail, or the plugin package's FileNotFoundError
                    problem = "" if "already registered" in str(exc).lower() else str(exc)
                finally:
                    _set_log_severity(ort, WARNING)
            _REGISTERED[key] = _Registration(problem, tuple(log))
        return _REGISTERED[key]

    @staticmethod
    def _no_gpu_offered(ort: ModuleType) -> str:
        """Why the provider saw no GPU at all: onnxruntime offers plugin providers only the
        devices it found itself, and on Linux it finds GPUs under /sys/class/drm."""
        kinds = sorted({str(d.device.type).rsplit(".", 1)[-1] for d in ort.get_ep_devices()})
        if "GPU" in kinds:
            return ""
        why = f"onnxruntime found no GPU to offer it (it lists: {', '.join(kinds) or 'nothing'})"
        if sys.platform.startswith("linux") and not glob.glob(DRM_CARDS):
            why += f"; it looks for GPUs under {DRM_CARDS.rsplit('/', 1)[0]}, which has no card on this machine"
        return why

    @staticmethod
    def _named_session_refusal(ort: ModuleType) -> str:
        """What the provider says when a session asks for it by name (it may refuse this GPU
        when it is created, rather than while listing devices)."""
        with gpu.native_stderr() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                gpu.open_session(ort, gpu.one_node_model(), gpu.quiet_options(ort), [PROVIDER])
            except BackendError as exc:
                return provider_words(str(exc).splitlines()) or str(exc)
        return provider_words(log)

    def _devices(self, ort: ModuleType) -> list[Any]:
        # The provider takes one device per session: the process's GPU, by its place among
        # the devices the provider offers (not verified on a host with several RTX GPUs).
        return [d for d in ort.get_ep_devices() if d.ep_name == PROVIDER][self.gpu : self.gpu + 1]

    def _session(self, ort: ModuleType, source: str | bytes, options: Mapping[str, str], config: Mapping[str, str]) -> Any:
        session_options = gpu.quiet_options(ort)
        for key, value in config.items():
            session_options.add_session_config_entry(key, value)
        try:
            session_options.add_provider_for_devices(self._devices(ort), dict(options))
        except Exception as exc:
            raise BackendError(f"onnxruntime refused the {PROVIDER} options {dict(options)}: {exc}") from None
        return gpu.open_session(ort, source, session_options, None)

    def runtime_version(self) -> str:
        ort = self._ort or gpu.import_onnxruntime()
        package = gpu.package_version(PACKAGE) or "unknown"
        folder = self._plugin.__file__ if self._plugin is not None else None
        libraries = sorted(Path(folder).parent.glob("libtensorrt_rtx.so.*.*")) if folder else []
        rtx = (gpu.infer_lib_version(str(libraries[-1])) if libraries else None) or "unknown"
        return f"onnxruntime {ort.__version__} {PROVIDER} {package}, TensorRT-RTX {rtx}"

    # -- build and load ------------------------------------------------------------------------

    def build(self, model: LoadedModel, build: BuildSpec) -> Artifact:
        ort = self._require()
        profiles = optimization_profiles(model, build)
        with workdirs.scratch("pytest-trt-ort-rtx-") as tmp:
            context_model = Path(tmp) / CONTEXT_MODEL
            options = rtx_provider_options(build, profiles, None)
            with gpu.tf32_policy(build.precision):
                session = self._session(ort, str(model.path), options, ep_context_config(context_model))
            gpu.require_provider(session, PROVIDER, model.path)
            del session
            if not context_model.is_file():
                raise BackendError(f"{model.path}: onnxruntime wrote no EP-context model for {PROVIDER}")
            data = context_model.read_bytes()
        metadata = {
            "provider": PROVIDER,
            "runtime_version": self.runtime_version(),
            "precision": build.precision,
            "tf32": build.precision == "tf32",
            "profiles": [{name: [list(s) for s in triple] for name, triple in p.items()} for p in profiles],
        }
        return Artifact(data=data, metadata=metadata)

    def load(self, artifact: Artifact, model: LoadedModel, build: BuildSpec) -> gpu.OrtGpuRunner:
        ort = self._require()

        def open_session(stream: Stream, cuda_graph: bool) -> Any:
            session = self._session(ort, artifact.data, rtx_provider_options(build, [], stream, cuda_graph=cuda_graph), {})
            gpu.require_provider(session, PROVIDER, model.path)
            return session

        return gpu.OrtGpuRunner(self.name, ort, self._cuda_layer(), open_session, model.inputs, model.outputs)
