"""The onnxruntime-cuda backend: onnxruntime's CUDA execution provider, timed like trtexec.

``build`` runs onnxruntime's graph optimizations once with the CUDA provider and keeps the
optimized model as the artifact; ``load`` opens it with optimizations off on a stream the runner
owns. Timing is ``onnxruntime_gpu.OrtGpuRunner``'s: IOBinding on device buffers, CUDA events
around H2D, compute and D2H, onnxruntime's own CUDA graph where asked and the model allows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_trt.arguments import CONVERTED_PRECISIONS
from pytest_trt.backends import onnxruntime_gpu as gpu
from pytest_trt.backends.base import Artifact, Availability, BackendError
from pytest_trt.backends.onnxruntime import graph_optimization_level
from pytest_trt.cuda.runtime import Stream
from pytest_trt.store import workdirs

if TYPE_CHECKING:
    from pytest_trt.model import LoadedModel
    from pytest_trt.specs import BuildSpec

PROVIDER_LIBRARY = "libonnxruntime_providers_cuda.so"

# onnxruntime's level-1 LayerNorm fusion takes the Cast that a converted model's fp32 input goes
# through (fp32 -> fp16) into the fused node, binding fp32 and fp16 to one type: the session does
# not open. A plugin-made fp16/bf16 form is optimized with that one fusion off.
CONVERTED_FORM_FUSIONS_OFF = ("LayerNormFusionL1",)


def fusions_off(build: BuildSpec) -> tuple[str, ...]:
    """The graph transformers not to run when optimizing ``build``'s model."""
    return CONVERTED_FORM_FUSIONS_OFF if build.precision in CONVERTED_PRECISIONS else ()


class OnnxRuntimeCudaBackend(gpu.GpuProviderBackend):
    """``OnnxRuntimeCudaBackend(cuda_api=...)``; ``ort`` / ``cuda``: an onnxruntime module and a
    CUDA layer to use instead of importing them (unit tests pass test doubles)."""

    name = "onnxruntime-cuda"
    provider = gpu.CUDA_PROVIDER

    # -- availability ------------------------------------------------------------------------

    def _decide(self) -> Availability:
        ort, found = self._onnxruntime()
        if ort is None:
            return found
        for check in (
            lambda: gpu.provider_compiled_in(ort, self.provider),
            lambda: gpu.gpu_status(self._cuda_available),
            lambda: gpu.provider_comes_up(
                ort, self.provider, [(self.provider, {"device_id": str(self.gpu)}), gpu.CPU_PROVIDER], PROVIDER_LIBRARY
            ),
        ):
            found = check()
            if not found.ok:
                return found
        return Availability(True)

    def runtime_version(self) -> str:
        ort = self._ort or gpu.import_onnxruntime()
        return f"onnxruntime {ort.__version__} {self.provider}"

    def device_fingerprint(self, build: BuildSpec) -> dict[str, Any]:
        # Level "all" fuses nodes into kernels of the provider it ran with, on this GPU.
        off = fusions_off(build)
        return {**gpu.gpu_fingerprint(self._cuda_layer()), "provider": self.provider, **({"fusions_off": list(off)} if off else {})}

    # -- build and load ------------------------------------------------------------------------

    def build(self, model: LoadedModel, build: BuildSpec) -> Artifact:
        ort = self._require()
        level, ort_level = graph_optimization_level(ort, build)
        with workdirs.scratch("pytest-trt-ort-cuda-") as tmp:
            optimized = Path(tmp) / "optimized.onnx"
            options = gpu.quiet_options(ort)
            options.graph_optimization_level = ort_level
            options.optimized_model_filepath = str(optimized)
            providers = self._providers(build, None, cuda_graph=False)
            session = gpu.open_session(ort, str(model.path), options, providers, fusions_off=fusions_off(build))
            gpu.require_provider(session, self.provider, model.path)
            del session
            if not optimized.is_file():
                raise BackendError(f"{model.path}: onnxruntime wrote no optimized model")
            data = optimized.read_bytes()
        return Artifact(data=data, metadata={"graph_optimization_level": level, "provider": self.provider, "tf32": build.precision == "tf32"})

    def load(self, artifact: Artifact, model: LoadedModel, build: BuildSpec) -> gpu.OrtGpuRunner:
        ort = self._require()

        def open_session(stream: Stream, cuda_graph: bool) -> Any:
            options = gpu.quiet_options(ort)
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # done at build
            session = gpu.open_session(ort, artifact.data, options, self._providers(build, stream, cuda_graph=cuda_graph))
            gpu.require_provider(session, self.provider, model.path)
            return session

        return gpu.OrtGpuRunner(self.name, ort, self._cuda_layer(), open_session, model.inputs, model.outputs)

    def _providers(self, build: BuildSpec, stream: Stream | None, *, cuda_graph: bool) -> list[Any]:
        return [(self.provider, gpu.cuda_provider_options(build.precision, stream, cuda_graph=cuda_graph, device=self.gpu)), gpu.CPU_PROVIDER]
