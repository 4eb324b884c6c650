"""ONNX models: loading and checking, content hash, IO specs, shape resolution, seeded inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .backends.base import TensorSpec


class ModelError(ValueError):
    """The model file or an argument about it is wrong; the message names the file."""


@dataclass(frozen=True)
class LoadedModel:
    """A checked ONNX model on disk. Backends build from ``path`` (external data resolves
    relative to it); ``content_hash`` covers the model bytes and every external-data file."""

    path: Path
    content_hash: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int
