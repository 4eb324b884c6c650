"""The feed a test runs on: input shapes resolved, seeded values generated in ranges the model
accepts, or real inputs read from an ``.npz``, and a description of generated inputs for a
model that refused them."""

from __future__ import annotations

import hashlib
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.errors import ModelError
from pytest_trt.model import LoadedModel, Shape
from pytest_trt.store import memory
from pytest_trt.store.memory import format_bytes
from pytest_trt.types import TensorSpec

# Integer inputs whose valid range cannot be read from the graph: wide enough that an index-like
# input is not stuck at 0/1 (the Polygraphy trap), small enough to stay valid for most vocabularies.
DEFAULT_INT_RANGE = (0, 100)
DEFAULT_FLOAT_RANGE = (-1.0, 1.0)
# Generated inputs larger than this together are refused (a model may declare billions of
# elements); the option's default in options.py says the same.
DEFAULT_MAX_INPUT_BYTES = 4 * 2**30
MAX_INPUT_BYTES_OPTION = "--trt-max-input-bytes (ini trt_max_input_bytes)"


def with_batch(model: LoadedModel, feed: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """``feed`` at another batch size: every input whose leading dim the model leaves dynamic
    gets ``batch`` rows, the feed's own rows repeated in order (the first ``batch`` of them where
    it has more); the other inputs stay as they are. A model with no dynamic leading dim is a
    ModelError naming the file."""
    batched = {spec.name for spec in model.inputs if spec.shape and spec.shape[0] is None}
    if not batched:
        raise ModelError(
            f"{model.path}: batch_sizes needs an input with a dynamic leading (batch) dim, and the "
            f"model has none ({', '.join(f'{s.name} {show_shape(s.shape)}' for s in model.inputs)})"
        )
    return {
        name: np.ascontiguousarray(np.take(array, np.arange(batch) % len(array), axis=0)) if name in batched else array
        for name, array in feed.items()
    }


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
    return {
        spec.name: _given_shape(model, spec, tuple(shapes[spec.name])) if spec.name in shapes
        else _default_shape(model, spec, batch_size)
        for spec in model.inputs
    }


def _given_shape(model: LoadedModel, spec: TensorSpec, shape: Shape) -> Shape:
    if not fits_fixed_dims(spec.shape, shape):
        raise ModelError(
            f"{model.path}: shapes[{spec.name!r}]={shape} does not fit the model's shape {show_shape(spec.shape)}"
        )
    return shape


def _default_shape(model: LoadedModel, spec: TensorSpec, batch_size: int | None) -> Shape:
    """The model's own dims, ``batch_size`` for a dynamic leading one; any other left open is an error."""
    leading_open = bool(spec.shape) and spec.shape[0] is None
    dims = (batch_size, *spec.shape[1:]) if leading_open and batch_size is not None else spec.shape
    fixed = tuple(d for d in dims if d is not None)
    if len(fixed) != len(dims):
        raise ModelError(
            f"{model.path}: input {spec.name!r} has dynamic dims {show_shape(spec.shape)}; "
            f"give shapes={{{spec.name!r}: (...)}}" + (" or batch_size" if leading_open else "")
        )
    return tuple(int(d) for d in fixed)


def fits_fixed_dims(declared: tuple[int | None, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``shape`` has the declared rank and every fixed (non-None) dim of it."""
    return len(shape) == len(declared) and all(
        want is None or want == got for want, got in zip(declared, shape, strict=True)
    )


def show_shape(shape: tuple[int | None, ...]) -> str:
    """``[?, 256]``: a declared shape, dynamic dims as ``?``."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


class RangeSource(Enum):
    """Where the range of a generated input comes from."""

    INPUT_RANGES = "input_ranges"  # the trt_model mark
    GRAPH = "graph"  # an int input that indexes a constant table
    DEFAULT = "default"  # nothing bounds it


@dataclass(frozen=True)
class GeneratedRange:
    """Generated values of one input: ints in [low, high), floats uniform in [low, high);
    bools take both values."""

    low: float
    high: float
    source: RangeSource


def generated_ranges(
    model: LoadedModel, ranges: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, GeneratedRange]:
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
    result: dict[str, GeneratedRange] = {}
    for spec in model.inputs:
        if spec.dtype == np.bool_:
            result[spec.name] = GeneratedRange(0, 2, RangeSource.DEFAULT)
        elif spec.name in ranges:
            result[spec.name] = GeneratedRange(*ranges[spec.name], RangeSource.INPUT_RANGES)
        elif np.issubdtype(spec.dtype, np.integer):
            bound = index_ranges.get(spec.name)
            result[spec.name] = (
                GeneratedRange(*bound, RangeSource.GRAPH) if bound else GeneratedRange(*DEFAULT_INT_RANGE, RangeSource.DEFAULT)
            )
        else:
            result[spec.name] = GeneratedRange(*DEFAULT_FLOAT_RANGE, RangeSource.DEFAULT)
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
    model: LoadedModel, spec: TensorSpec, shape: Shape, span: GeneratedRange, rng: np.random.Generator
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
    """Refuse, before allocating, inputs over ``max_bytes`` or over what memory allows now."""
    sizes = sorted(
        ((math.prod(shapes[spec.name]) * spec.dtype.itemsize, spec) for spec in model.inputs),
        key=lambda pair: -pair[0],
    )
    total = sum(size for size, _ in sizes)
    room = memory.limit_bytes()
    if total > max_bytes:
        limit = f"over the limit of {format_bytes(max_bytes)} set by {MAX_INPUT_BYTES_OPTION}"
        fix = "Give smaller shapes= or batch_size=, real inputs with inputs=, or a larger limit"
    elif room is not None and total > room:
        limit, fix = f"over {memory.describe_limit(room)}", "Give smaller shapes= or batch_size="
    else:
        return

    def one(size: int, spec: TensorSpec) -> str:
        return (
            f"input {spec.name!r} of shape {list(shapes[spec.name])} and dtype {spec.dtype} takes "
            f"{format_bytes(size)} ({size} bytes)"
        )

    if len(sizes) == 1:
        what = f"generating {one(*sizes[0])}, {limit}"
    else:
        what = (
            f"generating the inputs takes {format_bytes(total)} ({total} bytes), {limit}: "
            + "; ".join(one(size, spec) for size, spec in sizes if size)
        )
    raise ModelError(f"{model.path}: {what}. {fix}")


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
    room = memory.limit_bytes()
    total = sum(npz_array_bytes(path).values())
    if room is not None and total > room:
        raise ModelError(
            f"{path}: its arrays take {format_bytes(total)} ({total} bytes) once read (their headers "
            f"say so), over {memory.describe_limit(room)}; give smaller inputs"
        )
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
    return {spec.name: _checked_array(path, spec, arrays[spec.name]) for spec in model.inputs}


def _checked_array(path: Path, spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """``array`` in the input's dtype where that cast is safe within a kind, and of a shape the
    input's fixed dims allow."""
    if array.dtype != spec.dtype:
        if not np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
            raise ModelError(f"{path}: array {spec.name!r} has dtype {array.dtype}, the model wants {spec.dtype}")
        array = array.astype(spec.dtype)
    if not fits_fixed_dims(spec.shape, tuple(array.shape)):
        raise ModelError(
            f"{path}: array {spec.name!r} has shape {list(array.shape)}, the model wants {show_shape(spec.shape)}"
        )
    return np.ascontiguousarray(array)


def npz_array_bytes(path: Path) -> dict[str, int]:
    """The bytes each array of an ``.npz`` (or ``.npy``) takes once read, from the header of each
    member, without reading its data (members are compressed: the file's size says nothing).
    Empty where the file is not one numpy reads; loading it then says what is wrong."""
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as stream:
                return {"": _npy_bytes(stream)}
        sizes = {}
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    named = info.filename.endswith(".npy")
                    sizes[info.filename] = _npy_bytes(member) if named else info.file_size
        return sizes
    except (OSError, ValueError, zipfile.BadZipFile, RuntimeError, NotImplementedError):
        return {}


def _npy_bytes(stream: Any) -> int:
    """The bytes of the array whose ``.npy`` header ``stream`` starts with (its data unread)."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    return math.prod(shape) * dtype.itemsize
