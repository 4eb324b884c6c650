"""A test double of the ``tensorrt`` module (11.x), to drive the adapter's control flow on a CPU.

It mirrors only the members the adapter uses, with the real parameter lists; the contract test
checks every class, method (arity) and enum member defined here against the real 11.x API, so
the double cannot drift from it. It proves control flow only: nothing run through it says that
real TensorRT behaves the same way.

The parser reads the ONNX file (unknown op types fail like TensorRT's UNSUPPORTED_NODE), the
builder checks that every dynamic input has a profile, the "plan" is JSON behind a magic tag,
and an engine's compute fills every output with the mean of the first input.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

import numpy as np
import onnx

from .fake_cuda import COMPUTE_MS, GPU

__version__ = "11.4.0.106"
MAGIC = b"FAKEPLAN"


class _Enum(IntEnum):
    """pybind11 enums: int() gives the value, str() gives "Class.MEMBER"."""

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class DataType(_Enum):
    FLOAT = 0
    HALF = 1
    INT32 = 3
    INT64 = 8
    BF16 = 7


_NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32, DataType.INT64: np.int64}
_ONNX_TYPES = {
    onnx.TensorProto.FLOAT: DataType.FLOAT,
    onnx.TensorProto.FLOAT16: DataType.HALF,
    onnx.TensorProto.INT32: DataType.INT32,
    onnx.TensorProto.INT64: DataType.INT64,
    onnx.TensorProto.BFLOAT16: DataType.BF16,
}


def nptype(trt_type: DataType) -> type:
    if trt_type not in _NUMPY:
        raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. {trt_type}")
    return _NUMPY[trt_type]


class BuilderFlag(_Enum):
    DEBUG = 2
    TF32 = 6
    VERSION_COMPATIBLE = 12
    EXCLUDE_LEAN_RUNTIME = 13
    STRICT_NANS = 23


class NetworkDefinitionCreationFlag(_Enum):
    STRONGLY_TYPED = 0


class MemoryPoolType(_Enum):
    WORKSPACE = 0


class HardwareCompatibilityLevel(_Enum):
    NONE = 0
    AMPERE_PLUS = 1
    SAME_COMPUTE_CAPABILITY = 2


class ProfilingVerbosity(_Enum):
    LAYER_NAMES_ONLY = 0
    DETAILED = 2


class LayerInformationFormat(_Enum):
    ONELINE = 0
    JSON = 1


class TensorIOMode(_Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class ILogger:
    class Severity(_Enum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        pass

    def log(self, severity: Any, msg: str) -> None:
        pass


class IProgressMonitor:
    def __init__(self) -> None:
        pass

    def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
        pass

    def step_complete(self, phase_name: str, step: int) -> bool:
        return True

    def phase_finish(self, phase_name: str) -> None:
        pass


class ParserError:
    def __init__(self, node: int, name: str, op: str, description: str) -> None:
        self._node, self._name, self._op, self._desc = node, name, op, description

    def code(self) -> str:
        return "ErrorCode.UNSUPPORTED_NODE"

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op


class ITensor:
    def __init__(self, network: INetworkDefinition, described: dict[str, Any]) -> None:
        self._network = network
        self._described = described

    @property
    def name(self) -> str:
        return str(self._described["name"])

    @property
    def is_network_output(self) -> bool:
        return any(o["name"] == self.name for o in self._network._outputs)


class ILayer:
    def __init__(self, outputs: list[ITensor]) -> None:
        self._outputs = outputs

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self._flags = flags
        self._inputs: list[dict[str, Any]] = []
        self._outputs: list[dict[str, Any]] = []
        self._layers: list[ILayer] = []

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_layer(self, index: int) -> ILayer:
        return self._layers[index]

    def mark_output(self, tensor: ITensor) -> None:
        self._outputs.append(tensor._described)


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        self._network = network
        self._errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def parse_from_file(self, model: str) -> bool:
        graph = onnx.load(model, load_external_data=False).graph
        for index, node in enumerate(graph.node):
            if not onnx.defs.has(node.op_type, node.domain):
                self._errors.append(ParserError(index, node.name, node.op_type, f"No importer registered for op: {node.op_type}"))
        initializers = {i.name for i in graph.initializer}

        def describe(value: onnx.ValueInfoProto) -> dict[str, Any]:
            tensor = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim]
            return {"name": value.name, "dtype": _ONNX_TYPES[tensor.elem_type].name, "dims": dims}

        self._network._inputs = [describe(v) for v in graph.input if v.name not in initializers]
        self._network._outputs = [describe(v) for v in graph.output]
        if self._errors:
            return False
        # One layer per node; its outputs typed and shaped as ONNX shape inference finds them.
        inferred = onnx.shape_inference.infer_shapes(onnx.load(model, load_external_data=False)).graph
        known = {v.name: v for v in [*inferred.value_info, *inferred.output] if v.type.tensor_type.elem_type in _ONNX_TYPES}
        self._network._layers = [
            ILayer([ITensor(self._network, describe(known[out])) for out in node.output if out in known])
            for node in graph.node
        ]
        return True


class IOptimizationProfile:
    def __init__(self) -> None:
        self._shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
        self._shapes[input] = [list(min), list(opt), list(max)]


class ITimingCache:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def serialize(self) -> bytes:
        return self._data


class IBuilderConfig:
    builder_optimization_level = 3
    max_aux_streams = -1
    hardware_compatibility_level = HardwareCompatibilityLevel.NONE
    profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
    progress_monitor = None

    def __init__(self) -> None:
        self._flags = {BuilderFlag.TF32}  # on by default, as in TensorRT
        self._pools: dict[Any, int] = {}
        self._profiles: list[IOptimizationProfile] = []
        self._cache: ITimingCache | None = None

    def set_flag(self, flag: BuilderFlag) -> None:
        self._flags.add(flag)

    def clear_flag(self, flag: BuilderFlag) -> None:
        self._flags.discard(flag)

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        self._pools[pool] = pool_size

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        for low, opt, high in profile._shapes.values():
            if not all(a <= b <= c for a, b, c in zip(low, opt, high, strict=False)):
                return -1
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        return ITimingCache(bytes(serialized_timing_cache))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        if cache._data.startswith(b"other-device") and not ignore_mismatch:
            return False
        self._cache = cache
        return True


class Builder:
    def __init__(self, logger: ILogger) -> None:
        self._logger = logger

    def create_network(self, flags: int) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
        profiles = [p._shapes for p in config._profiles]
        profile = profiles[0] if profiles else {}
        for tensor in network._inputs:
            if any(isinstance(d, str) for d in tensor["dims"]) and tensor["name"] not in profile:
                self._logger.log(
                    ILogger.Severity.ERROR,
                    f"{tensor['name']}: Network has dynamic or shape inputs, but no optimization profile has been defined.",
                )
                return None
        monitor = config.progress_monitor
        if monitor is not None:
            monitor.phase_start("Building engine", None, 1)
            monitor.step_complete("Building engine", 0)
            monitor.phase_finish("Building engine")
        if config._cache is not None:
            config._cache._data += b"+timings"
        plan = {
            "inputs": network._inputs,
            "outputs": network._outputs,
            "profile": profile,
            "profiles": profiles,
            "flags": sorted(f.name for f in config._flags),
            "hardware_compatibility": config.hardware_compatibility_level.name,
            "strongly_typed_flag": network._flags,
            "workspace": config._pools.get(MemoryPoolType.WORKSPACE),
            "optimization_level": config.builder_optimization_level,
        }
        return MAGIC + json.dumps(plan).encode()


class EngineInspector:
    def __init__(self, engine: ICudaEngine) -> None:
        self._engine = engine

    def get_engine_information(self, format: LayerInformationFormat) -> str:
        return json.dumps({"Layers": [{"Name": f"layer_{t['name']}"} for t in self._engine._plan["outputs"]]})


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self._engine = engine
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}
        self._profile = 0
        self.profile_switches: list[int] = []
        self.capturable = True

    def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
        if not 0 <= profile_index < self._engine.num_optimization_profiles:
            return False
        self.profile_switches.append(profile_index)
        self._profile = profile_index
        self._shapes.clear()
        return True

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        tensor = self._engine._tensor(name)
        low, _, high = self._engine.get_tensor_profile_shape(name, self._profile)
        if len(shape) != len(tensor["dims"]) or not all(a <= s <= b for a, s, b in zip(low, shape, high, strict=False)):
            return False
        self._shapes[name] = tuple(shape)
        return True

    def infer_shapes(self) -> list[str]:
        return [t["name"] for t in self._engine._plan["inputs"] if t["name"] not in self._shapes]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self._shapes:
            return self._shapes[name]
        symbols = {}
        for tensor in self._engine._plan["inputs"]:
            for dim, size in zip(tensor["dims"], self._shapes.get(tensor["name"], ()), strict=False):
                if isinstance(dim, str):
                    symbols[dim] = size
        dims = self._engine._tensor(name)["dims"]
        return tuple(symbols.get(d, -1) if isinstance(d, str) else d for d in dims)

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._addresses[name] = memory
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        if GPU.capturing is not None and not self.capturable:
            return False
        plan = self._engine._plan
        first = plan["inputs"][0]
        first_dtype = np.dtype(nptype(DataType[first["dtype"]]))
        first_ptr = self._addresses[first["name"]]
        count = int(np.prod(self._shapes[first["name"]]))

        def compute() -> None:
            mean = GPU.memory[first_ptr][: count * first_dtype.itemsize].view(first_dtype).astype(np.float64).mean()
            for out in plan["outputs"]:
                dtype = np.dtype(nptype(DataType[out["dtype"]]))
                buffer = GPU.memory[self._addresses[out["name"]]]
                buffer.view(dtype)[:] = mean

        GPU.run(compute, COMPUTE_MS)
        return True


class ICudaEngine:
    device_memory_size_v2 = 4096

    def __init__(self, plan: dict[str, Any]) -> None:
        self._plan = plan

    def _tensor(self, name: str) -> dict[str, Any]:
        return next(t for t in self._plan["inputs"] + self._plan["outputs"] if t["name"] == name)

    @property
    def num_io_tensors(self) -> int:
        return len(self._plan["inputs"]) + len(self._plan["outputs"])

    def get_tensor_name(self, index: int) -> str:
        return (self._plan["inputs"] + self._plan["outputs"])[index]["name"]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        inputs = {t["name"] for t in self._plan["inputs"]}
        return TensorIOMode.INPUT if name in inputs else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self._tensor(name)["dtype"]]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(-1 if isinstance(d, str) else d for d in self._tensor(name)["dims"])

    @property
    def num_optimization_profiles(self) -> int:
        return max(1, len(self._plan.get("profiles", ())))

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        profiles = self._plan.get("profiles") or [self._plan["profile"]]
        if name in profiles[profile_index]:
            return [tuple(s) for s in profiles[profile_index][name]]
        shape = self.get_tensor_shape(name)
        return [shape, shape, shape]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def create_engine_inspector(self) -> EngineInspector:
        return EngineInspector(self)


class Runtime:
    engine_host_code_allowed = False

    def __init__(self, logger: ILogger) -> None:
        self._logger = logger

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        if not bytes(serialized_engine).startswith(MAGIC):
            self._logger.log(
                ILogger.Severity.ERROR,
                "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Serialization assertion "
                "header.magicTag == kEXPECTED_MAGIC_TAG failed.)",
            )
            return None
        plan = json.loads(bytes(serialized_engine)[len(MAGIC) :])
        if "VERSION_COMPATIBLE" in plan["flags"] and not self.engine_host_code_allowed:
            self._logger.log(
                ILogger.Severity.ERROR,
                "Cannot deserialize engine with lean runtime since IRuntime::getEngineHostCodeAllowed() is false.",
            )
            return None
        return ICudaEngine(plan)
