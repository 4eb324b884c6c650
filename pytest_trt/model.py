"""ONNX models: loading and checking, content hash, IO specs, shape resolution, seeded inputs."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, helper

from pytest_trt.errors import ModelError
from pytest_trt.types import TensorSpec

Shape = tuple[int, ...]

# Integer inputs whose valid range cannot be read from the graph: wide enough that an index-like
# input is not stuck at 0/1 (the Polygraphy trap), small enough to stay valid for most vocabularies.
DEFAULT_INT_RANGE = (0, 100)
DEFAULT_FLOAT_RANGE = (-1.0, 1.0)
# Generated inputs larger than this together are refused (a model may declare billions of
# elements); the option's default in options.py says the same.
DEFAULT_MAX_INPUT_BYTES = 4 * 2**30
MAX_INPUT_BYTES_OPTION = "--trt-max-input-bytes (ini trt_max_input_bytes)"
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
        """Integer inputs the graph gives no bound for: generated in DEFAULT_INT_RANGE unless
        the mark's input_ranges names them."""
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
        index_ranges=tuple(sorted(_gather_index_ranges(proto, {i.name for i in inputs}).items())),
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


def format_bytes(size: int) -> str:
    """``44.7 GiB``: a size in powers of 1024, as people read it."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


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
            return opset.version
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


def _gather_index_ranges(proto: onnx.ModelProto, input_names: set[str]) -> dict[str, tuple[int, int]]:
    """Bounds for int inputs that index a constant table, so generated indices are valid: a
    Gather's indices traced back to an input, its data to an initializer or Constant, each through
    ops that keep the values (indices) or the shape (data)."""
    graph = proto.graph
    constants: dict[str, tuple[int, ...]] = {t.name: tuple(t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            attr = node.attribute[0]  # a Constant has exactly one value attribute
            if attr.name == "value":
                constants[node.output[0]] = tuple(attr.t.dims)
            elif attr.name in ("value_float", "value_int", "value_string"):
                constants[node.output[0]] = ()
            elif attr.name in ("value_floats", "value_ints", "value_strings"):
                constants[node.output[0]] = (len(helper.get_attribute_value(attr)),)
    producers = {out: node for node in graph.node for out in node.output if out}
    memo: dict[str, tuple[int, ...] | None] = {}

    def table_dims(name: str, depth: int = 0) -> tuple[int, ...] | None:
        """The shape of ``name`` where it is a constant table or a shape-keeping op of one."""
        if name in constants:
            return constants[name]
        if name in memo:
            return memo[name]
        node = producers.get(name)
        dims = None
        if node is not None and depth < _MAX_CHAIN:
            if node.op_type in _SHAPE_PRESERVING and node.input:
                dims = table_dims(node.input[0], depth + 1)
            elif node.op_type in _ELEMENTWISE and len(node.input) == 2:
                # table * scale keeps the table's shape when the other side broadcasts into it.
                for data, other in (node.input, node.input[::-1]):
                    data_dims, other_dims = table_dims(data, depth + 1), table_dims(other, depth + 1)
                    if data_dims is not None and other_dims is not None and _broadcasts_into(other_dims, data_dims):
                        dims = data_dims
                        break
        memo[name] = dims
        return dims

    def index_input(name: str) -> str | None:
        """The graph input whose values ``name`` holds, if it is one passed through unchanged."""
        for _ in range(_MAX_CHAIN):
            if name in input_names:
                return name
            node = producers.get(name)
            if node is None or node.op_type not in _INDEX_PRESERVING or not node.input:
                return None
            if node.op_type == "Cast" and _attribute(node, "to", None) not in _INDEX_TYPES:
                return None
            name = node.input[0]
        return None

    ranges: dict[str, tuple[int, int]] = {}
    for node in graph.node:
        if node.op_type != "Gather" or len(node.input) < 2:
            continue
        source = index_input(node.input[1])
        dims = table_dims(node.input[0]) if source is not None else None
        if source is None or not dims:
            continue
        axis = _attribute(node, "axis", 0)
        if not -len(dims) <= axis < len(dims) or dims[axis] <= 0:
            continue
        rows = dims[axis]
        # One input may index several tables: the tightest bound keeps every lookup valid.
        low, high = ranges.get(source, (0, rows))
        ranges[source] = (low, min(high, rows))
    return ranges


def _attribute(node: onnx.NodeProto, name: str, default: object) -> object:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _broadcasts_into(small: tuple[int, ...], big: tuple[int, ...]) -> bool:
    """Whether numpy broadcasting ``small`` against ``big`` gives ``big``'s shape."""
    return len(small) <= len(big) and all(s in (1, b) for s, b in zip(reversed(small), reversed(big), strict=False))


def resolve_shapes(
    model: LoadedModel, shapes: Mapping[str, Shape] | None = None, batch_size: int | None = None
) -> dict[str, Shape]:
    """Concrete shape of every input: ``shapes`` first, else ``batch_size`` for a dynamic leading
    dim. A dynamic dim left open, an unknown input name or a shape that contradicts the model's
    fixed dims is a ModelError naming the file and the input."""
    shapes = dict(shapes or {})
    known = {spec.name for spec in model.inputs}
    unknown = sorted(set(shapes) - known)
    if unknown:
        raise ModelError(
            f"{model.path}: shapes names input {unknown[0]!r}, which the model does not have "
            f"(inputs: {', '.join(sorted(known))})"
        )
    resolved: dict[str, Shape] = {}
    for spec in model.inputs:
        if spec.name in shapes:
            shape = tuple(shapes[spec.name])
            fixed_mismatch = len(shape) != len(spec.shape) or any(
                want is not None and want != got for want, got in zip(spec.shape, shape, strict=False)
            )
            if fixed_mismatch:
                raise ModelError(
                    f"{model.path}: shapes[{spec.name!r}]={shape} does not fit the model's shape "
                    f"{_show_shape(spec.shape)}"
                )
            resolved[spec.name] = shape
            continue
        dims = list(spec.shape)
        if dims and dims[0] is None and batch_size is not None:
            dims[0] = batch_size
        if any(d is None for d in dims):
            raise ModelError(
                f"{model.path}: input {spec.name!r} has dynamic dims {_show_shape(spec.shape)}; "
                f"give shapes={{{spec.name!r}: (...)}}"
                + (" or batch_size" if spec.shape and spec.shape[0] is None else "")
            )
        resolved[spec.name] = tuple(int(d) for d in dims)
    return resolved


def _show_shape(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


class RangeSource(Enum):
    """Where the range of a generated input comes from."""

    INPUT_RANGES = "input_ranges"  # the trt_model mark
    GRAPH = "graph"  # an int input that indexes a constant table
    DEFAULT = "default"  # nothing bounds it


@dataclass(frozen=True)
class InputRange:
    """Generated values of one input: ints in [low, high), floats uniform in [low, high);
    bools take both values."""

    low: float
    high: float
    source: RangeSource


def generated_ranges(
    model: LoadedModel, ranges: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, InputRange]:
    """The range each input is generated in: ``ranges`` (the mark's input_ranges) first, then
    the graph's bound for table indices, else the defaults."""
    ranges = dict(ranges or {})
    unknown = sorted(set(ranges) - {spec.name for spec in model.inputs})
    if unknown:
        raise ModelError(
            f"{model.path}: input_ranges names input {unknown[0]!r}, which the model does not have "
            f"(inputs: {', '.join(spec.name for spec in model.inputs)})"
        )
    index_ranges = dict(model.index_ranges)
    result: dict[str, InputRange] = {}
    for spec in model.inputs:
        if spec.dtype == np.bool_:
            result[spec.name] = InputRange(0, 2, RangeSource.DEFAULT)
        elif spec.name in ranges:
            result[spec.name] = InputRange(*ranges[spec.name], RangeSource.INPUT_RANGES)
        elif np.issubdtype(spec.dtype, np.integer):
            bound = index_ranges.get(spec.name)
            result[spec.name] = (
                InputRange(*bound, RangeSource.GRAPH) if bound else InputRange(*DEFAULT_INT_RANGE, RangeSource.DEFAULT)
            )
        else:
            result[spec.name] = InputRange(*DEFAULT_FLOAT_RANGE, RangeSource.DEFAULT)
    return result


def make_inputs(
    model: LoadedModel,
    shapes: Mapping[str, Shape],
    seed: int,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> dict[str, np.ndarray]:
    """Seeded inputs: floats uniform in [-1, 1), ints in [low, high) valid for the model where
    the graph bounds them (else [0, 100)), bools both values; ``ranges`` overrides per input.

    Each input draws from its own stream derived from (seed, name), so adding an input to a
    model does not change the values fed to the others. Values are drawn in the input's own
    dtype (float16 and other narrow floats via float32), and inputs taking more than
    ``max_bytes`` together are refused before anything is allocated.
    """
    plan = generated_ranges(model, ranges)
    for spec in model.inputs:
        if not _can_generate(spec.dtype):
            raise ModelError(f"{model.path}: cannot generate values for input {spec.name!r} of dtype {spec.dtype}")
    _check_input_bytes(model, shapes, max_bytes)
    feed: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        name_key = int.from_bytes(hashlib.sha256(spec.name.encode()).digest()[:8], "little")
        rng = np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, name_key])
        feed[spec.name] = _generate(model, spec, tuple(shapes[spec.name]), plan[spec.name], rng)
    return feed


def _can_generate(dtype: np.dtype) -> bool:
    # Kind "V": ml_dtypes' bfloat16 and float8 types, drawn as floats.
    return dtype == np.bool_ or np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype.kind == "V"


def _generate(
    model: LoadedModel, spec: TensorSpec, shape: Shape, span: InputRange, rng: np.random.Generator
) -> np.ndarray:
    if spec.dtype == np.bool_:
        return rng.integers(0, 2, size=shape, dtype=np.bool_)
    if np.issubdtype(spec.dtype, np.integer):
        # A user's (low, high) for ints is inclusive of low, exclusive of high, like numpy.
        low, high = int(span.low), int(span.high)
        info = np.iinfo(spec.dtype)
        if span.source is RangeSource.GRAPH:
            high = min(high, info.max + 1)  # a narrow index type reaches only the first rows
        if low >= high or low < info.min or high - 1 > info.max:
            raise ModelError(
                f"{model.path}: input_ranges[{spec.name!r}]=({span.low!r}, {span.high!r}) holds no "
                f"{spec.dtype} values in [low, high) (the dtype holds [{info.min}, {info.max}])"
            )
        return rng.integers(low, high, size=shape, dtype=spec.dtype)
    # Generator.random draws float32 and float64 directly; narrower floats are cast from float32.
    draw = spec.dtype if spec.dtype == np.float64 else np.dtype(np.float32)
    values = rng.random(size=shape, dtype=draw)
    values *= span.high - span.low
    values += span.low
    return values if values.dtype == spec.dtype else values.astype(spec.dtype)


def _check_input_bytes(model: LoadedModel, shapes: Mapping[str, Shape], max_bytes: int) -> None:
    sizes = sorted(
        ((math.prod(shapes[spec.name]) * spec.dtype.itemsize, spec) for spec in model.inputs),
        key=lambda pair: -pair[0],
    )
    total = sum(size for size, _ in sizes)
    if total <= max_bytes:
        return

    def one(size: int, spec: TensorSpec) -> str:
        return (
            f"input {spec.name!r} of shape {list(shapes[spec.name])} and dtype {spec.dtype} takes "
            f"{format_bytes(size)} ({size} bytes)"
        )

    limit = f"over the limit of {format_bytes(max_bytes)} set by {MAX_INPUT_BYTES_OPTION}"
    if len(sizes) == 1:
        what = f"generating {one(*sizes[0])}, {limit}"
    else:
        what = (
            f"generating the inputs takes {format_bytes(total)} ({total} bytes), {limit}: "
            + "; ".join(one(size, spec) for size, spec in sizes if size)
        )
    raise ModelError(
        f"{model.path}: {what}. Give smaller shapes= or batch_size=, real inputs with inputs=, "
        "or a larger limit"
    )


def describe_generated(
    model: LoadedModel, feed: Mapping[str, np.ndarray], ranges: Mapping[str, tuple[float, float]] | None = None
) -> str:
    """What a model that failed on generated inputs was fed: each input's shape, dtype and
    value range, and how to set them (``ranges`` is the mark's input_ranges)."""
    plan = generated_ranges(model, ranges)
    lines = ["The model ran on generated inputs, which it may not accept:"]
    for name, array in feed.items():
        span = plan[name]
        if array.dtype == np.bool_:
            values = "False or True"
        elif np.issubdtype(array.dtype, np.integer):
            values = f"ints in [{int(span.low)}, {int(span.high)}) ({_SOURCE_WORDS[span.source]})"
        else:
            values = f"uniform in [{span.low!r}, {span.high!r}) ({_SOURCE_WORDS[span.source]})"
        lines.append(f"  {name!r} {list(array.shape)} {array.dtype}: {values}")
    unbounded = [n for n in feed if plan[n].source is RangeSource.DEFAULT and feed[n].dtype != np.bool_]
    example = next(iter(unbounded or list(feed)), "name")
    lines.append(
        f"Set an input's range with trt_model(..., input_ranges={{{example!r}: (low, high)}}), or give "
        "real inputs with trt_model(..., inputs='inputs.npz')."
    )
    return "\n".join(lines)


_SOURCE_WORDS = {
    RangeSource.INPUT_RANGES: "from input_ranges",
    RangeSource.GRAPH: "the rows of the table it indexes",
    RangeSource.DEFAULT: "default range",
}


def load_inputs_npz(path: str | Path, model: LoadedModel) -> dict[str, np.ndarray]:
    """Real inputs from an ``.npz`` keyed by input name, checked against the model.

    Arrays are cast only where numpy calls it safe within a kind (float64 -> float32); anything
    else, a missing or extra name, or a shape that contradicts a fixed dim is a ModelError.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:
        raise ModelError(f"{path}: not a readable .npz of input arrays ({exc})") from None
    expected = {spec.name for spec in model.inputs}
    extra = sorted(set(arrays) - expected)
    missing = sorted(expected - set(arrays))
    if extra:
        raise ModelError(
            f"{path}: array {extra[0]!r} is not an input of {model.path.name} "
            f"(inputs: {', '.join(sorted(expected))})"
        )
    if missing:
        raise ModelError(f"{path}: no array for input {missing[0]!r} of {model.path.name}")
    feed: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        array = arrays[spec.name]
        if array.dtype != spec.dtype:
            if not np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
                raise ModelError(
                    f"{path}: array {spec.name!r} has dtype {array.dtype}, the model wants {spec.dtype}"
                )
            array = array.astype(spec.dtype)
        if len(array.shape) != len(spec.shape) or any(
            want is not None and want != got for want, got in zip(spec.shape, array.shape, strict=False)
        ):
            raise ModelError(
                f"{path}: array {spec.name!r} has shape {list(array.shape)}, the model wants "
                f"{_show_shape(spec.shape)}"
            )
        feed[spec.name] = np.ascontiguousarray(array)
    return feed
