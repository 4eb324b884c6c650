"""The TensorRT test double dressed as TensorRT 10.x: weak-typing BuilderFlags exist and
STRONGLY_TYPED is an opt-in network flag with its 10.x value. Not checked against a real 10.x API
(only 11.x wheels are at hand); it exists to drive the adapter's 10.x branches."""

from __future__ import annotations

import types

from . import fake_trt


def tensorrt_10() -> types.ModuleType:
    module = types.ModuleType("fake_tensorrt_10")
    module.__dict__.update({k: v for k, v in vars(fake_trt).items() if not k.startswith("__")})
    module.__version__ = "10.16.0.0"
    module.BuilderFlag = fake_trt._Enum("BuilderFlag", {"FP16": 0, "INT8": 1, **{f.name: f.value + 1 for f in fake_trt.BuilderFlag}})
    module.NetworkDefinitionCreationFlag = fake_trt._Enum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1})
    return module
