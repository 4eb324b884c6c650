"""The engine-cache key of a torch export: everything the exported file depends on.

The module's weights and buffers, the plain attributes of every submodule, every other tensor or
numpy array it reaches (attributes, containers, objects), the source files of its classes, the example inputs, the dynamic axes, the export options and the versions of torch
and onnxscript. Attributes are encoded by type (``1``, ``1.0`` and ``True`` key apart), unlike the
report's JSON rule (serde.py), which writes them alike: keys stored by earlier runs must keep
matching, so this encoding does not change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.prepare.torch_export import (
    Dynamic,
    ExampleInputs,
    TorchModelError,
    example_arrays,
    export_axes,
    export_options,
    load_module,
    qualname,
)

if TYPE_CHECKING:
    import torch

# Bump when what export_model does around torch.onnx.export changes (binding, naming, checks).
_EXPORT_VERSION = 1
# Primitive attribute types whose values are part of a module's identity (flags, sizes, modes).
_PLAIN = (bool, int, float, str, type(None))
_MODULE_INTERNALS = frozenset({
    "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set",
    "_backward_pre_hooks", "_backward_hooks", "_is_full_backward_hook", "_forward_hooks",
    "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_state_dict_hooks", "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
})


def export_key(
    factory: Any, example_inputs: ExampleInputs, dynamic: Dynamic | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything an export depends on, as JSON-able data for the engine cache.

    The module's parameters and buffers (names, dtypes, shapes, bytes), its classes (qualified
    names and the source files they come from, outside torch itself), the plain attributes of
    every submodule (flags, sizes), the tensors and numpy arrays its submodules hold in other
    attributes (``self.scale = torch.tensor(2.0)``, lists, dicts and objects holding them), the example inputs (names, shapes, dtypes, values), the
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
    described = {
        "class": qualname(type(module)),
        "weights": _weights_digest(module),
        "attributes": _attributes_digest(module),
        "source": _source_digest(module),
    }
    held = held_state_digest(module)
    if held is not None:  # absent where there is none, so that earlier keys keep matching
        described["state"] = held
    return {
        "format": _EXPORT_VERSION,
        "module": described,
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "dtype": str(array.dtype),
                "sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest(),
            }
            for name, array in arrays.items()
        ],
        "dynamic": {name: {str(a): d for a, d in axes} for name, axes in export_axes(dynamic, arrays)},
        "options": normalized,
        "torch": torch.__version__,
        "onnxscript": _version_of("onnxscript"),
    }


def _weights_digest(module: torch.nn.Module) -> str:
    import torch

    digest = hashlib.sha256()
    state: list[tuple[str, str, torch.Tensor]] = [("param", n, t) for n, t in module.named_parameters()]
    state += [("buffer", n, t) for n, t in module.named_buffers()]
    for kind, name, tensor in state:
        value = tensor.detach().cpu().contiguous()
        header = {"kind": kind, "name": name, "dtype": str(value.dtype), "shape": list(value.shape)}
        digest.update(json.dumps(header, sort_keys=True).encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    import torch

    value = tensor.detach().cpu()
    if value.layout is not torch.strided:
        value = value.to_dense()
    return bytes(value.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


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
        return ["enum", qualname(type(value)), _plain(value.value, depth - 1)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name), depth - 1) for f in dataclasses.fields(value)}
        return _UNSEEN if any(f is _UNSEEN for f in fields.values()) else ["dataclass", qualname(type(value)), fields]
    if isinstance(value, tuple | list):
        items = [_plain(v, depth - 1) for v in value]
        return _UNSEEN if any(i is _UNSEEN for i in items) else [type(value).__name__, items]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        entries = {k: _plain(v, depth - 1) for k, v in value.items()}
        return _UNSEEN if any(e is _UNSEEN for e in entries.values()) else ["dict", entries]
    return _UNSEEN


def held_state_digest(module: torch.nn.Module) -> str | None:
    """The tensors and numpy arrays the submodules hold outside their parameters and buffers,
    with whatever else the attributes holding them hold; None where there are none."""
    walker = _StateWalker()
    held: dict[str, Any] = {}
    for path, submodule in module.named_modules():
        for key, value in vars(submodule).items():
            if key in _MODULE_INTERNALS or _plain(value, depth=3) is not _UNSEEN:
                continue
            before = walker.arrays
            encoded = walker.encode(value, _STATE_DEPTH)
            if walker.arrays > before:
                held[f"{path}:{key}"] = encoded
    if not held:
        return None
    return hashlib.sha256(json.dumps(held, sort_keys=True).encode()).hexdigest()


# How deep containers and objects are followed from a module's attribute.
_STATE_DEPTH = 6


class _StateWalker:
    """Encodes a value as JSON-able data in which every tensor and array is its dtype, shape and
    sha256; counts the arrays met. Each object is followed once (cycles, shared state)."""

    def __init__(self) -> None:
        self.arrays = 0
        self._seen: set[int] = set()

    def encode(self, value: Any, depth: int) -> Any:
        import torch

        if isinstance(value, _PLAIN):
            return _plain(value, depth=0)
        if isinstance(value, torch.Tensor):
            return self._tensor(value)
        if isinstance(value, np.ndarray | np.generic):
            return self._array(np.asarray(value), depth)
        if depth == 0 or id(value) in self._seen:
            return ["seen", qualname(type(value))]
        self._seen.add(id(value))
        return self._composite(value, depth - 1)

    def _composite(self, value: Any, depth: int) -> Any:
        import torch

        if isinstance(value, Enum):
            return ["enum", qualname(type(value)), self.encode(value.value, depth)]
        if isinstance(value, tuple | list):
            return [type(value).__name__, [self.encode(v, depth) for v in value]]
        if isinstance(value, set | frozenset):
            return ["set", sorted(json.dumps(self.encode(v, depth), sort_keys=True) for v in value)]
        if isinstance(value, Mapping):
            return ["dict", sorted(([repr(k), self.encode(v, depth)] for k, v in value.items()), key=repr)]
        if isinstance(value, torch.nn.Module):  # one held outside the module tree (a plain list)
            state = dict(value.named_parameters(recurse=False)) | dict(value.named_buffers(recurse=False))
            children = self._fields(dict(value.named_children()), depth)
            return ["module", qualname(type(value)), self._fields(state, depth), self._object(value, depth), children]
        return ["object", qualname(type(value)), self._object(value, depth)]

    def _object(self, value: Any, depth: int) -> Any:
        """An object's own attributes, or its dataclass fields; none for functions, classes and
        the like (their code is keyed by the source files, or not at all)."""
        if isinstance(value, type | ModuleType | FunctionType | MethodType | BuiltinFunctionType):
            return None
        if dataclasses.is_dataclass(value):
            return self._fields({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth)
        fields = getattr(value, "__dict__", None)
        if not isinstance(fields, dict):
            return None
        return self._fields({k: v for k, v in fields.items() if k not in _MODULE_INTERNALS}, depth)

    def _fields(self, fields: Mapping[str, Any], depth: int) -> dict[str, Any]:
        return {str(k): self.encode(v, depth) for k, v in fields.items()}

    def _tensor(self, tensor: torch.Tensor) -> Any:
        self.arrays += 1
        header = ["tensor", str(tensor.dtype), list(tensor.shape)]
        try:
            content = _tensor_bytes(tensor)
        except (RuntimeError, TypeError, NotImplementedError):  # no data to read (meta, quantized)
            return [*header, repr(tensor)]
        return [*header, hashlib.sha256(content).hexdigest()]

    def _array(self, array: np.ndarray, depth: int) -> Any:
        self.arrays += 1
        header = ["ndarray", array.dtype.str, list(array.shape)]
        if array.dtype.hasobject:  # the bytes would be pointers
            return [*header, [self.encode(v, depth) for v in array.reshape(-1).tolist()]]
        return [*header, hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()]


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
        files[qualname(cls)] = Path(source) if source else None
    for name in sorted(files):
        digest.update(name.encode())
        path = files[name]
        if path is not None and path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


