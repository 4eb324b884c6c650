"""The onnxruntime-tensorrt backend: onnxruntime's TensorRT execution provider.

``build`` opens the model with the provider, which builds its TensorRT engines, and keeps the
EP-context model it writes (the serialized engines embedded in ONNX) as the artifact, so the
engine lives in pytest-trt's engine cache, keyed and locked like every artifact; TensorRT's
timing cache lives there too, per TensorRT version and GPU. ``load`` opens the EP-context model
on a stream the runner owns; timing is ``onnxruntime_gpu.OrtGpuRunner``'s.

Precision comes from the graph (docs/precision.md): fp16 and bf16 models arrive converted, so
``trt_fp16_enable`` stays off. That flag would make onnxruntime build a weakly typed network,
free to run the ops the conversion kept in fp32 (``keep_fp32_ops``) in fp16; without it the
network is strongly typed and TensorRT computes in the graph's types. The provider has no TF32
option, and TensorRT enables TF32 by default, so fp32 engines are built with
NVIDIA_TF32_OVERRIDE=0 (``onnxruntime_gpu.tf32_policy``).

The provider's library needs TensorRT 10 (``libnvinfer.so.10``, ``libnvonnxparser.so.10``).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pytest_trt.backends import onnxruntime_gpu as gpu
from pytest_trt.backends.base import Artifact, Availability, BackendError
from pytest_trt.backends.profiles import ProfileShapes, optimization_profiles, shape_texts
from pytest_trt.cuda.runtime import CudaApi, Stream
from pytest_trt.store import workdirs
from pytest_trt.types import BackendContext, BytesStore

if TYPE_CHECKING:
    from pytest_trt.model import LoadedModel
    from pytest_trt.specs import BuildSpec

PROVIDER = "TensorrtExecutionProvider"
PROVIDER_LIBRARY = "libonnxruntime_providers_tensorrt.so"
TENSORRT_LIBRARY = "libnvinfer.so.10"
TIMING_CACHE_KIND = "ort-tensorrt-timing-cache"
CONTEXT_MODEL = "model_ctx.onnx"
OPTIMIZATION_LEVELS = range(0, 6)


def tensorrt_provider_options(
    build: BuildSpec,
    profiles: ProfileShapes,
    stream: Stream | None,
    *,
    cuda_graph: bool = False,
    timing_cache_dir: Path | None = None,
    context_model: Path | None = None,
    device: int = 0,
) -> dict[str, str]:
    """The provider options for one build or load of ``build`` on GPU ``device``."""
    options = build.option_map
    result = {"device_id": str(device), **gpu.stream_options(stream), "trt_fp16_enable": "0"}
    if "workspace_mb" in options:
        workspace = options["workspace_mb"]
        if not 1 <= workspace <= 1 << 30:
            raise BackendError(f"workspace_mb must be in [1, {1 << 30}], got {workspace!r}")
        result["trt_max_workspace_size"] = str(workspace << 20)
    if "optimization_level" in options:
        level = options["optimization_level"]
        if level not in OPTIMIZATION_LEVELS:
            raise BackendError(f"optimization_level must be in [0, 5], got {level!r}")
        result["trt_builder_optimization_level"] = str(level)
    if profiles:
        # With every dynamic input's range given, the engine is built when the session opens.
        keys = ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")
        result.update(zip(keys, shape_texts(profiles), strict=True))
    if timing_cache_dir is not None:
        result["trt_timing_cache_enable"] = "1"
        result["trt_timing_cache_path"] = str(timing_cache_dir)
    if context_model is not None:
        result["trt_dump_ep_context_model"] = "1"
        result["trt_ep_context_file_path"] = str(context_model)
        result["trt_ep_context_embed_mode"] = "1"  # the engine inside the ONNX file, not beside it
    if cuda_graph:
        result["trt_cuda_graph_enable"] = "1"
    return result


class OnnxRuntimeTensorRTBackend(gpu.GpuProviderBackend):
    """``OnnxRuntimeTensorRTBackend(cuda_api=..., cache=...)``: ``cache`` (an ``EngineCache``)
    keeps TensorRT's timing cache between builds; ``ort`` / ``cuda`` replace the imported
    modules in unit tests."""

    name = "onnxruntime-tensorrt"
    provider = PROVIDER

    def __init__(
        self,
        cuda_api: str = "",
        *,
        cache: BytesStore | None = None,
        ort: ModuleType | None = None,
        cuda: CudaApi | None = None,
        gpu: int = 0,
    ) -> None:
        super().__init__(cuda_api, ort=ort, cuda=cuda, gpu=gpu)
        self._cache = cache

    @classmethod
    def for_session(cls, context: BackendContext) -> OnnxRuntimeTensorRTBackend:
        return cls(cuda_api=context.cuda_api, cache=context.cache, gpu=context.gpu)

    # -- availability ------------------------------------------------------------------------

    def _decide(self) -> Availability:
        ort, found = self._onnxruntime()
        if ort is None:
            return found
        for check in (
            lambda: gpu.provider_compiled_in(ort, PROVIDER),
            lambda: gpu.gpu_status(self._cuda_available),
            # onnxruntime drops the provider, with a log line only, when libnvinfer.so.10 is missing.
            lambda: gpu.provider_comes_up(
                ort, PROVIDER, [(PROVIDER, {"device_id": str(self.gpu)}), gpu.CPU_PROVIDER], PROVIDER_LIBRARY
            ),
        ):
            found = check()
            if not found.ok:
                return found
        return Availability(True)

    def runtime_version(self) -> str:
        ort = self._ort or gpu.import_onnxruntime()
        tensorrt = gpu.infer_lib_version(TENSORRT_LIBRARY) or "unknown"
        return f"onnxruntime {ort.__version__} {PROVIDER}, TensorRT {tensorrt}"

    # -- build and load ------------------------------------------------------------------------

    def build(self, model: LoadedModel, build: BuildSpec) -> Artifact:
        ort = self._require()
        profiles = optimization_profiles(model, build)
        cache = self._cache if build.option_map.get("timing_cache", True) else None
        with workdirs.scratch("pytest-trt-ort-trt-") as tmp:
            context_model, timing = Path(tmp) / CONTEXT_MODEL, Path(tmp) / "timing"
            timing.mkdir()
            if cache is not None:
                _unpack(cache.get_bytes(TIMING_CACHE_KIND, self._timing_parts()), timing)
            options = tensorrt_provider_options(
                build, profiles, None, timing_cache_dir=timing, context_model=context_model, device=self.gpu
            )
            providers = [
                (PROVIDER, options),
                (gpu.CUDA_PROVIDER, gpu.cuda_provider_options(build.precision, None, device=self.gpu)),
                gpu.CPU_PROVIDER,
            ]
            with gpu.tf32_policy(build.precision):
                session = gpu.open_session(ort, str(model.path), gpu.quiet_options(ort), providers)
            gpu.require_provider(session, PROVIDER, model.path)
            del session
            if not context_model.is_file():
                raise BackendError(f"{model.path}: onnxruntime's TensorRT provider wrote no EP-context model")
            data = context_model.read_bytes()
            if cache is not None and any(timing.iterdir()):
                packed = _pack(timing)
                cache.update_bytes(TIMING_CACHE_KIND, self._timing_parts(), lambda _old: packed)
        metadata = {
            "provider": PROVIDER,
            "runtime_version": self.runtime_version(),
            "precision": build.precision,
            "tf32": build.precision == "tf32",
            "strongly_typed": True,
            "profiles": [{name: [list(s) for s in triple] for name, triple in p.items()} for p in profiles],
            "timing_cache": cache is not None,
        }
        return Artifact(data=data, metadata=metadata)

    def _timing_parts(self) -> dict[str, Any]:
        return {"runtime_version": self.runtime_version(), "device": self.device_fingerprint(_no_build())}

    def load(self, artifact: Artifact, model: LoadedModel, build: BuildSpec) -> gpu.OrtGpuRunner:
        ort = self._require()

        def open_session(stream: Stream, cuda_graph: bool) -> Any:
            # The EP-context model holds built engines: no profiles, nothing to build.
            providers = [
                (PROVIDER, tensorrt_provider_options(build, [], stream, cuda_graph=cuda_graph, device=self.gpu)),
                (gpu.CUDA_PROVIDER, gpu.cuda_provider_options(build.precision, stream, device=self.gpu)),
                gpu.CPU_PROVIDER,
            ]
            session = gpu.open_session(ort, artifact.data, gpu.quiet_options(ort), providers)
            gpu.require_provider(session, PROVIDER, model.path)
            return session

        return gpu.OrtGpuRunner(self.name, ort, self._cuda_layer(), open_session, model.inputs, model.outputs)


def _no_build() -> BuildSpec:
    from pytest_trt.specs import BuildSpec

    return BuildSpec()


def _pack(folder: Path) -> bytes:
    """The provider's timing-cache files (it names them after the GPU) as one zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                archive.write(path, path.name)
    return buffer.getvalue()


def _unpack(data: bytes | None, folder: Path) -> None:
    if not data:
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.infolist():
                name = Path(member.filename).name  # never a path outside ``folder``
                if name and not member.is_dir():
                    (folder / name).write_bytes(archive.read(member))
    except zipfile.BadZipFile:
        return  # a damaged timing cache costs build time only
