"""Cache keys never change for the same inputs: a changed key silently empties every user's cache.
The pinned keys below were computed before keys went through serde's rule."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_trt.errors import CacheError, PytestTrtError
from pytest_trt.store.keys import entry_key
from pytest_trt.store.regular_files import FileTooLarge, NotRegularFile


class Precision(str, enum.Enum):
    FP16 = "fp16"


class Level(enum.IntEnum):
    TWO = 2


ENGINE_PARTS = {
    "model_hash": "ab" * 32,
    "build": {"precision": "fp16", "shapes": {"x": [1, 3, 224, 224]}, "workspace": 1.5, "cuda_graph": False,
              "profile": None, "dims": (2, 4)},
    "runtime_version": "10.3.0",
    "device": {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "sm": 90},
    "transform": {"tool": {"name": "none"}, "precision": "fp32", "options": {}},
    "note": "café ✓",
    "big": 2**70,
    "tiny": 1e-300,
    "neg": -0.0,
}
PINNED = [
    ("engine", ENGINE_PARTS, "bbe62f4bcabb4e10d5f81e8693eecd3da75ed8e24ef8aca565879848137837b8"),
    ("timing-cache", {}, "4bee7fd05d77cbd6df1ae551d1c5b33e77dd1f61a64ba3de1db25e409b366409"),
    ("reference", {"model_hash": "x", "inputs": "y", "runtime_version": "1.20.1", "mode": "cpu fp32"},
     "d39a588ee38f21731de80d942b4ff319f645b56f42ae6168923edecd5411bc1d"),
    # Enum values, and the non-string dict keys json writes its own way (true, null).
    ("engine", {"precision": Precision.FP16, "level": Level.TWO, "by_index": {0: "a", 1: "b"},
                "flags": {True: "on", False: "off"}, "unset": {None: 1}},
     "57357d5ea27374bca9519907e4ad5e37637bc16be70ffa27c592d09efd79e3f7"),
]


@pytest.mark.parametrize(("kind", "parts", "key"), PINNED, ids=["engine", "empty", "reference", "enums-and-keys"])
def test_keys_computed_by_earlier_versions_are_unchanged(kind: str, parts: dict[str, Any], key: str) -> None:
    assert entry_key(kind, parts) == key


@dataclass(frozen=True)
class Build:
    precision: Precision
    shapes: frozenset[int]


def test_records_in_key_parts_key_like_their_plain_data() -> None:
    record = {"build": Build(Precision.FP16, frozenset({3, 1}))}
    plain = {"build": {"precision": "fp16", "shapes": [1, 3]}}
    assert entry_key("engine", record) == entry_key("engine", plain)
    assert entry_key("engine", record) != entry_key("engine", {"build": {"precision": "fp32", "shapes": [1, 3]}})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Path("m.onnx")], ids=["nan", "inf", "path"])
def test_values_that_would_share_a_key_are_refused(value: Any) -> None:
    with pytest.raises(CacheError, match="must be plain JSON data"):
        entry_key("engine", {"x": value})


def test_file_read_errors_are_project_errors_and_os_errors() -> None:
    for error in (NotRegularFile, FileTooLarge):
        assert issubclass(error, PytestTrtError) and issubclass(error, OSError)
