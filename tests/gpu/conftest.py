"""Tests here run on a real GPU (and, where marked, a real TensorRT runtime); elsewhere they skip
with the reason the machine gave."""

from __future__ import annotations

import importlib.util

import pytest

from pytest_trt.cuda import runtime as cuda


def _lean_runtime() -> str:
    if importlib.util.find_spec("tensorrt_lean_bindings") or importlib.util.find_spec("tensorrt_lean"):
        return ""
    return "the TensorRT lean runtime is not installed (pip install tensorrt-lean-cu13)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu = cuda.available()
    missing_trt = _lean_runtime()
    for item in items:
        if item.get_closest_marker("needs_gpu") and not gpu.ok:
            item.add_marker(pytest.mark.skip(reason=f"needs a GPU: {gpu.reason}"))
        elif item.get_closest_marker("needs_tensorrt") and missing_trt:
            item.add_marker(pytest.mark.skip(reason=missing_trt))
