"""Records <-> JSON data, by one rule for every file the plugin writes and reads back.

The rule: dataclasses become objects of their fields, enums their values, paths strings, sets
sorted lists, tuples lists, numpy scalars and arrays numbers and lists, and non-finite floats
``None`` (strict JSON readers such as jq and browsers reject NaN). ``from_data`` rebuilds a
dataclass from that form by its field types, so a record written by one process (an xdist worker,
an earlier run) is read back as the same type, never as a dict read by key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from pytest_trt.errors import PytestTrtError

T = TypeVar("T")

class SerdeError(PytestTrtError, ValueError):
    """Data that does not have the shape of the record it is read as."""


def to_data(value: Any) -> Any:  # noqa: C901 - one branch per kind of value
    """``value`` as plain JSON data under the rule above."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Enum):
        return to_data(value.value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(to_data(k)) if not isinstance(k, str) else k: to_data(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((to_data(v) for v in value), key=_sort_key)
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays, without importing numpy
        return to_data(value.tolist())
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, json.dumps(value, sort_keys=True))


def dumps(value: Any, *, indent: int | None = None, sort_keys: bool = True) -> str:
    """``to_data(value)`` as strict JSON text (no NaN)."""
    return json.dumps(to_data(value), indent=indent, sort_keys=sort_keys, allow_nan=False)


def from_data(cls: type[T], data: Any, *, where: str = "") -> T:
    """A ``cls`` dataclass rebuilt from ``to_data`` output; unknown keys are ignored (newer files),
    missing keys take the field's default. A wrong shape is a ``SerdeError`` naming the field."""
    return typing.cast(T, _read(cls, data, where or getattr(cls, "__name__", "value")))


def _read(tp: Any, data: Any, where: str) -> Any:  # noqa: C901 - one branch per kind of type
    if tp is Any:
        return data
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        options = get_args(tp)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _read(option, data, where)
            except SerdeError as exc:
                errors.append(str(exc))
        raise SerdeError(errors[0] if errors else f"{where}: no type fits {data!r}")
    if origin is typing.Literal:
        if data in get_args(tp):
            return data
        raise SerdeError(f"{where}: {data!r} is not one of {get_args(tp)}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _read_dataclass(tp, data, where)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(data)
        except ValueError:
            raise SerdeError(f"{where}: {data!r} is not a {tp.__name__}") from None
    if tp is float:
        if data is None:
            return math.nan
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
        raise SerdeError(f"{where}: expected a number, got {data!r}")
    if tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        raise SerdeError(f"{where}: expected a whole number, got {data!r}")
    if tp in (str, bool):
        if isinstance(data, tp):
            return data
        raise SerdeError(f"{where}: expected {tp.__name__}, got {data!r}")
    if tp is Path:
        if isinstance(data, str):
            return Path(data)
        raise SerdeError(f"{where}: expected a path, got {data!r}")
    if origin in (tuple, list, set, frozenset):
        if not isinstance(data, list):
            raise SerdeError(f"{where}: expected a list, got {type(data).__name__}")
        args = get_args(tp)
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            if len(args) != len(data):
                raise SerdeError(f"{where}: expected {len(args)} items, got {len(data)}")
            return tuple(_read(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data, strict=True)))
        item = args[0] if args else Any
        items = [_read(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return origin(items)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(data, dict):
            raise SerdeError(f"{where}: expected an object, got {type(data).__name__}")
        key_type, value_type = get_args(tp) or (str, Any)
        return {_key(key_type, k, where): _read(value_type, v, f"{where}.{k}") for k, v in data.items()}
    if tp in (list, tuple):
        if not isinstance(data, list):
            raise SerdeError(f"{where}: expected a list, got {type(data).__name__}")
        return tp(data)
    raise SerdeError(f"{where}: cannot read a {tp!r}")


def _key(key_type: Any, key: str, where: str) -> Any:
    if key_type is int:
        try:
            return int(key)
        except ValueError:
            raise SerdeError(f"{where}: key {key!r} is not a whole number") from None
    return _read(key_type, key, where)


def _read_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SerdeError(f"{where}: expected an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in data:
            values[f.name] = _read(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SerdeError(f"{where}: missing {f.name!r}")
    return cls(**values)
