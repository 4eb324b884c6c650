"""The steps before an engine where the mark names more than a float ONNX file, each an artifact
of the engine cache, made once and then loaded:

- ``torch=``: the module exported to ONNX (``torch_export.export_model``), cache kind
  ``torch-export``, keyed by ``torch_key.export_key``;
- ``precision="int8"`` with ``calibration=``: the Q/DQ model (``quantize.quantize_model``), cache
  kind ``quantized-model``, keyed by ``quantize.quantize_key``; every backend builds from it;
- ``reference="torch"``: the module's own outputs for a feed (``torch_export.torch_reference``),
  cache kind ``torch-reference``, keyed by the export's key and the feed's digest.

Each step says in a ``StepProvenance`` whether it was made now or loaded from the cache. torch and
onnxruntime's quantizer are imported on first use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_trt import serde
from pytest_trt.arguments import CalibrationMethod, TextEnum
from pytest_trt.errors import PrecisionError
from pytest_trt.model import LoadedModel, Shape, load_model
from pytest_trt.store.arrays import decode_arrays, encode_arrays
from pytest_trt.store.cache import EngineCache
from pytest_trt.store.files import write_atomic
from pytest_trt.store.stats import CacheEvent
from pytest_trt.types import Artifact

if TYPE_CHECKING:
    import numpy as np

    from pytest_trt.prepare.torch_export import ExportResult
    from pytest_trt.specs import TorchSpec

EXPORT_KIND = "torch-export"
QUANTIZED_KIND = "quantized-model"
TORCH_REFERENCE_KIND = "torch-reference"


class StepHow(TextEnum):
    """How this process obtained an artifact: an engine, or a step before one."""

    BUILT = "built"  # made now (and stored, where the engine cache is on)
    LOADED = "loaded"  # read from the engine cache: nothing was built, exported or quantized
    MEMORY = "memory"  # made earlier in this session (engines only)


@dataclass(frozen=True)
class StepProvenance:
    how: StepHow
    seconds: float
    cache: dict[str, Any] = field(default_factory=dict)  # the cache event
    details: dict[str, Any] = field(default_factory=dict)  # exporter, calibration, ...

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = serde.to_data(self)
        return data


def _provenance(event: CacheEvent, started: float, details: Mapping[str, Any]) -> StepProvenance:
    how = StepHow.BUILT if event.outcome.built else StepHow.LOADED
    return StepProvenance(how, time.perf_counter() - started, event.as_dict(), dict(details))


@contextmanager
def _quiet_logging() -> Iterator[None]:
    """torch's exporter and onnxruntime's quantizer log advice (torchvision missing, "consider
    pre-processing") and debug traces that would fill every failure report; their errors still
    pass. torch's warnings are kept in the export's provenance instead (torch_export)."""
    previous = logging.root.manager.disable
    # torch's structured trace logger: where torch is first imported under pytest's log capture
    # it carries pytest's handlers itself, and logging.disable does not reach its records.
    trace = logging.getLogger("torch.__trace")
    trace_was_disabled = trace.disabled
    logging.disable(logging.WARNING)
    trace.disabled = True
    try:
        yield
    finally:
        logging.disable(previous)
        trace.disabled = trace_was_disabled


def _materialize(target: Path, artifact: Artifact) -> Path:
    """The artifact's bytes at ``target`` (a name derived from its cache key), written once."""
    if not target.is_file():
        write_atomic(target, artifact.data)
    return target


# ---- torch= ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchModel:
    """A ``torch=`` model made ready: the module (its factory runs once), its export, loaded."""

    module: Any  # torch.nn.Module in eval mode
    model: LoadedModel  # the exported ONNX model
    export_key: str  # the export's engine cache key; the torch reference's entries carry it
    provenance: StepProvenance


def _torch_export() -> Any:
    """The torch_export module, or a clear error where torch itself is missing."""
    from pytest_trt.prepare import torch_export

    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise torch_export.TorchModelError(
            f"torch= needs PyTorch, which cannot be imported here ({exc}); "
            "pip install 'pytest-trt[torch]' (a CPU build will do)"
        ) from None
    return torch_export


def export_torch(cache: EngineCache, workdir: Callable[[], Path], source: TorchSpec) -> TorchModel:
    """Build the module, and export it or load its export from the engine cache. ``workdir`` is
    asked each time: it moves when the cache's disk fills up (see EngineCache.get_or_build)."""
    torch_export = _torch_export()
    module = torch_export.load_module(source.factory)
    examples, dynamic = source.example_map(), source.dynamic_map() or None
    started = time.perf_counter()
    from pytest_trt.prepare.torch_key import export_key

    parts = export_key(module, examples, dynamic, {})
    key = cache.key(EXPORT_KIND, parts)
    details: dict[str, Any] = {}

    def target() -> Path:
        return workdir() / "torch" / key[:16] / f"{source.stem}.onnx"

    def export() -> Artifact:
        with _quiet_logging():
            result: ExportResult = torch_export.export_model(module, examples, dynamic, target())
        facts = result.as_dict()
        del facts["path"]  # this session's work folder: meaningless to a later run
        return Artifact(result.path.read_bytes(), facts)

    def load(artifact: Artifact) -> LoadedModel:
        details.update(artifact.metadata)
        return load_model(_materialize(target(), artifact))

    model, event = cache.get_or_build(EXPORT_KIND, parts, build=export, load=load)
    return TorchModel(module, model, key, _provenance(event, started, details))


def torch_outputs(
    cache: EngineCache, torch_model: TorchModel, feed: Mapping[str, np.ndarray], feed_digest: str
) -> dict[str, np.ndarray]:
    """The module's outputs for ``feed`` on CPU in fp32 under ``torch.no_grad()``, named like
    the export's outputs; kept in the engine cache like the onnxruntime reference."""
    torch_export = _torch_export()
    names = [spec.name for spec in torch_model.model.outputs]
    parts = {"export_key": torch_model.export_key, "inputs": feed_digest, "outputs": names, "mode": "cpu fp32 no_grad"}

    def run() -> Artifact:
        return Artifact(encode_arrays(torch_export.torch_reference(torch_model.module, feed, output_names=names)))

    outputs, _ = cache.get_or_build(
        TORCH_REFERENCE_KIND, parts, build=run, load=lambda artifact: decode_arrays(artifact.data)
    )
    return outputs


# ---- INT8 by calibration -----------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationPlan:
    """What ``quantize_model`` is called with for one spec (hashable: engines are memoized by it)."""

    data: Path | int  # an .npz, or a count of seeded batches
    method: CalibrationMethod
    shapes: tuple[tuple[str, Shape], ...]  # the test's resolved shapes, for seeded batches
    seed: int
    input_ranges: tuple[tuple[str, tuple[float, float]], ...] = ()
    keep_fp32_ops: tuple[str, ...] = ()
    keep_fp32_nodes: tuple[str, ...] = ()

    def keywords(self) -> dict[str, Any]:
        return {
            "shapes": dict(self.shapes),
            "seed": self.seed,
            "input_ranges": dict(self.input_ranges) or None,
            "method": self.method,
            "keep_fp32_ops": self.keep_fp32_ops,
            "keep_fp32_nodes": self.keep_fp32_nodes,
        }


def quantize(
    cache: EngineCache, workdir: Callable[[], Path], model: LoadedModel, plan: CalibrationPlan
) -> tuple[LoadedModel, StepProvenance]:
    """The Q/DQ form of the float ``model``, quantized now or loaded from the engine cache
    (``workdir`` as for export_torch)."""
    from pytest_trt.prepare import quantize as quantizer

    if model.quantized:
        raise PrecisionError(
            f"{model.path}: calibration= quantizes a float model, and this one already has Q/DQ nodes; "
            "drop calibration= to run it as it is"
        )
    started = time.perf_counter()
    keywords = plan.keywords()
    parts = quantizer.quantize_key(model.path, plan.data, **keywords)
    key = cache.key(QUANTIZED_KIND, parts)
    calibration = parts["calibration"]
    if isinstance(plan.data, Path):
        calibration = {**calibration, "file": str(plan.data)}
    details = {"method": plan.method, "calibration": calibration}

    def target() -> Path:
        return workdir() / "int8" / key[:16] / f"{model.path.stem}.int8.onnx"

    def build() -> Artifact:
        with _quiet_logging():
            written = quantizer.quantize_model(model.path, target(), plan.data, **keywords)
        return Artifact(written.read_bytes())

    def load(artifact: Artifact) -> LoadedModel:
        # The quantizer's own output: onnx's checker adds nothing (see load_model).
        return load_model(_materialize(target(), artifact), check=False)

    quantized, event = cache.get_or_build(QUANTIZED_KIND, parts, build=build, load=load)
    return quantized, _provenance(event, started, details)
