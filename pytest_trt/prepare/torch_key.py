"""The engine-cache key of a torch export: everything the exported file depends on.

The module's weights and buffers, the plain attributes of every submodule, the source files of
its classes, the example inputs, the dynamic axes, the export options and the versions of torch
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
            "class": qualname(type(module)),
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


