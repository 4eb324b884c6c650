"""PyTorch models in: export to ONNX, and the module as a reference (torch_key.py keys an export).

A model is given by a factory: a callable, or an importable ``"pkg.mod:func"`` string, that
returns a ``torch.nn.Module``. Example inputs are bound to ``forward``'s parameters by name, so
the ONNX inputs carry the names the user wrote and a swapped order cannot go unnoticed.

The exporter is torch's own ``torch.onnx.export``: the dynamo exporter (``torch.export`` plus
onnxscript) first, and where it fails, the TorchScript exporter (``dynamo=False``), recorded in
``ExportResult.exporter`` with dynamo's reason in ``fallback_reason``. Everything torch-specific
is imported inside functions, so importing this module costs nothing until a model is exported.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from pytest_trt import specs
from pytest_trt.model import ModelError

if TYPE_CHECKING:
    import torch

_REASON_LINES = 3
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


ExampleInputs = Mapping[str, Any]  # name -> shape tuple, numpy array or torch tensor
Dynamic = Mapping[str, Mapping[int, str]]  # input name -> {axis: dim name}
DynamicAxes = tuple[tuple[str, tuple[tuple[int, str], ...]], ...]  # input -> ((axis, dim name), ...)


class TorchModelError(ModelError):
    """The torch model, its factory or its example inputs are wrong; the message names which."""


class ExportError(TorchModelError):
    """torch.onnx.export could not export the model; the message gives torch's own reason."""


class Exporter(Enum):
    """Which of torch's ONNX exporters to use; AUTO is dynamo, then TorchScript where it fails."""

    AUTO = "auto"
    DYNAMO = "dynamo"
    TORCHSCRIPT = "torchscript"


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how."""

    path: Path
    exporter: Exporter  # DYNAMO or TORCHSCRIPT: the one that produced the file
    fallback_reason: str | None  # why dynamo failed, when AUTO fell back to TorchScript
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: DynamicAxes  # input -> (axis, dim name)
    opset: int
    torch_version: str
    seconds: float
    warnings: tuple[str, ...] = ()  # what torch warned during the export, kept out of the run's output

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "exporter": self.exporter.value,
            "fallback_reason": self.fallback_reason,
            "input_names": list(self.input_names),
            "output_names": list(self.output_names),
            "dynamic_axes": {name: {str(a): d for a, d in axes} for name, axes in self.dynamic_axes},
            "opset": self.opset,
            "torch_version": self.torch_version,
            "seconds": self.seconds,
            "warnings": list(self.warnings),
        }


def resolve_factory(factory: Any) -> Callable[[], Any]:
    """The callable behind ``factory``: itself, or what ``"pkg.mod:func"`` names."""
    if callable(factory):
        return cast(Callable[[], Any], factory)
    if not isinstance(factory, str):
        raise TorchModelError(
            f"torch={factory!r} must be a callable returning a torch.nn.Module or a 'pkg.mod:func' string"
        )
    module_name, sep, attribute = factory.partition(":")
    if not sep or not module_name or not attribute:
        raise TorchModelError(f"torch={factory!r} must have the form 'pkg.mod:func'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # an import runs arbitrary code: any error is the user's to see
        raise TorchModelError(f"torch={factory!r}: cannot import {module_name!r} ({_reason(exc)})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise TorchModelError(f"torch={factory!r}: {target.__name__!r} has no attribute {part!r}")
        target = getattr(target, part)
    if not callable(target):
        raise TorchModelError(f"torch={factory!r} names a {type(target).__name__}, which is not callable")
    return cast(Callable[[], Any], target)


def load_module(factory: Any) -> torch.nn.Module:
    """The module ``factory`` makes (a module passes through), in eval mode.

    Call this once and pass the module to ``export_key``, ``export_model`` and
    ``torch_reference`` to build the model only once.
    """
    import torch

    if isinstance(factory, torch.nn.Module):
        return factory.eval()
    make = resolve_factory(factory)
    try:
        module = make()
    except Exception as exc:
        raise TorchModelError(f"torch={_describe(factory)}: the factory raised {_reason(exc)}") from exc
    if not isinstance(module, torch.nn.Module):
        raise TorchModelError(
            f"torch={_describe(factory)} returned a {type(module).__name__}, not a torch.nn.Module"
        )
    return module.eval()


def example_arrays(example_inputs: ExampleInputs, *, seed: int = 0) -> dict[str, np.ndarray]:
    """The example inputs as arrays: a shape becomes float32 values uniform in [-1, 1], drawn
    from a stream of its own per (seed, name), so the same shapes give the same values."""
    if not isinstance(example_inputs, Mapping) or not example_inputs:
        raise TorchModelError(
            f"example_inputs must map each input name to a shape, an array or a tensor, got {example_inputs!r}"
        )
    arrays: dict[str, np.ndarray] = {}
    for name, value in example_inputs.items():
        if not isinstance(name, str) or not name:
            raise TorchModelError(f"example_inputs: input names must be non-empty strings, got {name!r}")
        if isinstance(value, tuple | list):
            if not value or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value):
                raise TorchModelError(
                    f"example_inputs[{name!r}] must be a shape of positive ints, got {value!r}"
                )
            name_key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
            rng = np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, name_key])
            arrays[name] = rng.uniform(-1.0, 1.0, size=tuple(value)).astype(np.float32)
        elif hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
            arrays[name] = value.detach().cpu().numpy()
        elif isinstance(value, np.ndarray):
            arrays[name] = value
        else:
            raise TorchModelError(
                f"example_inputs[{name!r}] must be a shape tuple, a numpy array or a torch tensor, "
                f"got {type(value).__name__}"
            )
        if arrays[name].dtype.hasobject:
            raise TorchModelError(f"example_inputs[{name!r}] is an object array")
    return arrays


def export_options(
    *,
    opset: int | None = None,
    exporter: str | Exporter = Exporter.AUTO,
    output_names: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The export options, validated and as JSON-able data for the cache key."""
    if opset is not None and (not isinstance(opset, int) or isinstance(opset, bool) or opset < 7):
        raise TorchModelError(f"opset must be an ONNX opset number (7 or more), got {opset!r}")
    try:
        chosen = Exporter(exporter)
    except ValueError:
        raise TorchModelError(
            f"exporter must be one of {', '.join(e.value for e in Exporter)}, got {exporter!r}"
        ) from None
    if output_names is not None:
        if isinstance(output_names, str) or not all(isinstance(n, str) and n for n in output_names):
            raise TorchModelError(f"output_names must be a list of non-empty names, got {output_names!r}")
        if len(set(output_names)) != len(output_names):
            raise TorchModelError(f"output_names has duplicates: {list(output_names)!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TorchModelError(f"seed must be an int, got {seed!r}")
    return {
        "opset": opset,
        "exporter": chosen.value,
        "output_names": None if output_names is None else list(output_names),
        "seed": seed,
    }


def export_model(
    factory: Any,
    example_inputs: ExampleInputs,
    dynamic: Dynamic | None,
    out_path: str | os.PathLike[str],
    *,
    opset: int | None = None,
    exporter: str | Exporter = Exporter.AUTO,
    output_names: Sequence[str] | None = None,
    seed: int = 0,
) -> ExportResult:
    """Export the module to one self-contained ONNX file at ``out_path``, written atomically.

    The module runs in eval mode under ``torch.no_grad()``. ONNX inputs are named like the
    example inputs, outputs like ``output_names`` or, by default, after ``forward``'s result
    (``output`` for one tensor, ``output_0``... for a tuple, the keys of a dict). Each axis in
    ``dynamic`` must come out symbolic in the file, or the export is an error.
    """
    import onnx
    import torch

    options = export_options(opset=opset, exporter=exporter, output_names=output_names, seed=seed)
    module = load_module(factory)
    arrays = example_arrays(example_inputs, seed=seed)
    axes = export_axes(dynamic, arrays)
    names = _bind(module, arrays)
    tensors = {name: torch.from_numpy(np.ascontiguousarray(arrays[name])) for name in names}
    with torch.no_grad():
        try:
            result = module(**tensors)
        except Exception as exc:
            raise TorchModelError(
                f"{qualname(type(module))}.forward failed on the example inputs: {_reason(exc)}"
            ) from exc
    out_names = _output_names(_flatten_outputs(result, module), options["output_names"], module)
    target = Path(out_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix=f".{target.name[:60]}.", suffix=".export", dir=target.parent))
    try:
        draft = workdir / "model.onnx"
        chosen = Exporter(options["exporter"])
        used, fallback_reason, caught = _run_exporters(
            chosen, module, tensors, names, out_names, axes, draft, options["opset"]
        )
        written = sorted(p.name for p in workdir.iterdir())
        if written != ["model.onnx"]:
            raise ExportError(
                f"{qualname(type(module))}: the export wrote external data ({', '.join(written)}); "
                "models over protobuf's 2 GB limit are not supported yet"
            )
        proto = onnx.load(str(draft))
        _check_exported(proto, module, names, out_names, axes)
        os.replace(draft, target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the folder is our own, made just above
    return ExportResult(
        path=target,
        exporter=used,
        fallback_reason=fallback_reason,
        input_names=tuple(names),
        output_names=tuple(out_names),
        dynamic_axes=axes,
        opset=_opset(proto),
        torch_version=torch.__version__,
        seconds=time.perf_counter() - started,
        warnings=caught,
    )


def torch_reference(
    module_or_factory: Any,
    feed: Mapping[str, np.ndarray],
    *,
    output_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """The module's outputs for ``feed`` on CPU in fp32 under ``torch.no_grad()``, named like the
    ONNX outputs of ``export_model`` (pass the exported file's output names as ``output_names``
    when they were chosen at export)."""
    import torch

    module = _cpu_fp32(load_module(module_or_factory))
    arrays = {name: np.asarray(value) for name, value in feed.items()}
    names = _bind(module, arrays)
    tensors = {}
    for name in names:
        array = arrays[name]
        if array.dtype.kind == "f" and array.dtype != np.float32:
            array = array.astype(np.float32)
        tensors[name] = torch.from_numpy(np.ascontiguousarray(array))
    with torch.no_grad():
        try:
            result = module(**tensors)
        except Exception as exc:
            raise TorchModelError(f"{qualname(type(module))}.forward failed on the feed: {_reason(exc)}") from exc
    flat = _flatten_outputs(result, module)
    names_out = _output_names(flat, None if output_names is None else list(output_names), module)
    outputs = {}
    for name, (_, tensor) in zip(names_out, flat, strict=True):
        value = tensor.detach().cpu()
        if value.is_floating_point() and value.dtype != torch.float32:
            value = value.float()
        outputs[name] = value.numpy()
    return outputs


def _run_exporters(
    chosen: Exporter,
    module: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    names: list[str],
    out_names: list[str],
    axes: DynamicAxes,
    draft: Path,
    opset: int | None,
) -> tuple[Exporter, str | None, tuple[str, ...]]:
    """Run the chosen exporter (AUTO: dynamo, then TorchScript); returns the one used, dynamo's
    reason when it fell back, and the warnings torch raised."""
    order = [Exporter.DYNAMO, Exporter.TORCHSCRIPT] if chosen is Exporter.AUTO else [chosen]
    reasons: dict[Exporter, str] = {}
    caught: list[str] = []
    for each in order:
        try:
            caught.extend(_export_once(each, module, tensors, names, out_names, axes, draft, opset))
        except Exception as exc:  # torch's exporters raise many unrelated types
            reasons[each] = _reason(exc)
            for leftover in draft.parent.iterdir():  # our own folder: a failed attempt's files
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
            continue
        return each, reasons.get(Exporter.DYNAMO), tuple(dict.fromkeys(caught))
    tried = "; ".join(f"{e.value} exporter: {r}" for e, r in reasons.items())
    raise ExportError(f"torch.onnx.export failed for {qualname(type(module))}: {tried}")


def _export_once(
    exporter: Exporter,
    module: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    names: list[str],
    out_names: list[str],
    axes: DynamicAxes,
    draft: Path,
    opset: int | None,
) -> list[str]:
    import torch

    dynamic = {name: dict(pairs) for name, pairs in axes}
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        if exporter is Exporter.DYNAMO:
            # Inputs by keyword in forward's order; dynamic shapes keyed the same way, where a
            # string axis becomes Dim.DYNAMIC and names the ONNX dim.
            torch.onnx.export(
                module, (), str(draft), kwargs=tensors, input_names=names, output_names=out_names,
                dynamic_shapes={name: dynamic.get(name) for name in names}, opset_version=opset,
                dynamo=True, external_data=False, verbose=False,
            )
        else:
            args = _positional(module, tensors)
            torch.onnx.export(
                module, args, str(draft), input_names=names, output_names=out_names,
                dynamic_axes=dynamic or None, opset_version=opset, dynamo=False,
            )
    return [f"{w.category.__name__}: {_first_lines(str(w.message), 1)}" for w in caught]


def _positional(module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> tuple[Any, ...]:
    """The TorchScript exporter passes inputs positionally: forward's parameters in order, up
    to the last one fed; a keyword-only input cannot be passed."""
    parameters = list(inspect.signature(module.forward).parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    fed = [i for i, p in enumerate(positional) if p.name in tensors]
    if len(fed) != len(tensors):
        raise TypeError(
            "the TorchScript exporter passes inputs by position; "
            f"{sorted(set(tensors) - {p.name for p in positional})} are keyword-only parameters"
        )
    args = []
    for parameter in positional[: (max(fed) + 1) if fed else 0]:
        if parameter.name in tensors:
            args.append(tensors[parameter.name])
        elif parameter.default is not parameter.empty:
            args.append(parameter.default)
        else:
            raise TypeError(f"forward's parameter {parameter.name!r} has no example input and no default")
    return tuple(args)


def _bind(module: torch.nn.Module, arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Input names in forward's parameter order; each must be a parameter of forward (any
    name where forward takes ``**kwargs``), and every parameter without a default must be fed."""
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError) as exc:
        raise TorchModelError(f"{qualname(type(module))}.forward has no readable signature ({exc})") from None
    keywordable = [p.name for p in parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    unknown = [name for name in arrays if name not in keywordable]
    if unknown and not takes_any:
        raise TorchModelError(
            f"input {unknown[0]!r} is not a parameter of {qualname(type(module))}.forward "
            f"(its parameters: {', '.join(keywordable) or 'none'}); name the example inputs after them"
        )
    missing = [
        p.name for p in parameters.values()
        if p.name in keywordable and p.default is p.empty and p.name not in arrays
    ]
    if missing:
        raise TorchModelError(
            f"{qualname(type(module))}.forward needs parameter {missing[0]!r}, which example_inputs lacks"
        )
    return [name for name in keywordable if name in arrays] + [name for name in arrays if name not in keywordable]


def export_axes(dynamic: Dynamic | None, arrays: Mapping[str, np.ndarray]) -> DynamicAxes:
    """``dynamic`` checked against the example inputs as ``trt_model`` checks it (a SpecError
    with the same message), negative axes made positive."""
    return specs.dynamic_axes(dynamic, {name: tuple(array.shape) for name, array in arrays.items()})


def _flatten_outputs(result: Any, module: torch.nn.Module) -> list[tuple[str | None, torch.Tensor]]:
    """forward's result as (key, tensor) pairs in the order the exporters flatten it."""
    import torch

    if isinstance(result, torch.Tensor):
        return [(None, result)]
    if isinstance(result, Mapping):
        items = list(result.items())
    elif isinstance(result, tuple | list):
        fields = getattr(result, "_fields", None)  # a namedtuple names its outputs
        items = list(zip(fields, result, strict=True)) if fields else [(None, value) for value in result]
    else:
        items = []
    if not items or not all(isinstance(value, torch.Tensor) for _, value in items):
        raise TorchModelError(
            f"{qualname(type(module))}.forward returned {type(result).__name__}; it must return a tensor, "
            "or a tuple, list or dict of tensors"
        )
    return [(None if key is None else str(key), value) for key, value in items]


def _output_names(
    flat: list[tuple[str | None, torch.Tensor]], chosen: list[str] | None, module: torch.nn.Module
) -> list[str]:
    if chosen is not None:
        if len(chosen) != len(flat):
            raise TorchModelError(
                f"output_names has {len(chosen)} names but {qualname(type(module))}.forward returns "
                f"{len(flat)} tensors"
            )
        return list(chosen)
    if len(flat) == 1 and flat[0][0] is None:
        return ["output"]
    return [key if key is not None else f"output_{i}" for i, (key, _) in enumerate(flat)]


def _check_exported(
    proto: Any,
    module: torch.nn.Module,
    names: list[str],
    out_names: list[str],
    axes: DynamicAxes,
) -> None:
    """The file must have the inputs, outputs and dynamic axes asked for: an exporter that
    drops an unused input or specializes an axis would otherwise pass unnoticed."""
    initializers = {init.name for init in proto.graph.initializer}
    inputs = {value.name: value for value in proto.graph.input if value.name not in initializers}
    outputs = [value.name for value in proto.graph.output]
    if list(inputs) != names:
        raise ExportError(
            f"{qualname(type(module))}: the exported model has inputs {list(inputs)}, expected {names} "
            "(an input that forward does not use is dropped by the exporter)"
        )
    if outputs != out_names:
        raise ExportError(f"{qualname(type(module))}: the exported model has outputs {outputs}, expected {out_names}")
    for name, pairs in axes:
        dims = inputs[name].type.tensor_type.shape.dim
        for axis, dim_name in pairs:
            if dims[axis].HasField("dim_value"):
                raise ExportError(
                    f"{qualname(type(module))}: axis {axis} of input {name!r} ({dim_name!r}) was exported "
                    f"with the fixed size {dims[axis].dim_value}; torch specializes axes whose example size "
                    "is 0 or 1, and sizes the model's code fixes: give an example size of 2 or more"
                )


def _cpu_fp32(module: torch.nn.Module) -> torch.nn.Module:
    """The module itself where it already is on CPU in fp32, else a CPU fp32 copy (the user's
    module is left as it is)."""
    import torch

    tensors = [*module.parameters(), *module.buffers()]
    if all(t.device.type == "cpu" and (not t.is_floating_point() or t.dtype == torch.float32) for t in tensors):
        return module
    return copy.deepcopy(module).to(device="cpu", dtype=torch.float32).eval()


def qualname(cls: type) -> str:
    """``pkg.mod.Class``: how messages and export keys name a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(factory: Any) -> str:
    if isinstance(factory, str):
        return repr(factory)
    return getattr(factory, "__qualname__", None) or repr(factory)


def _opset(proto: Any) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _reason(exc: BaseException) -> str:
    """torch's own reason: the innermost cause's type and first lines, without terminal colours.
    torch wraps the real error (a guard on data, an unsupported op) in its own export error."""
    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    text = _first_lines(_ANSI.sub("", str(inner)), _REASON_LINES)
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


def _first_lines(text: str, count: int) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:count])
