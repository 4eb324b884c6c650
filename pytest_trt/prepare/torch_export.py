"""PyTorch models in: export to ONNX, the cache key of an export, and the module as a reference.

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
import dataclasses
import hashlib
import importlib
import inspect
import json
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
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.model import ModelError

if TYPE_CHECKING:
    import torch

# Bump when what export_model does around torch.onnx.export changes (binding, naming, checks).
_EXPORT_VERSION = 1
_REASON_LINES = 3
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Primitive attribute types whose values are part of a module's identity (flags, sizes, modes).
_PLAIN = (bool, int, float, str, type(None))
_MODULE_INTERNALS = frozenset({
    "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set",
    "_backward_pre_hooks", "_backward_hooks", "_is_full_backward_hook", "_forward_hooks",
    "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_state_dict_hooks", "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
})


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
    dynamic_axes: tuple[tuple[str, tuple[tuple[int, str], ...]], ...]  # input -> (axis, dim name)
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


ExampleInputs = Mapping[str, Any]  # name -> shape tuple, numpy array or torch tensor
Dynamic = Mapping[str, Mapping[int, str]]  # input name -> {axis: dim name}


def resolve_factory(factory: Any) -> Callable[[], Any]:
    """The callable behind ``factory``: itself, or what ``"pkg.mod:func"`` names."""
    if callable(factory):
        return factory
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
    return target


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


def export_key(
    factory: Any, example_inputs: ExampleInputs, dynamic: Dynamic | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything an export depends on, as JSON-able data for the engine cache.

    The module's parameters and buffers (names, dtypes, shapes, bytes), its classes (qualified
    names and the source files they come from, outside torch itself), the plain attributes of
    every submodule (flags, sizes), the example inputs (names, shapes, dtypes, values), the
    dynamic axes, the export options and the versions of torch and onnxscript. Code in other
    files that ``forward`` calls is not seen: rebuild (``--trt-rebuild``) after changing it.
    """
    import torch

    known = set(inspect.signature(export_options).parameters)
    unknown = sorted(set(options) - known)
    if unknown:
        raise TorchModelError(f"unknown export option {unknown[0]!r} (known: {', '.join(sorted(known))})")
    normalized = export_options(**options)
    module = load_module(factory)
    arrays = example_arrays(example_inputs, seed=normalized["seed"])
    return {
        "format": _EXPORT_VERSION,
        "module": {
            "class": _qualname(type(module)),
            "weights": _weights_digest(module),
            "attributes": _attributes_digest(module),
            "source": _source_digest(module),
        },
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "dtype": str(array.dtype),
                "sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest(),
            }
            for name, array in arrays.items()
        ],
        "dynamic": {name: {str(a): d for a, d in axes} for name, axes in _dynamic_axes(dynamic, arrays)},
        "options": normalized,
        "torch": torch.__version__,
        "onnxscript": _version_of("onnxscript"),
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
    axes = _dynamic_axes(dynamic, arrays)
    names = _bind(module, arrays)
    tensors = {name: torch.from_numpy(np.ascontiguousarray(arrays[name])) for name in names}
    with torch.no_grad():
        try:
            result = module(**tensors)
        except Exception as exc:
            raise TorchModelError(
                f"{_qualname(type(module))}.forward failed on the example inputs: {_reason(exc)}"
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
                f"{_qualname(type(module))}: the export wrote external data ({', '.join(written)}); "
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
            raise TorchModelError(f"{_qualname(type(module))}.forward failed on the feed: {_reason(exc)}") from exc
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
    axes: tuple[tuple[str, tuple[tuple[int, str], ...]], ...],
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
    raise ExportError(f"torch.onnx.export failed for {_qualname(type(module))}: {tried}")


def _export_once(
    exporter: Exporter,
    module: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    names: list[str],
    out_names: list[str],
    axes: tuple[tuple[str, tuple[tuple[int, str], ...]], ...],
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
        raise TorchModelError(f"{_qualname(type(module))}.forward has no readable signature ({exc})") from None
    keywordable = [p.name for p in parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    unknown = [name for name in arrays if name not in keywordable]
    if unknown and not takes_any:
        raise TorchModelError(
            f"input {unknown[0]!r} is not a parameter of {_qualname(type(module))}.forward "
            f"(its parameters: {', '.join(keywordable) or 'none'}); name the example inputs after them"
        )
    missing = [
        p.name for p in parameters.values()
        if p.name in keywordable and p.default is p.empty and p.name not in arrays
    ]
    if missing:
        raise TorchModelError(
            f"{_qualname(type(module))}.forward needs parameter {missing[0]!r}, which example_inputs lacks"
        )
    return [name for name in keywordable if name in arrays] + [name for name in arrays if name not in keywordable]


def _dynamic_axes(
    dynamic: Dynamic | None, arrays: Mapping[str, np.ndarray]
) -> tuple[tuple[str, tuple[tuple[int, str], ...]], ...]:
    """``dynamic`` validated against the example inputs, with negative axes made positive."""
    if dynamic is None:
        return ()
    if not isinstance(dynamic, Mapping):
        raise TorchModelError(f"dynamic must map input names to {{axis: 'dim name'}}, got {dynamic!r}")
    result = []
    for name, axes in dynamic.items():
        if name not in arrays:
            raise TorchModelError(
                f"dynamic names input {name!r}, which example_inputs does not have "
                f"(inputs: {', '.join(arrays)})"
            )
        if not isinstance(axes, Mapping) or not axes:
            raise TorchModelError(f"dynamic[{name!r}] must be a dict {{axis: 'dim name'}}, got {axes!r}")
        rank = arrays[name].ndim
        pairs = {}
        for axis, dim in axes.items():
            if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
                raise TorchModelError(
                    f"dynamic[{name!r}]: axis {axis!r} is not an axis of an input of rank {rank}"
                )
            if not isinstance(dim, str) or not dim.isidentifier():
                raise TorchModelError(f"dynamic[{name!r}][{axis}] must be a dim name like 'batch', got {dim!r}")
            pairs[axis % rank] = dim
        result.append((name, tuple(sorted(pairs.items()))))
    return tuple(result)


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
            f"{_qualname(type(module))}.forward returned {type(result).__name__}; it must return a tensor, "
            "or a tuple, list or dict of tensors"
        )
    return [(None if key is None else str(key), value) for key, value in items]


def _output_names(
    flat: list[tuple[str | None, torch.Tensor]], chosen: list[str] | None, module: torch.nn.Module
) -> list[str]:
    if chosen is not None:
        if len(chosen) != len(flat):
            raise TorchModelError(
                f"output_names has {len(chosen)} names but {_qualname(type(module))}.forward returns "
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
    axes: tuple[tuple[str, tuple[tuple[int, str], ...]], ...],
) -> None:
    """The file must have the inputs, outputs and dynamic axes asked for: an exporter that
    drops an unused input or specializes an axis would otherwise pass unnoticed."""
    initializers = {init.name for init in proto.graph.initializer}
    inputs = {value.name: value for value in proto.graph.input if value.name not in initializers}
    outputs = [value.name for value in proto.graph.output]
    if list(inputs) != names:
        raise ExportError(
            f"{_qualname(type(module))}: the exported model has inputs {list(inputs)}, expected {names} "
            "(an input that forward does not use is dropped by the exporter)"
        )
    if outputs != out_names:
        raise ExportError(f"{_qualname(type(module))}: the exported model has outputs {outputs}, expected {out_names}")
    for name, pairs in axes:
        dims = inputs[name].type.tensor_type.shape.dim
        for axis, dim_name in pairs:
            if dims[axis].HasField("dim_value"):
                raise ExportError(
                    f"{_qualname(type(module))}: axis {axis} of input {name!r} ({dim_name!r}) was exported "
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


def _weights_digest(module: torch.nn.Module) -> str:
    import torch

    digest = hashlib.sha256()
    state = [("param", n, t) for n, t in module.named_parameters()]
    state += [("buffer", n, t) for n, t in module.named_buffers()]
    for kind, name, tensor in state:
        value = tensor.detach().cpu().contiguous()
        header = {"kind": kind, "name": name, "dtype": str(value.dtype), "shape": list(value.shape)}
        digest.update(json.dumps(header, sort_keys=True).encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _attributes_digest(module: torch.nn.Module) -> str:
    """Plain attributes of every submodule (``self.flag``, ``self.eps``, ``training``, a config
    dataclass or dict of such values); other objects are not seen."""
    attributes: dict[str, dict[str, Any]] = {}
    for path, submodule in module.named_modules():
        plain = {}
        for key, value in vars(submodule).items():
            if key in _MODULE_INTERNALS:
                continue
            shown = _plain(value, depth=3)
            if shown is not _UNSEEN:
                plain[key] = shown
        attributes[path] = plain
    return hashlib.sha256(json.dumps(attributes, sort_keys=True).encode()).hexdigest()


_UNSEEN = object()


def _plain(value: Any, depth: int) -> Any:
    """``value`` as JSON-able data, typed so that 1, 1.0 and True differ; _UNSEEN where it holds
    anything but plain values, enums, sequences, string-keyed dicts and dataclasses of them."""
    if isinstance(value, _PLAIN):
        return [type(value).__name__, repr(value) if isinstance(value, float) else value]
    if depth == 0:
        return _UNSEEN
    if isinstance(value, Enum):
        return ["enum", _qualname(type(value)), _plain(value.value, depth - 1)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name), depth - 1) for f in dataclasses.fields(value)}
        return _UNSEEN if any(f is _UNSEEN for f in fields.values()) else ["dataclass", _qualname(type(value)), fields]
    if isinstance(value, tuple | list):
        items = [_plain(v, depth - 1) for v in value]
        return _UNSEEN if any(i is _UNSEEN for i in items) else [type(value).__name__, items]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        entries = {k: _plain(v, depth - 1) for k, v in value.items()}
        return _UNSEEN if any(e is _UNSEEN for e in entries.values()) else ["dict", entries]
    return _UNSEEN


def _source_digest(module: torch.nn.Module) -> str:
    """The source files of the module's classes outside torch (torch's own are covered by its
    version); a class without a readable file is keyed by its qualified name alone."""
    digest = hashlib.sha256()
    files: dict[str, Path | None] = {}
    for submodule in module.modules():
        cls = type(submodule)
        if cls.__module__.split(".")[0] == "torch":
            continue
        try:
            source = inspect.getsourcefile(cls)
        except TypeError:
            source = None
        files[_qualname(cls)] = Path(source) if source else None
    for name in sorted(files):
        digest.update(name.encode())
        path = files[name]
        if path is not None and path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(factory: Any) -> str:
    if isinstance(factory, str):
        return repr(factory)
    return getattr(factory, "__qualname__", None) or repr(factory)


def _opset(proto: Any) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


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
