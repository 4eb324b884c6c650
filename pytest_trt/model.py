"""ONNX models: loading and checking, content hash with external data, IO specs, Q/DQ detection
and the index ranges the graph bounds (prepare/inputs.py generates values from them)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, helper

from pytest_trt.errors import ModelError
from pytest_trt.types import TensorSpec

Shape = tuple[int, ...]

_HASH_CHUNK = 1 << 20


# Quantize/dequantize ops: a model carrying them is explicitly quantized (int8, fp8, int4).
QDQ_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        # TensorRT-specific Q/DQ that NVIDIA ModelOpt emits for fp8 and int4.
        "TRT_FP8QuantizeLinear",
        "TRT_FP8DequantizeLinear",
        "TRT_INT4QuantizeLinear",
        "TRT_INT4DequantizeLinear",
    }
)

@dataclass(frozen=True)
class LoadedModel:
    """A checked ONNX model on disk. Backends build from ``path`` (external data resolves
    relative to it); ``content_hash`` covers the model bytes and every external-data file."""

    path: Path
    content_hash: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int
    # Input name -> [low, high) that the graph itself bounds (an int input used as Gather indices
    # into a constant table). Defaulted so that other constructors of LoadedModel keep working.
    index_ranges: tuple[tuple[str, tuple[int, int]], ...] = ()
    quantized: bool = False  # carries Q/DQ nodes (QDQ_OPS)

    @property
    def default_ranged_inputs(self) -> tuple[str, ...]:
        """Integer inputs the graph gives no bound for: generated in the default range
        (prepare/inputs.py) unless the mark's input_ranges names them."""
        bounded = dict(self.index_ranges)
        return tuple(s.name for s in self.inputs if np.issubdtype(s.dtype, np.integer) and s.name not in bounded)


def load_model(path: str | Path, *, check: bool = True) -> LoadedModel:
    """Load and check an ONNX file; every failure is a ModelError naming the file.

    ``check=False`` skips onnx's checker, for models pytest-trt wrote itself: converters may
    leave nodes out of topological order, which runtimes accept but the checker does not.
    """
    path = Path(path).resolve()
    if path.is_dir():
        raise ModelError(f"{path} is a directory, not an ONNX file")
    if not path.is_file():
        raise ModelError(f"model file {str(path)!r} not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... depending on the damage
        raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if check:
        try:
            # The path form also checks external data and models over 2 GB.
            onnx.checker.check_model(str(path))
        except Exception as exc:
            raise ModelError(f"{path}: invalid ONNX model: {_first_line(exc)}") from None
    initializers = {t.name for t in proto.graph.initializer}
    try:
        inputs = tuple(_tensor_spec(v) for v in proto.graph.input if v.name not in initializers)
        outputs = tuple(_tensor_spec(v) for v in proto.graph.output)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    return LoadedModel(
        path=path,
        content_hash=_content_hash(path, proto),
        inputs=inputs,
        outputs=outputs,
        opset=_default_opset(proto),
        index_ranges=tuple(sorted(_IndexTracer(proto.graph).ranges({i.name for i in inputs}).items())),
        quantized=has_qdq(proto),
    )


def has_qdq(model: onnx.ModelProto) -> bool:
    """Does the graph, or any subgraph of it, carry quantize/dequantize nodes?"""
    return any(node.op_type in QDQ_OPS for node in all_nodes(model.graph))


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every control-flow subgraph in it, outermost first."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from all_graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from all_graphs(subgraph)


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for each in all_graphs(graph):
        yield from each.node


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        raise ModelError(f"input/output {value.name!r} is not a tensor (sequences and maps are unsupported)")
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    except Exception:
        raise ModelError(
            f"{value.name!r} has element type {onnx.TensorProto.DataType.Name(tensor_type.elem_type)} "
            "which numpy cannot hold"
        ) from None
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                  for d in tensor_type.shape.dim)
    return TensorSpec(name=value.name, dtype=dtype, shape=shape)


def _default_opset(proto: onnx.ModelProto) -> int:
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return int(opset.version)
    return 0


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and constant attributes, including those inside subgraphs (If/Loop/Scan)."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def external_tensors(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Every tensor of the model (initializers and constants, in subgraphs too) whose bytes are
    in an external-data file."""
    return [t for t in _all_tensors(proto.graph) if external_data_helper.uses_external_data(t)]


def _content_hash(path: Path, proto: onnx.ModelProto) -> str:
    """sha256 over the model file and each external-data file it names, in a stable order.

    A model whose weights live outside the .onnx file must change hash when the weights change,
    and an external location may not point outside the model's directory.
    """
    digest = hashlib.sha256()
    _hash_file(digest, path)
    base = path.parent
    locations = sorted({external_data_helper.ExternalDataInfo(t).location for t in external_tensors(proto)})
    for location in locations:
        data_path = (base / location).resolve()
        if not data_path.is_relative_to(base):
            raise ModelError(f"{path}: external data location {location!r} points outside {base}")
        if not data_path.is_file():
            raise ModelError(f"{path}: external data file {location!r} not found next to the model")
        digest.update(location.encode())
        _hash_file(digest, data_path)
    return digest.hexdigest()


def _hash_file(digest: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)


# Ops whose output holds their first input's values, at most reshaped: indices passed through
# them still pick the same rows. Cast only to an index type, which keeps every row number.
_INDEX_PRESERVING = {"Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Cast"}
_INDEX_TYPES = {onnx.TensorProto.INT32, onnx.TensorProto.INT64}
# Ops whose output has their first input's shape: a table passed through them keeps its rows
# (a quantized embedding is DequantizeLinear, or Cast then Sub/Mul by constants, of an initializer).
_SHAPE_PRESERVING = {"Identity", "Cast", "DequantizeLinear", "QuantizeLinear"}
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div"}
_MAX_CHAIN = 64  # ops followed from a Gather back to an initializer or an input


def _constant_dims(graph: onnx.GraphProto) -> dict[str, tuple[int, ...]]:
    """The shape of every initializer and Constant output of ``graph``, by tensor name."""
    constants: dict[str, tuple[int, ...]] = {t.name: tuple(t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "Constant" or not node.attribute:
            continue
        attr = node.attribute[0]  # a Constant has exactly one value attribute
        if attr.name == "value":
            constants[node.output[0]] = tuple(attr.t.dims)
        elif attr.name in ("value_float", "value_int", "value_string"):
            constants[node.output[0]] = ()
        elif attr.name in ("value_floats", "value_ints", "value_strings"):
            constants[node.output[0]] = (len(helper.get_attribute_value(attr)),)
    return constants


class _IndexTracer:
    """Bounds for int inputs that index a constant table, so generated indices are valid: a
    Gather's indices traced back to an input, its data to an initializer or Constant, each through
    ops that keep the values (indices) or the shape (data)."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self._graph = graph
        self._constants = _constant_dims(graph)
        self._producers = {out: node for node in graph.node for out in node.output if out}
        self._memo: dict[str, tuple[int, ...] | None] = {}

    def ranges(self, input_names: set[str]) -> dict[str, tuple[int, int]]:
        """Input name -> [0, rows) of the smallest table it indexes."""
        ranges: dict[str, tuple[int, int]] = {}
        for node in self._graph.node:
            found = self._gather_bound(node, input_names)
            if found is None:
                continue
            source, rows = found
            # One input may index several tables: the tightest bound keeps every lookup valid.
            low, high = ranges.get(source, (0, rows))
            ranges[source] = (low, min(high, rows))
        return ranges

    def _gather_bound(self, node: onnx.NodeProto, input_names: set[str]) -> tuple[str, int] | None:
        """(the input a Gather's indices are, the rows of its table) where both are known."""
        if node.op_type != "Gather" or len(node.input) < 2:
            return None
        source = self._index_input(node.input[1], input_names)
        dims = self._table_dims(node.input[0]) if source is not None else None
        if source is None or not dims:
            return None
        axis = _int_attribute(node, "axis", 0)
        if not -len(dims) <= axis < len(dims) or dims[axis] <= 0:
            return None
        return source, dims[axis]

    def _table_dims(self, name: str, depth: int = 0) -> tuple[int, ...] | None:
        """The shape of ``name`` where it is a constant table or a shape-keeping op of one."""
        if name in self._constants:
            return self._constants[name]
        if name not in self._memo:
            node = self._producers.get(name)
            self._memo[name] = self._produced_dims(node, depth) if node is not None and depth < _MAX_CHAIN else None
        return self._memo[name]

    def _produced_dims(self, node: onnx.NodeProto, depth: int) -> tuple[int, ...] | None:
        if node.op_type in _SHAPE_PRESERVING and node.input:
            return self._table_dims(node.input[0], depth + 1)
        if node.op_type in _ELEMENTWISE and len(node.input) == 2:
            # table * scale keeps the table's shape when the other side broadcasts into it.
            for data, other in (node.input, node.input[::-1]):
                data_dims, other_dims = self._table_dims(data, depth + 1), self._table_dims(other, depth + 1)
                if data_dims is not None and other_dims is not None and _broadcasts_into(other_dims, data_dims):
                    return data_dims
        return None

    def _index_input(self, name: str, input_names: set[str]) -> str | None:
        """The graph input whose values ``name`` holds, if it is one passed through unchanged."""
        for _ in range(_MAX_CHAIN):
            if name in input_names:
                return name
            node = self._producers.get(name)
            if node is None or node.op_type not in _INDEX_PRESERVING or not node.input:
                return None
            if node.op_type == "Cast" and _int_attribute(node, "to", -1) not in _INDEX_TYPES:
                return None
            name = node.input[0]
        return None


def _int_attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((int(helper.get_attribute_value(a)) for a in node.attribute if a.name == name), default)


def _broadcasts_into(small: tuple[int, ...], big: tuple[int, ...]) -> bool:
    """Whether numpy broadcasting ``small`` against ``big`` gives ``big``'s shape."""
    return len(small) <= len(big) and all(s in (1, b) for s, b in zip(reversed(small), reversed(big), strict=False))
