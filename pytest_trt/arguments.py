"""A mark's arguments one by one: the modes it names by a word (precision, check, nan, sync,
calibration method) as enums whose members are that word, numbers, shapes and keywords. Each
check raises SpecError naming the argument; the spec package builds the specs from them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from pytest_trt.errors import SpecError

Shape = tuple[int, ...]


class TextEnum(str, Enum):
    """A mode a mark names by a word. Members are that word: they compare and hash equal to it,
    and print and repr as it, so messages and JSON that showed the string show the same."""

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


class Precision(TextEnum):
    """The precision of a build (prepare/precision.py makes the graph that computes in it)."""

    FP32 = "fp32"
    TF32 = "tf32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    FP8 = "fp8"


# The precisions whose graph prepare/precision.py converts (the others run the model as it is).
CONVERTED_PRECISIONS = frozenset({Precision.FP16, Precision.BF16})


class Check(TextEnum):
    """How an output's per-element errors are judged (judge/accuracy.py)."""

    ELEMENTWISE = "elementwise"
    MAX = "max"
    MEAN = "mean"
    MEDIAN = "median"
    QUANTILE = "quantile"


class NanPolicy(TextEnum):
    """Whether a NaN on both sides of a comparison fails or counts as equal."""

    FAIL = "fail"
    EQUAL = "equal"


class SyncMode(TextEnum):
    """How the host waits for the GPU."""

    BLOCKING = "blocking"
    SPIN = "spin"


class CalibrationMethod(TextEnum):
    """How INT8 calibration turns recorded activations into ranges (prepare/quantize.py)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


TextEnumT = TypeVar("TextEnumT", bound=TextEnum)


def mode(value: Any, kind: type[TextEnumT], arg: str) -> TextEnumT:
    """``value`` as a member of ``kind``; anything else is a SpecError naming ``arg`` and the
    words it takes."""
    try:
        return kind(value)
    except (ValueError, TypeError):
        raise SpecError(f"{arg} must be one of {', '.join(member.value for member in kind)}; got {value!r}") from None


def checked_shape(name: str, value: Any, arg: str) -> Shape:
    """``arg[name]`` as a shape of positive ints."""
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value
    ):
        raise SpecError(f"{arg}[{name!r}] must be a tuple of positive ints, got {value!r}")
    return tuple(value)


def frozen(value: Any) -> Any:
    """Turn dicts/lists into sorted tuples so specs hash and compare by value."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return value


def checked_number(value: Any, arg: str, *, minimum: float = 0.0, allow_none: bool = False) -> Any:
    """``value`` where it is a number (not NaN, not a bool) of at least ``minimum``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise SpecError(f"{arg} must be a number, got {value!r}")
    if value < minimum:
        raise SpecError(f"{arg} must be >= {minimum}, got {value!r}")
    return value


def check_choice(value: Any, choices: tuple[str, ...], arg: str) -> None:
    """``value`` is one of ``choices``: words known only at run time, such as backend names."""
    if value not in choices:
        raise SpecError(f"{arg} must be one of {', '.join(choices)}; got {value!r}")


def check_keywords(cls: type, kwargs: Mapping[str, Any], mark: str) -> None:
    """Every keyword of a mark is a field of the spec ``cls`` it builds (one it takes)."""
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise SpecError(
            f"{mark}: unknown argument {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
