"""Registers the built-in backends. Factories import their module only when called, so that
``import pytest_trt`` never imports onnxruntime or tensorrt."""

from __future__ import annotations

from typing import Any

from .base import Backend, register


def _onnxruntime(**options: Any) -> Backend:
    from .onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(**options)


def _tensorrt(**options: Any) -> Backend:
    from .tensorrt import TensorRTBackend

    return TensorRTBackend(**options)


register("onnxruntime", _onnxruntime)
register("tensorrt", _tensorrt)
