"""Which TensorRT module serves each runtime, whether it imports, and its major version.

Importing a TensorRT module is safe without a GPU (only creating objects is not), so this may
import; it never creates a TensorRT object.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from pytest_trt.errors import BackendError, PytestTrtError

RUNTIMES = ("full", "lean", "dispatch")
HARDWARE_COMPATIBILITY = {
    "none": "NONE",
    "ampere_plus": "AMPERE_PLUS",
    "same_compute_capability": "SAME_COMPUTE_CAPABILITY",
}

SUPPORTED_MAJORS = (10, 11)

# The frontend package users install first, then the bindings-only wheel it re-exports.
MODULES: dict[str, tuple[str, ...]] = {
    "full": ("tensorrt", "tensorrt_bindings"),
    "lean": ("tensorrt_lean", "tensorrt_lean_bindings"),
    "dispatch": ("tensorrt_dispatch", "tensorrt_dispatch_bindings"),
}
PIP_HINT = {
    "full": "pip install tensorrt-cu13 (or tensorrt-cu12)",
    "lean": "pip install tensorrt-lean-cu13",
    "dispatch": "pip install tensorrt-dispatch-cu13",
}


class TensorRTImportError(PytestTrtError, ImportError):
    """No TensorRT module for the requested runtime imports here; the message says why."""


def import_tensorrt(runtime: str) -> ModuleType:
    """The TensorRT module for ``runtime`` (full, lean or dispatch), checked for a supported major."""
    if runtime not in RUNTIMES:
        raise ValueError(f"--trt-runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    failures = []
    for name in MODULES[runtime]:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # also the full bindings' "libnvinfer.so.11: cannot open"
            failures.append(f"{name}: {exc}")
            continue
        major = major_version(module.__version__)
        if major not in SUPPORTED_MAJORS:
            raise TensorRTImportError(
                f"TensorRT {module.__version__} ({name}) is not supported; pytest-trt supports "
                f"{' and '.join(f'{m}.x' for m in SUPPORTED_MAJORS)}"
            )
        return module
    raise TensorRTImportError(
        f"the TensorRT {runtime} runtime is not importable ({'; '.join(failures)}); {PIP_HINT[runtime]}"
    )


def major_version(version: str) -> int:
    """``"11.4.0.106"`` -> 11."""
    try:
        return int(version.split(".", 1)[0])
    except ValueError:
        raise TensorRTImportError(f"cannot read a TensorRT version from {version!r}") from None


# -- build options checked before TensorRT is touched ------------------------------------------

def hardware_level(options: Mapping[str, Any]) -> str:
    level = options.get("hardware_compatibility", "none")
    if not isinstance(level, str) or level not in HARDWARE_COMPATIBILITY:
        raise BackendError(
            f"hardware_compatibility must be one of {', '.join(HARDWARE_COMPATIBILITY)}; got {level!r}"
        )
    return level


def positive(options: Mapping[str, Any], key: str) -> int:
    return ranged(options, key, 1, 1 << 40)


def ranged(options: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = options[key]
    if not isinstance(value, int) or not low <= value <= high:
        raise BackendError(f"{key} must be in [{low}, {high}], got {value!r}")
    return value



