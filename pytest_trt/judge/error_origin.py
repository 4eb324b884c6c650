"""Where a reduced-precision model's error starts: its intermediate tensors against the fp32
model's, on the same feed, in topological order.

The fp32 model runs on onnxruntime's CPU provider with graph optimizations off (every node keeps
its output). The converted graph's tensors come from the test's own backend where it can read
them (``read``: TensorRT, with them marked as network outputs); else the converted graph runs
there too, as its emulation (prepare/precision.py, ``emulate=True``): fp32 kernels with every
fp16/bf16-stored tensor rounded, under the original tensor names, so the two graphs share names
and onnxruntime's CPU kernels stand for what the backend computes in reduced precision.
Intermediate tensors are read in chunks of ``CHUNK`` per run and reduced to a few numbers at
once, so a big model's activations are never all held.

A node introduces error where its output's relative error exceeds ``floor`` and ``FACTOR``
times the largest relative error of its inputs, or where its output is non-finite while the
reference's is finite and its inputs' are not: that error is its own, not inherited.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from pytest_trt.judge.diagnosis import ErrorOrigin, TensorError

# Tensors read back per session run: bounds the memory the comparison holds.
CHUNK = 16
# How much more error than its inputs a node's output must carry to have introduced it.
FACTOR = 4.0
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)


def tensor_error(converted: np.ndarray, reference: np.ndarray) -> TensorError:
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(converted, dtype=np.float64)
    if got.shape != ref.shape:
        return TensorError(float("inf"), float(np.nanmax(np.abs(ref))) if ref.size else 0.0, float("inf"), False)
    ref_finite, got_finite = np.isfinite(ref), np.isfinite(got)
    overflow = bool(np.any(ref_finite & ~got_finite))
    both = ref_finite & got_finite
    max_abs = float(np.max(np.abs(got[both] - ref[both]))) if both.any() else 0.0
    ref_max = float(np.max(np.abs(ref[ref_finite]))) if ref_finite.any() else 0.0
    rel = float("inf") if overflow else max_abs / max(ref_max, 1e-30)
    return TensorError(max_abs, ref_max, rel, overflow)


def _float_tensors(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.value_info, *inferred.graph.output]
    return {
        info.name: info.type.tensor_type.elem_type
        for info in infos
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type in _FLOATS
    }


def _with_outputs(model: onnx.ModelProto, names: Sequence[str], types: Mapping[str, int]) -> bytes:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.output[:]
    copy.graph.output.extend(helper.make_tensor_value_info(n, types.get(n, TensorProto.FLOAT), None) for n in names)
    return bytes(copy.SerializeToString())


def _session(ort: Any, data: bytes) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class _Candidate:
    node: onnx.NodeProto
    output: str


def _candidates(reference: onnx.ModelProto, converted: onnx.ModelProto) -> tuple[list[_Candidate], dict[str, int]]:
    produced = {out for node in converted.graph.node for out in node.output}
    types = _float_tensors(reference)
    found = [
        _Candidate(node, out)
        for node in reference.graph.node
        if node.op_type != "Constant"
        for out in node.output
        if out in produced and out in types
    ]
    return found, types


def locate(
    reference_path: Path,
    converted_path: Path,
    feed: Mapping[str, np.ndarray],
    floor: float,
    deadline: float = float("inf"),
    read: Callable[[list[str]], Mapping[str, np.ndarray]] | None = None,
) -> ErrorOrigin | None:
    """The first node (topological order) that introduces error, or None: none does, or the
    ``deadline`` (``time.monotonic()``) passed first. ``read``: the converted graph's tensors by
    name as the test's backend computes them (a tensor it lacks is not judged); by default the
    converted graph runs on onnxruntime's CPU provider."""
    import onnxruntime as ort

    reference = onnx.load(str(reference_path))
    converted = onnx.load(str(converted_path))
    candidates, types = _candidates(reference, converted)
    errors: dict[str, TensorError] = {}
    for start in range(0, len(candidates), CHUNK):
        if time.monotonic() > deadline:
            return None
        chunk = candidates[start : start + CHUNK]
        names = list(dict.fromkeys(c.output for c in chunk))
        expected = _session(ort, _with_outputs(reference, names, types)).run(names, dict(feed))
        if read is None:
            actual = dict(zip(names, _session(ort, _with_outputs(converted, names, {})).run(names, dict(feed)), strict=True))
        else:
            actual = dict(read(names))
        for name, want in zip(names, expected, strict=True):
            if name in actual:
                errors[name] = tensor_error(actual[name], want)
        del expected, actual
        for candidate in chunk:
            if candidate.output not in errors:
                continue
            origin = _introduced(candidate, errors, floor)
            if origin is not None:
                return origin
    return None


def _introduced(candidate: _Candidate, errors: Mapping[str, TensorError], floor: float) -> ErrorOrigin | None:
    error = errors[candidate.output]
    upstream = [errors[i] for i in candidate.node.input if i in errors]
    inherited = max((e.rel for e in upstream), default=0.0)
    if error.overflow:
        own = not any(e.overflow for e in upstream)
    else:
        own = error.rel > floor and error.rel > FACTOR * inherited
    if not own:
        return None
    name = candidate.node.name or f"{candidate.node.op_type} producing {candidate.output!r}"
    return ErrorOrigin(name, candidate.node.op_type, candidate.output, error, inherited)


def consumers(model_path: Path, tensor: str) -> list[str]:
    """The named nodes that read ``tensor``: where an output kept in fp32 would otherwise be
    stored in reduced precision again."""
    model = onnx.load(str(model_path), load_external_data=False)
    return [n.name for n in model.graph.node if n.name and tensor in n.input]


def producers(model_path: Path, node: str) -> list[str]:
    """The named nodes whose outputs ``node`` reads: where INT8 quantizes what it is fed (a
    quantized op's output carries a Q/DQ pair whoever reads it)."""
    model = onnx.load(str(model_path), load_external_data=False)
    inputs = {i for n in model.graph.node if n.name == node for i in n.input}
    return [n.name for n in model.graph.node if n.name and inputs & set(n.output)]
