"""The real TensorRT lean runtime on a GPU, through the adapter's load path.

No engine can be built anywhere we run (no full TensorRT), so what runs here is: availability,
Runtime creation on the GPU, and a corrupt plan refused with TensorRT's own logged reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_trt.backends.base import Artifact, BackendError, TensorSpec
from pytest_trt.backends.tensorrt import TensorRTBackend
from pytest_trt.model import LoadedModel
from pytest_trt.specs import BuildSpec

pytestmark = [pytest.mark.needs_gpu, pytest.mark.needs_tensorrt]

MLP = LoadedModel(
    path=Path(__file__).resolve().parents[2] / "examples" / "models" / "mlp.onnx",
    content_hash="not-checked-here",
    inputs=(TensorSpec("x", np.dtype(np.float32), (None, 256)),),
    outputs=(TensorSpec("y", np.dtype(np.float32), (None, 10)),),
    opset=17,
)


@pytest.fixture(scope="module")
def lean() -> TensorRTBackend:
    backend = TensorRTBackend(runtime="lean")
    status = backend.availability()
    assert status.ok, status.reason
    return backend


def test_lean_runtime_reports_its_version(lean: TensorRTBackend) -> None:
    assert lean.runtime_version().startswith("tensorrt-lean 11.")


def test_a_corrupt_plan_is_refused_with_tensorrts_reason(lean: TensorRTBackend) -> None:
    with pytest.raises(BackendError) as excinfo:
        lean.load(Artifact(b"this is not a plan" * 64, {"version_compatible": True}), MLP, BuildSpec())
    message = str(excinfo.value)
    assert "could not deserialize" in message and "mlp.onnx" in message
    assert "magicTag" in message or "Serialization" in message  # TensorRT's own logged reason


def test_a_plan_that_is_not_version_compatible_is_refused_before_tensorrt(lean: TensorRTBackend) -> None:
    with pytest.raises(BackendError, match="loads only version-compatible plans"):
        lean.load(Artifact(b"x", {"version_compatible": False}), MLP, BuildSpec())


def test_the_lean_runtime_cannot_build(lean: TensorRTBackend) -> None:
    with pytest.raises(BackendError, match="cannot build engines"):
        lean.build(MLP, BuildSpec())
