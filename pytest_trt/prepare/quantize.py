"""INT8 by calibration: a float ONNX model in, one Q/DQ model out, shared by every backend.

onnxruntime's static quantizer (``onnxruntime.quantization.quantize_static``) runs the model on
representative inputs, records each activation's range (MinMax, Entropy or Percentile) and writes
QuantizeLinear/DequantizeLinear pairs into the graph. The settings are the ones TensorRT's
explicit quantization accepts: QDQ format, int8 activations and weights, both symmetric (zero
point 0), weights per channel where the op allows it, and biases left in float (TensorRT cannot
dequantize the int32 biases the quantizer would write). That one model is what TensorRT and
onnxruntime both run, so INT8 means the same everywhere.

Calibration data is one of:

- an ``.npz`` file with one array per model input, keyed by the input's name, each with a leading
  axis that counts the calibration batches: ``images`` of shape ``(n_batches, 8, 3, 224, 224)``
  is ``n_batches`` feeds of ``(8, 3, 224, 224)``. Every input has the same ``n_batches``; dtypes
  are the model's (float64 data for a float32 input is cast, as for ``inputs=``); shapes fit the
  model's fixed dims;
- a list of feeds (each a mapping input name -> array), from Python;
- an int ``n``: ``n`` seeded batches drawn like ``sample_inputs`` (``inputs.make_inputs``) at the
  given shapes, from streams of their own, so no calibration batch equals the test's feed.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import onnx

from pytest_trt.arguments import CalibrationMethod
from pytest_trt.model import LoadedModel, ModelError, load_model
from pytest_trt.prepare import precision
from pytest_trt.prepare.inputs import fits_fixed_dims, make_inputs, npz_array_bytes, resolve_shapes, show_shape
from pytest_trt.prepare.precision import PrecisionError
from pytest_trt.store import memory
from pytest_trt.store.memory import format_bytes

# Bump when the settings below or the steps around quantize_static change.
_QUANTIZE_VERSION = 2
# The lowest opset of the default domain whose Q/DQ ops the quantizer's output can use:
# DequantizeLinear's ``axis`` (per-channel weights) came in opset 13; the quantizer's own
# rounding of scales uses Round, from opset 11. It writes these at the model's opset, so a model
# below is raised to it first (onnx.version_converter), never after.
_PER_CHANNEL_OPSET = 13
_PER_TENSOR_OPSET = 11
_HASH_CHUNK = 1 << 20

Calibration = str | os.PathLike[str] | int | Sequence[Mapping[str, np.ndarray]]


class CalibrationError(PrecisionError):
    """The calibration data does not fit the model; the message names the file and the input."""


def quantize_key(
    model_path: str | os.PathLike[str],
    calibration: Calibration,
    *,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    seed: int = 0,
    input_ranges: Mapping[str, tuple[float, float]] | None = None,
    method: str | CalibrationMethod = CalibrationMethod.MINMAX,
    per_channel: bool = True,
    keep_fp32_nodes: Sequence[str] = (),
    keep_fp32_ops: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything the quantized model depends on, as JSON-able data for the engine cache: the
    model's hash, the calibration data's hash (the file's bytes, the feeds' arrays, or the
    count, seed, shapes and ranges of seeded batches), the quantizer settings and versions."""
    import onnxruntime

    model = _load(model_path)
    settings = _settings(method, per_channel, keep_fp32_nodes, keep_fp32_ops)
    return {
        "format": _QUANTIZE_VERSION,
        "model_hash": model.content_hash,
        "calibration": _calibration_key(calibration, model, shapes, seed, input_ranges),
        "quantizer": settings,
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,  # seeded batches are drawn with numpy's generators
    }


def quantize_model(
    model_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    calibration: Calibration,
    *,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    seed: int = 0,
    input_ranges: Mapping[str, tuple[float, float]] | None = None,
    method: str | CalibrationMethod = CalibrationMethod.MINMAX,
    per_channel: bool = True,
    keep_fp32_nodes: Sequence[str] = (),
    keep_fp32_ops: Sequence[str] = (),
) -> Path:
    """Write the INT8 Q/DQ form of ``model_path`` to ``out_path`` (atomically) and return it.

    A model that already carries Q/DQ nodes is returned as it is (its path), and nothing is
    written. ``shapes`` gives concrete shapes for dynamic dims of seeded batches;
    ``keep_fp32_nodes``/``keep_fp32_ops`` leave those nodes (by name, or every node of those op
    types) unquantized.
    """
    from onnxruntime import quantization as ortq

    model = _load(model_path)
    settings = _settings(method, per_channel, keep_fp32_nodes, keep_fp32_ops)
    proto = _read(model.path)
    if precision.has_qdq(proto):
        return model.path
    # Checked before naming the unnamed nodes: a user can only mean the names the file has.
    precision._check_names_exist(proto, model.path, settings["keep_fp32_ops"], settings["keep_fp32_nodes"])
    proto = _raised_opset(proto, model.path, _PER_CHANNEL_OPSET if per_channel else _PER_TENSOR_OPSET)
    _name_nodes(proto)
    excluded = sorted(
        {n.name for n in proto.graph.node if n.op_type in set(settings["keep_fp32_ops"])}
        | set(settings["keep_fp32_nodes"])
    )
    feeds = _calibration_feeds(calibration, model, shapes, seed, input_ranges)
    target = Path(out_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{target.name[:60]}.", suffix=".quantize", dir=target.parent))
    try:
        draft = workdir / "model.onnx"
        try:
            ortq.quantize_static(
                proto,
                str(draft),
                _Reader(feeds),
                quant_format=ortq.QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=ortq.QuantType.QInt8,
                weight_type=ortq.QuantType.QInt8,
                nodes_to_exclude=excluded,
                calibrate_method=getattr(ortq.CalibrationMethod, _ORT_METHODS[CalibrationMethod(settings["method"])]),
                extra_options={
                    "ActivationSymmetric": True,
                    "WeightSymmetric": True,
                    "QuantizeBias": False,
                },
            )
        except Exception as exc:  # the quantizer and the calibration session raise many types
            raise PrecisionError(f"{model.path}: INT8 calibration failed: {type(exc).__name__}: {exc}") from exc
        written = sorted(p.name for p in workdir.iterdir())
        if written != ["model.onnx"]:
            raise PrecisionError(
                f"{model.path}: the quantizer wrote external data ({', '.join(written)}); models over "
                "protobuf's 2 GB limit are not supported yet"
            )
        _check_output(draft, model.path)
        if not precision.has_qdq(_read(draft)):
            raise PrecisionError(
                f"{model.path}: the quantizer left no Q/DQ nodes (no quantizable op, or every one "
                "excluded by keep_fp32_ops/keep_fp32_nodes): nothing would run in INT8"
            )
        os.replace(draft, target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the folder is our own, made just above
    return target


def calibration_feeds(
    calibration: Calibration,
    model_path: str | os.PathLike[str],
    *,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    seed: int = 0,
    input_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> list[dict[str, np.ndarray]]:
    """The calibration batches, checked against the model (what ``quantize_model`` feeds)."""
    return _calibration_feeds(calibration, _load(model_path), shapes, seed, input_ranges)


# CalibrationMethod -> onnxruntime.quantization.CalibrationMethod member names.
_ORT_METHODS = {
    CalibrationMethod.MINMAX: "MinMax",
    CalibrationMethod.ENTROPY: "Entropy",
    CalibrationMethod.PERCENTILE: "Percentile",
}


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self._next: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._next, None)

    def rewind(self) -> None:
        self._next = iter(self._feeds)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)


def _settings(
    method: str | CalibrationMethod,
    per_channel: bool,
    keep_fp32_nodes: Sequence[str],
    keep_fp32_ops: Sequence[str],
) -> dict[str, Any]:
    try:
        chosen = CalibrationMethod(method)
    except ValueError:
        raise PrecisionError(
            f"calibration method must be one of {', '.join(m.value for m in CalibrationMethod)}, got {method!r}"
        ) from None
    if not isinstance(per_channel, bool):
        raise PrecisionError(f"per_channel must be True or False, got {per_channel!r}")
    lists = {}
    for name, value in (("keep_fp32_nodes", keep_fp32_nodes), ("keep_fp32_ops", keep_fp32_ops)):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise PrecisionError(f"{name} must be a list of names, got {value!r}")
        lists[name] = sorted(set(value))
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "method": chosen.value,
        "per_channel": per_channel,
        "format": "QDQ",
        "activations": "int8 symmetric",
        "weights": "int8 symmetric",
        "bias": "float",
        **lists,
    }


def _calibration_key(
    calibration: Calibration,
    model: LoadedModel,
    shapes: Mapping[str, tuple[int, ...]] | None,
    seed: int,
    input_ranges: Mapping[str, tuple[float, float]] | None,
) -> dict[str, Any]:
    if _is_count(calibration):
        resolved = _shapes(model, shapes)
        return {
            "kind": "seeded",
            "batches": _count(calibration),
            "seed": seed,
            "shapes": {name: list(shape) for name, shape in sorted(resolved.items())},
            "ranges": {name: list(r) for name, r in sorted((input_ranges or {}).items())},
        }
    if isinstance(calibration, str | os.PathLike):
        path = Path(calibration)
        digest = hashlib.sha256()
        try:
            with path.open("rb") as stream:
                while chunk := stream.read(_HASH_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise CalibrationError(f"calibration file {str(path)!r} cannot be read ({exc.strerror or exc})") from None
        return {"kind": "npz", "sha256": digest.hexdigest()}
    digest = hashlib.sha256()
    for feed in _feeds_from_list(calibration, model):
        for name in sorted(feed):
            digest.update(f"{name}:{feed[name].dtype}:{feed[name].shape}".encode())
            digest.update(np.ascontiguousarray(feed[name]).tobytes())
    return {"kind": "feeds", "sha256": digest.hexdigest()}


def _calibration_feeds(
    calibration: Calibration,
    model: LoadedModel,
    shapes: Mapping[str, tuple[int, ...]] | None,
    seed: int,
    input_ranges: Mapping[str, tuple[float, float]] | None,
) -> list[dict[str, np.ndarray]]:
    if _is_count(calibration):
        resolved = _shapes(model, shapes)
        _check_batches_fit(model, resolved, _count(calibration))
        try:
            return [
                make_inputs(model, resolved, _batch_seed(seed, i), input_ranges)
                for i in range(_count(calibration))
            ]
        except ModelError as exc:
            raise CalibrationError(str(exc)) from None
    if isinstance(calibration, str | os.PathLike):
        return _feeds_from_npz(Path(calibration), model)
    return _feeds_from_list(calibration, model)


def _is_count(calibration: Any) -> TypeGuard[int]:
    return isinstance(calibration, int) and not isinstance(calibration, bool)


def _count(calibration: int) -> int:
    if calibration < 1:
        raise CalibrationError(f"calibration={calibration}: give 1 or more batches (32 to 512 is usual)")
    return calibration


# What one feed costs beyond its arrays' bytes (the dict, the array objects), so that many tiny
# batches are bounded too.
_FEED_OVERHEAD_BYTES = 1024


def _check_batches_fit(model: LoadedModel, shapes: Mapping[str, tuple[int, ...]], count: int) -> None:
    """``count`` seeded batches are all held at once (the quantizer reads them in turn): refuse a
    count whose batches take more than memory allows, before drawing any."""
    room = memory.limit_bytes()
    batch = sum(math.prod(shapes[spec.name]) * spec.dtype.itemsize for spec in model.inputs) + _FEED_OVERHEAD_BYTES
    if room is None or count * batch <= room:
        return
    fits = max(room // batch, 0)
    raise CalibrationError(
        f"calibration={count}: {count} seeded batches of {format_bytes(batch)} each take "
        f"{format_bytes(count * batch)}, over {memory.describe_limit(room)}; give at most {fits} "
        "batches (32 to 512 is usual)"
    )


def _check_npz_fits(path: Path) -> None:
    """Refuse an .npz whose arrays (their sizes read from the members' headers) take more than
    memory allows, before reading any."""
    room = memory.limit_bytes()
    total = sum(npz_array_bytes(path).values())
    if room is not None and total > room:
        raise CalibrationError(
            f"calibration file {str(path)!r}: its arrays take {format_bytes(total)} ({total} bytes) once "
            f"read (their headers say so), over {memory.describe_limit(room)}; give fewer calibration "
            "batches (32 to 512 is usual)"
        )


def _batch_seed(seed: int, index: int) -> int:
    """A seed per calibration batch, of a stream apart from the test's own ``seed``."""
    text = f"pytest-trt calibration:{seed}:{index}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def _shapes(model: LoadedModel, shapes: Mapping[str, tuple[int, ...]] | None) -> dict[str, tuple[int, ...]]:
    try:
        return resolve_shapes(model, shapes)
    except ModelError as exc:
        raise CalibrationError(f"seeded calibration batches: {exc}") from None


def _feeds_from_npz(path: Path, model: LoadedModel) -> list[dict[str, np.ndarray]]:
    if not path.is_file():
        raise CalibrationError(f"calibration file {str(path)!r} not found")
    _check_npz_fits(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not arrays keyed by input name")
        with data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # numpy raises zipfile, pickle and value errors for damaged files
        raise CalibrationError(f"{path}: not a readable .npz of calibration arrays ({exc})") from None
    expected = [spec.name for spec in model.inputs]
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise CalibrationError(
            f"{path}: array {extra[0]!r} is not an input of {model.path.name} (inputs: {', '.join(expected)})"
        )
    missing = [name for name in expected if name not in arrays]
    if missing:
        raise CalibrationError(f"{path}: no array for input {missing[0]!r} of {model.path.name}")
    counts = {}
    for spec in model.inputs:
        array = arrays[spec.name]
        if array.ndim != len(spec.shape) + 1:
            raise CalibrationError(
                f"{path}: array {spec.name!r} has shape {list(array.shape)}; calibration arrays have a "
                f"leading batch-count axis before the input's shape {show_shape(spec.shape)}, e.g. "
                f"{[32, *[d or 1 for d in spec.shape]]}"
            )
        counts[spec.name] = array.shape[0]
    if len(set(counts.values())) != 1:
        raise CalibrationError(
            f"{path}: the arrays disagree on the number of calibration batches (leading axis): "
            + ", ".join(f"{name!r} {count}" for name, count in counts.items())
        )
    if not next(iter(counts.values()), 1):
        raise CalibrationError(f"{path}: the arrays hold no calibration batch (leading axis of size 0)")
    checked = {spec.name: _check_array(path, spec, arrays[spec.name], batched=True) for spec in model.inputs}
    return [{name: np.ascontiguousarray(checked[name][i]) for name in expected} for i in range(counts[expected[0]])]


def _feeds_from_list(calibration: Any, model: LoadedModel) -> list[dict[str, np.ndarray]]:
    if isinstance(calibration, Mapping) or not isinstance(calibration, Sequence) or not calibration:
        raise CalibrationError(
            "calibration must be an .npz path, a number of seeded batches, or a non-empty list of feeds "
            f"(dicts of input name -> array); got {type(calibration).__name__}"
        )
    expected = [spec.name for spec in model.inputs]
    feeds = []
    for index, feed in enumerate(calibration):
        where = f"calibration feed {index}"
        if not isinstance(feed, Mapping):
            raise CalibrationError(f"{where} is a {type(feed).__name__}, not a dict of input name -> array")
        extra = sorted(set(feed) - set(expected))
        if extra:
            raise CalibrationError(f"{where}: {extra[0]!r} is not an input of {model.path.name}")
        missing = [name for name in expected if name not in feed]
        if missing:
            raise CalibrationError(f"{where}: no array for input {missing[0]!r} of {model.path.name}")
        feeds.append({
            spec.name: np.ascontiguousarray(_check_array(where, spec, np.asarray(feed[spec.name]), batched=False))
            for spec in model.inputs
        })
    return feeds


def _check_array(where: Path | str, spec: Any, array: np.ndarray, *, batched: bool) -> np.ndarray:
    """The array in the input's dtype (float64 -> float32, int64 -> int32); data of another kind
    (integers for a float input: unscaled pixels, say) or a shape that contradicts the input's
    fixed dims is an error, since it would calibrate ranges the test never feeds."""
    if array.dtype != spec.dtype:
        same_kind = _kind(array.dtype) == _kind(spec.dtype)
        if not same_kind or not np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
            raise CalibrationError(f"{where}: array {spec.name!r} has dtype {array.dtype}, the model wants {spec.dtype}")
        array = array.astype(spec.dtype)
    shape = array.shape[1:] if batched else array.shape
    if not fits_fixed_dims(spec.shape, shape):
        what = "each batch of array" if batched else "array"
        raise CalibrationError(
            f"{where}: {what} {spec.name!r} has shape {list(shape)}, the model wants {show_shape(spec.shape)}"
        )
    return array


def _kind(dtype: np.dtype) -> str:
    return {"f": "float", "i": "integer", "u": "integer", "b": "bool"}.get(dtype.kind, dtype.kind)


def _default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _raised_opset(proto: onnx.ModelProto, path: Path, needed: int) -> onnx.ModelProto:
    """``proto`` at opset ``needed`` of the default domain where it is below it, converted by
    onnx's version converter (which rewrites the ops whose form changed, e.g. Squeeze's axes
    as an input); as it is otherwise."""
    opset = _default_opset(proto)
    if opset >= needed:
        return proto
    from onnx import version_converter

    try:
        raised = version_converter.convert_version(proto, needed)
        onnx.checker.check_model(raised)
    except Exception as exc:  # the converter raises RuntimeError, ValueError and its own types
        raise PrecisionError(
            f"{path}: INT8 calibration: raising the model from opset {opset} to {needed} (the Q/DQ "
            f"nodes need it) failed: {type(exc).__name__}: {exc}; export the model at opset "
            f"{needed} or later"
        ) from exc
    return raised


def _check_output(path: Path, source: Path) -> None:
    """The quantizer's output is valid ONNX, so that a bad one fails the calibration step
    instead of every backend's build."""
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # onnx raises ValidationError and protobuf errors
        raise PrecisionError(
            f"{source}: INT8 calibration: onnxruntime's quantizer wrote an invalid model "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _name_nodes(proto: onnx.ModelProto) -> None:
    """Give unnamed nodes unique names: the quantizer excludes nodes by name."""
    taken = {node.name for node in proto.graph.node if node.name}
    for index, node in enumerate(proto.graph.node):
        if node.name:
            continue
        name, suffix = f"{node.op_type}_{index}", 0
        while name in taken:
            suffix += 1
            name = f"{node.op_type}_{index}_{suffix}"
        node.name = name
        taken.add(name)


def _load(model_path: str | os.PathLike[str]) -> LoadedModel:
    try:
        return load_model(Path(model_path))
    except ModelError as exc:
        raise PrecisionError(str(exc)) from None


def _read(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf and onnx raise several unrelated types
        raise PrecisionError(f"{path}: not a readable ONNX model ({exc})") from exc
