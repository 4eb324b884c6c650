"""The one ONNX precision transform every backend builds from.

TensorRT 11 is strongly typed: an engine computes in the types its ONNX graph carries. So a
precision is a graph, not a builder flag, and the same graph decides the numbers on every backend.

- fp32, tf32: the graph is unchanged (TF32 is a TensorRT builder setting, off for "fp32").
- fp16: onnxruntime's maintained float16 converter (``onnxruntime.transformers.float16``, a
  fork of onnxconverter-common's) with model inputs and outputs kept in their original types, its
  default op block list plus ``keep_fp32_ops``/``keep_fp32_nodes`` left in fp32.
- bf16: the fp16 conversion with every fp16 type made bf16 and the weights taken from the fp32
  originals, so both precisions keep the same ops in fp32.
- int8, fp8: the model must already carry Q/DQ nodes; it passes through untouched.

``emulate=True`` gives the same numbers from an fp32 graph: every tensor that the converted graph
stores as fp16/bf16 is rounded with a Cast round trip, and weights hold the rounded values. It is
for onnxruntime's CPU provider, which has almost no bf16 kernels and runs most fp16 ops in fp32
with the intermediate fp16 casts removed, so the converted graph itself would not show fp16
storage there (its overflow above 65504, for one).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_dtypes  # a dependency of onnx itself
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_trt.arguments import CONVERTED_PRECISIONS, Precision
from pytest_trt.errors import PrecisionError
from pytest_trt.model import QDQ_OPS, all_graphs, all_nodes, has_qdq
from pytest_trt.prepare import fp32_islands
from pytest_trt.prepare.fp32_islands import FreshNames, names_used
from pytest_trt.store.files import write_atomic

__all__ = ["QDQ_OPS", "PrecisionError", "apply_precision", "has_qdq", "transform_key"]


UNCHANGED_PRECISIONS = frozenset({Precision.FP32, Precision.TF32})
QUANTIZED_PRECISIONS = frozenset({Precision.INT8, Precision.FP8})

# Ops whose fp16 range is often too small (sums of squares, exponentials); pass them, or some
# of them, as keep_fp32_ops when a converted model overflows. "LayerNormalization" also keeps
# LayerNorm written out as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div (fp32_islands).
RANGE_SENSITIVE_OPS = (
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceMean",
    "ReduceL2",
    "ReduceLogSumExp",
    "Softmax",
    "LayerNormalization",
    "Pow",
    "Exp",
)


# Bump when the steps around the converter (fp32 islands, round-trip removal, bf16 retyping,
# emulation) change.
_POSTPROCESS_VERSION = 2
_LOW_TYPES = {Precision.FP16: TensorProto.FLOAT16, Precision.BF16: TensorProto.BFLOAT16}
_LIST_OPTIONS = ("keep_fp32_ops", "keep_fp32_nodes")


def transform_key(precision: str | Precision, options: Mapping[str, Any]) -> dict[str, Any]:
    """Everything besides the model bytes that determines the transform's output, as JSON-able
    data for cache keys: the tools and their versions, the precision and the normalized options
    (``keep_fp32_ops``, ``keep_fp32_nodes``, ``emulate``)."""
    chosen = _precision(precision)
    normalized = _normalize_options(options)
    if chosen not in CONVERTED_PRECISIONS:
        return {"tool": {"name": "none"}, "precision": chosen.value, "options": {}}
    import onnxruntime

    tool = {
        "name": "onnxruntime.transformers.float16",
        "version": onnxruntime.__version__,
        "onnx": onnx.__version__,  # shape inference decides which tensors are float
        "postprocess": _POSTPROCESS_VERSION,
    }
    return {"tool": tool, "precision": chosen.value, "options": normalized}


def apply_precision(
    model_path: Path,
    precision: str | Precision,
    out_dir: Path,
    *,
    keep_fp32_ops: Sequence[str] = (),
    keep_fp32_nodes: Sequence[str] = (),
    emulate: bool = False,
) -> Path:
    """Return the path of ``model_path`` in ``precision``.

    fp32/tf32 return ``model_path``; int8/fp8 return it when it carries Q/DQ nodes; fp16/bf16
    write the converted model (or, with ``emulate``, its fp32 emulation) under ``out_dir`` with
    a name derived from the model bytes and ``transform_key``, reused when already there.
    """
    model_path = Path(model_path)
    chosen = _precision(precision)
    options = {"keep_fp32_ops": keep_fp32_ops, "keep_fp32_nodes": keep_fp32_nodes, "emulate": emulate}
    key = transform_key(chosen, options)
    if chosen in UNCHANGED_PRECISIONS:
        return model_path
    if chosen in QUANTIZED_PRECISIONS:
        _check_quantized(model_path, chosen)
        return model_path
    form = f"{chosen.value}-emulated" if emulate else chosen.value
    target = Path(out_dir) / f"{model_path.stem}.{form}-{_content_key(model_path, key)}.onnx"
    if not target.is_file():
        _save_atomically(_converted(model_path, chosen, key["options"]), target)
    return target


def _check_quantized(model_path: Path, precision: Precision) -> None:
    """int8 and fp8 run a model that carries Q/DQ nodes as it is; any other is an error that says
    how to quantize it."""
    if has_qdq(_load(model_path, with_weights=False)):
        return
    # INT8 can be calibrated here (quantize.py); FP8 needs a quantized model.
    calibrate = (
        "give calibration= (an .npz of representative inputs, or a number of seeded batches) "
        "to quantize it here, or "
        if precision is Precision.INT8
        else ""
    )
    raise PrecisionError(
        f"{model_path}: precision={precision.value!r} needs a model with Q/DQ "
        "(QuantizeLinear/DequantizeLinear) nodes, and this one has none. TensorRT 11 takes "
        f"quantization from the graph: {calibrate}produce a quantized model first, e.g. with NVIDIA "
        f"ModelOpt: python -m modelopt.onnx.quantization --onnx_path={model_path.name} "
        f"--quantize_mode={precision.value} (modelopt.onnx.quantization.quantize in Python), "
        "and point trt_model at the result."
    )


def _converted(model_path: Path, precision: Precision, options: Mapping[str, Any]) -> onnx.ModelProto:
    """The fp16 or bf16 graph of the model (with ``options["emulate"]``, its fp32 emulation)."""
    model = _load(model_path, with_weights=True)
    if precision is Precision.BF16 and _opset(model) < 13:
        raise PrecisionError(
            f"{model_path}: precision='bf16' needs ONNX opset >= 13 (bfloat16 types); this model uses "
            f"opset {_opset(model)}. Upgrade it with onnx.version_converter.convert_version."
        )
    ops, nodes = options["keep_fp32_ops"], options["keep_fp32_nodes"]
    _check_names_exist(model, model_path, ops, nodes)
    originals = {}
    blocked_ops = ops
    if precision is Precision.BF16:
        originals = _float_constants(model)
        blocked_ops = sorted({*ops, *_ops_without_bf16(model)})
    try:
        kept = fp32_islands.keep_in_fp32(model, ops, nodes, fp16_range=precision is Precision.FP16)
        converted = _to_fp16(model, blocked_ops, list(kept.nodes))
        if precision is Precision.BF16:
            _retype_fp16_as_bf16(converted, originals)
        if options["emulate"]:
            converted = _emulate_storage(converted, _LOW_TYPES[precision])
    except PrecisionError as error:
        raise PrecisionError(f"{model_path}: {error}") from None
    except Exception as error:  # the converter and shape inference raise assorted types
        raise PrecisionError(f"{model_path}: converting to {precision.value} failed: {error}") from error
    return converted


def _to_fp16(model: onnx.ModelProto, keep_ops: list[str], keep_nodes: list[str]) -> onnx.ModelProto:
    from onnxruntime.transformers import float16

    original_nodes = {node.name for node in model.graph.node}
    converted = float16.convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_ops)),
        node_block_list=keep_nodes,
    )
    if not isinstance(converted, onnx.ModelProto):
        raise PrecisionError(f"the float16 converter returned a {type(converted).__name__}, not a model")
    _drop_fp16_round_trips(converted.graph, original_nodes)
    _sort_topologically(converted.graph)
    return converted


def _drop_fp16_round_trips(graph: onnx.GraphProto, original_nodes: set[str]) -> None:
    """Remove the converter's Cast(fp16) -> Cast(fp32) pairs between two kept-fp32 nodes.

    The converter casts every kept node's output to fp16 and back for the next kept node, which
    would overflow exactly the values that keep_fp32 is meant to protect.
    """
    added_casts = {
        node.output[0]: node
        for node in graph.node
        if node.op_type == "Cast" and node.name not in original_nodes
    }
    graph_outputs = {output.name for output in graph.output}
    renames: dict[str, str] = {}
    for name, cast in added_casts.items():
        source = added_casts.get(cast.input[0])
        if (
            _cast_target(cast) == TensorProto.FLOAT
            and source is not None
            and _cast_target(source) == TensorProto.FLOAT16
        ):
            if name in graph_outputs:
                cast.input[0] = source.input[0]  # an fp32 -> fp32 Cast keeps the output's name
            else:
                renames[name] = source.input[0]
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renames.get(name, name)
    # Drop added Casts nobody reads; each removal can orphan the Cast before it.
    while True:
        consumed = {name for node in graph.node for name in names_used(node)} | graph_outputs
        kept = [
            node
            for node in graph.node
            if node.op_type != "Cast" or node.name in original_nodes or node.output[0] in consumed
        ]
        if len(kept) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(kept)
    produced = {name for node in graph.node for name in node.output}
    stale = [info for info in graph.value_info if info.name not in produced]
    for info in stale:
        graph.value_info.remove(info)


def _cast_target(node: onnx.NodeProto) -> int:
    return next(int(attr.i) for attr in node.attribute if attr.name == "to")


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """ONNX requires producers before consumers; the converter appends its Casts at the end."""
    produced_by = {name: i for i, node in enumerate(graph.node) for name in node.output}
    needs = [
        {produced_by[name] for name in names_used(node) if name in produced_by} for node in graph.node
    ]
    consumers: dict[int, list[int]] = {i: [] for i in range(len(graph.node))}
    for index, dependencies in enumerate(needs):
        dependencies.discard(index)
        for dependency in dependencies:
            consumers[dependency].append(index)
    waiting = [len(dependencies) for dependencies in needs]
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)  # smallest index first keeps the original order where it is valid
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for consumer in consumers[index]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(ready, consumer)
    if len(order) != len(graph.node):
        raise PrecisionError("the converted graph has a cycle; please report this model")
    nodes = [graph.node[i] for i in order]
    del graph.node[:]
    graph.node.extend(nodes)


def _float_constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """fp32 initializers and Constant values by tensor name: bf16 takes its weights from these,
    not from the converter's fp16 copies (clamped to fp16's range)."""
    constants = {
        init.name: numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.data_type == TensorProto.FLOAT
    }
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type == TensorProto.FLOAT:
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    return constants


def _ops_without_bf16(model: onnx.ModelProto) -> set[str]:
    """Float ops whose ONNX schema at the model's opset has no bfloat16 (Conv before opset 22):
    they stay fp32, or the bf16 graph would not be valid ONNX."""
    opset = _opset(model)
    lacking = set()
    for node in all_nodes(model.graph):
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            schema = onnx.defs.get_schema(node.op_type, opset)
        except onnx.defs.SchemaError:
            continue
        float_constraints = [c for c in schema.type_constraints if "tensor(float)" in c.allowed_type_strs]
        if any("tensor(bfloat16)" not in c.allowed_type_strs for c in float_constraints):
            lacking.add(node.op_type)
    return lacking


def _retype_fp16_as_bf16(model: onnx.ModelProto, originals: Mapping[str, np.ndarray]) -> None:
    """Make every fp16 type, Cast and weight of the converted model bf16."""
    for graph in all_graphs(model.graph):
        for info in [*graph.input, *graph.output, *graph.value_info]:
            if info.type.tensor_type.elem_type == TensorProto.FLOAT16:
                info.type.tensor_type.elem_type = TensorProto.BFLOAT16
        for init in graph.initializer:
            if init.data_type == TensorProto.FLOAT16:
                init.CopyFrom(_as_bf16(init, originals.get(init.name)))
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.name in ("to", "dtype") and attribute.i == TensorProto.FLOAT16:
                    attribute.i = TensorProto.BFLOAT16
                elif attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT16:
                    original = originals.get(node.output[0]) if node.op_type == "Constant" else None
                    attribute.t.CopyFrom(_as_bf16(attribute.t, original))


def _as_bf16(tensor: TensorProto, original: np.ndarray | None) -> TensorProto:
    values = original if original is not None else numpy_helper.to_array(tensor)
    return numpy_helper.from_array(values.astype(np.float32).astype(ml_dtypes.bfloat16), tensor.name)


def _emulate_storage(model: onnx.ModelProto, low_type: int) -> onnx.ModelProto:
    """The converted model as an fp32 graph with the same rounding: each tensor it stores as
    ``low_type`` is computed in fp32 and sent through Cast(low_type) -> Cast(fp32)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    _check_emulatable(graph, low_type)
    low_tensors = {info.name for info in [*graph.value_info, *graph.output] if _is_low(info, low_type)}
    for init in graph.initializer:
        if init.data_type == low_type:
            init.CopyFrom(_as_fp32(init))
    names = FreshNames(graph)
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        _constants_as_fp32(node, low_type)
        nodes.append(node)
        nodes.extend(_round_trips(node, low_tensors, low_type, names))
    del graph.node[:]
    graph.node.extend(nodes)
    for info in graph.output:
        if _is_low(info, low_type):
            info.type.tensor_type.elem_type = TensorProto.FLOAT
    del graph.value_info[:]  # stale after renaming; runtimes infer again
    return inferred


def _check_emulatable(graph: onnx.GraphProto, low_type: int) -> None:
    for subgraph in list(all_graphs(graph))[1:]:
        if any(_is_low(info, low_type) for info in [*subgraph.input, *subgraph.output, *subgraph.value_info]):
            raise PrecisionError(
                "emulating fp16/bf16 inside control-flow subgraphs (If, Loop, Scan) is not supported; "
                "keep those nodes in fp32 with keep_fp32_nodes, or run on a backend with fp16/bf16 kernels"
            )
    if any(_is_low(info, low_type) for info in graph.input):
        raise PrecisionError(
            "emulate=True needs a model whose inputs are not already fp16/bf16; run this model on a "
            "backend with fp16/bf16 kernels instead"
        )


def _constants_as_fp32(node: onnx.NodeProto, low_type: int) -> None:
    """The node's ``low_type`` constant values and dtype attributes made fp32."""
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == low_type:
            attribute.t.CopyFrom(_as_fp32(attribute.t))
        elif attribute.name == "dtype" and attribute.i == low_type:
            attribute.i = TensorProto.FLOAT


def _round_trips(
    node: onnx.NodeProto, low_tensors: set[str], low_type: int, fresh: FreshNames
) -> list[onnx.NodeProto]:
    """Casts after ``node`` that round each of its stored outputs through ``low_type``."""
    casts: list[onnx.NodeProto] = []
    casts_to_low = node.op_type == "Cast" and _cast_target(node) == low_type
    for i, name in enumerate(node.output):
        if name not in low_tensors:
            continue
        # Renaming the producer's output keeps every consumer and graph output reading `name`.
        stored = fresh(f"{name}__{'stored' if casts_to_low else 'fp32'}")
        node.output[i] = stored
        if not casts_to_low:
            rounded = fresh(f"{name}__stored")
            casts.append(_cast(stored, rounded, fresh(f"{rounded}_cast"), low_type))
            stored = rounded
        casts.append(_cast(stored, name, fresh(f"{name}_cast_fp32"), TensorProto.FLOAT))
    return casts


def _as_fp32(tensor: TensorProto) -> TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)


def _cast(source: str, target: str, name: str, to: int) -> onnx.NodeProto:
    return helper.make_node("Cast", [source], [target], name=name, to=to)


def _is_low(info: onnx.ValueInfoProto, low_type: int) -> bool:
    return info.type.tensor_type.elem_type == low_type


def _opset(model: onnx.ModelProto) -> int:
    return max((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _precision(value: str | Precision) -> Precision:
    try:
        return Precision(value)
    except (ValueError, TypeError):
        words = ", ".join(member.value for member in Precision)
        raise PrecisionError(f"precision must be one of {words}; got {value!r}") from None


def _normalize_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - {*_LIST_OPTIONS, "emulate"})
    if unknown:
        raise PrecisionError(
            f"unknown precision option {unknown[0]!r} (known: {', '.join(_LIST_OPTIONS)}, emulate)"
        )
    normalized: dict[str, Any] = {}
    for name in _LIST_OPTIONS:
        value = options.get(name, ())
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise PrecisionError(f"{name} must be a list of names, got {value!r}")
        normalized[name] = sorted(set(value))
    emulate = options.get("emulate", False)
    if not isinstance(emulate, bool):
        raise PrecisionError(f"emulate must be True or False, got {emulate!r}")
    normalized["emulate"] = emulate
    return normalized


def _check_names_exist(model: onnx.ModelProto, path: Path, ops: list[str], nodes: list[str]) -> None:
    """A misspelt keep_fp32 name would silently keep nothing in fp32."""
    node_names = {node.name for node in all_nodes(model.graph)}
    missing = [n for n in nodes if n not in node_names]
    if missing:
        raise PrecisionError(f"{path}: keep_fp32_nodes names {missing} that are not nodes of the model")
    # Op types may be absent from this model (RANGE_SENSITIVE_OPS is generic) but must exist.
    op_types = {node.op_type for node in all_nodes(model.graph)}
    unknown = [op for op in ops if op not in op_types and not onnx.defs.has(op)]
    if unknown:
        raise PrecisionError(f"{path}: keep_fp32_ops names {unknown} that are not ONNX operator types")


def _load(path: Path, *, with_weights: bool) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=with_weights)
    except FileNotFoundError:
        raise PrecisionError(f"{path}: model file not found") from None
    except Exception as error:  # protobuf and onnx raise several unrelated types
        raise PrecisionError(f"{path}: not a readable ONNX model ({error})") from error


def _content_key(path: Path, key: Mapping[str, Any]) -> str:
    """sha256 of the model bytes, its external-data files and the transform key (16 hex digits)."""
    digest = hashlib.sha256()
    digest.update(path.read_bytes())
    external = {
        entry.value
        for init in _load(path, with_weights=False).graph.initializer
        if init.data_location == TensorProto.EXTERNAL
        for entry in init.external_data
        if entry.key == "location"
    }
    for location in sorted(external):
        digest.update(location.encode())
        digest.update((path.parent / location).read_bytes())
    digest.update(json.dumps(key, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _save_atomically(model: onnx.ModelProto, target: Path) -> None:
    if model.ByteSize() >= 2**31 - 1:
        raise PrecisionError(
            f"{target.name}: the converted model is over protobuf's 2 GB limit; converting models "
            "with external data that large is not supported yet"
        )
    write_atomic(target, model.SerializeToString())
