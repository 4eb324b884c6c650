"""serde: one JSON rule (NaN, sets, paths, enums, numpy) and typed reads back."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import pytest

from pytest_trt.serde import SerdeError, dumps, from_data, to_data


class Color(str, Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    value: float
    label: str = ""


@dataclass(frozen=True)
class Outer:
    name: str
    color: Color
    inner: Inner | None
    items: tuple[Inner, ...] = ()
    by_batch: dict[int, float] = field(default_factory=dict)
    where: Path | None = None
    tags: frozenset[str] = frozenset()


def test_a_record_round_trips_through_json_text():
    record = Outer(
        "a", Color.BLUE, Inner(1.5, "x"), (Inner(2.0), Inner(math.inf)), {8: 0.5}, Path("m.onnx"), frozenset({"b", "a"})
    )
    text = dumps(record)
    data = json.loads(text)
    assert data["color"] == "blue" and data["tags"] == ["a", "b"] and data["where"] == "m.onnx"
    assert data["items"][1]["value"] is None  # strict JSON: no Infinity
    back = from_data(Outer, data)
    assert back.color is Color.BLUE and back.inner == Inner(1.5, "x") and back.by_batch == {8: 0.5}
    assert back.where == Path("m.onnx") and back.tags == frozenset({"a", "b"})
    assert math.isnan(back.items[1].value)  # a non-finite number reads back as NaN


def test_numpy_values_become_plain_numbers_and_nan_becomes_none():
    assert to_data({"a": np.float32(0.5), "b": np.arange(3), "c": float("nan")}) == {"a": 0.5, "b": [0, 1, 2], "c": None}
    assert dumps({"x": float("inf")}) == '{"x": null}'


def test_unknown_keys_are_ignored_and_missing_defaults_are_filled():
    assert from_data(Inner, {"value": 1, "newer_field": 3}) == Inner(1.0, "")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"name": "a", "color": "green", "inner": None}, "Outer.color: 'green' is not a Color"),
        ({"name": "a", "color": "red", "inner": {"value": "fast"}}, "Outer.inner.value: expected a number"),
        ({"color": "red", "inner": None}, "Outer: missing 'name'"),
        ([], "Outer: expected an object, got list"),
    ],
)
def test_a_wrong_shape_names_the_field(data, words):
    with pytest.raises(SerdeError, match=words.replace(".", r"\.")):
        from_data(Outer, data)


def test_an_unserializable_value_is_a_type_error():
    with pytest.raises(TypeError, match="object is not JSON data"):
        to_data(object())
