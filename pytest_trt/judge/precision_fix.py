"""An fp16/bf16 accuracy failure diagnosed: where the error starts, and a keep_fp32_nodes that fixes it.

The search is greedy and bounded by a time cap per test: find the node that introduces the
error (judge/error_origin.py) in the graph as built, keep it in fp32 (or, where it is kept
already, the nodes that read its output, which fp16 still stores in reduced precision, or for
INT8 the nodes that feed it, whose outputs the quantizer still quantizes), rebuild the engine on the test's own backend, and re-run the test's own
accuracy gate; repeat on the new graph until the gate passes, the cap is spent or ``MAX_KEPT``
nodes were added. The cap is checked between steps: a build that has started finishes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_trt.arguments import CONVERTED_PRECISIONS, Precision
from pytest_trt.errors import PytestTrtError
from pytest_trt.judge import accuracy, error_origin
from pytest_trt.judge.diagnosis import Diagnosis, DiagnosisState, ErrorOrigin
from pytest_trt.specs import AccuracySpec, ModelSpec

if TYPE_CHECKING:
    from pytest_trt.backends.base import TensorReader
    from pytest_trt.prepare.engines import Engine

DIAGNOSED_PRECISIONS = (Precision.FP16, Precision.BF16, Precision.INT8)
# Nodes the search adds to keep_fp32_nodes at most: a longer list is no longer a pointed fix.
MAX_KEPT = 12
# Relative error a node's output must carry to count as introduced: a few units of the
# precision's rounding (fp16 keeps 11 significant bits, bf16 8; INT8 steps are 1/127 of a
# tensor's range, at most half a step off).
FLOORS = {Precision.FP16: 8 * 2.0**-11, Precision.BF16: 8 * 2.0**-8, Precision.INT8: 8 / 254}


@dataclass(frozen=True)
class Diagnoser:
    """What the session lends a diagnosis: a rebuild of the test's engine with other nodes kept
    in fp32 (and its discard), a folder for converted models, and the time cap
    (--trt-diagnose-time)."""

    rebuild: Callable[[Engine, tuple[str, ...]], Engine]
    workdir: Callable[[], Path]
    cap_s: float
    discard: Callable[[Engine], None] = lambda engine: None  # closes a rebuilt engine once judged
    # How an engine's own backend reads its converted graph's tensors (None: it cannot).
    reader: Callable[[Engine], TensorReader | None] = lambda engine: None


def with_kept_nodes(spec: ModelSpec, nodes: tuple[str, ...]) -> ModelSpec:
    """The test's ``trt_model`` spec with ``keep_fp32_nodes`` set to ``nodes``."""
    options = dict(spec.build.options)
    options["keep_fp32_nodes"] = nodes
    build = dataclasses.replace(spec.build, options=tuple(sorted(options.items())))
    return dataclasses.replace(spec, build=build)


def diagnosable(engine: Engine) -> bool:
    """fp16 and bf16 builds, and INT8 by calibration (which nodes to leave unquantized is the
    quantizer's keep_fp32_nodes); a model that came with Q/DQ nodes is run as it is."""
    if engine.precision is Precision.INT8:
        return engine.spec.calibration is not None
    return engine.precision in DIAGNOSED_PRECISIONS


@dataclass
class _Search:
    engine: Engine
    feed: Mapping[str, np.ndarray]
    diagnoser: Diagnoser
    deadline: float
    user_nodes: tuple[str, ...]
    added: list[str] = dataclasses.field(default_factory=list)
    tried: list[tuple[str, ...]] = dataclasses.field(default_factory=list)
    read_on: str = ""  # the backend that computed the converted tensors, where it could

    @property
    def kept(self) -> tuple[str, ...]:
        return self.user_nodes + tuple(self.added)

    def origin(self, current: Engine) -> ErrorOrigin | None:
        """The first node that introduces error in ``current`` (the engine as last built)."""
        engine = self.engine
        floor = FLOORS[engine.precision]
        if engine.precision not in CONVERTED_PRECISIONS:  # INT8: the calibrated Q/DQ model itself
            return error_origin.locate(engine.model.path, current.converted.path, self.feed, floor, self.deadline)
        reader = self.diagnoser.reader(current)
        if reader is not None:  # the graph as built, its tensors as the test's backend computes them
            feed = self.feed
            self.read_on = current.backend
            return error_origin.locate(engine.model.path, current.converted.path, feed, floor, self.deadline,
                                       read=lambda names: reader(names, feed))
        from pytest_trt.prepare.precision import apply_precision

        emulated = apply_precision(
            engine.model.path,
            engine.precision,
            self.diagnoser.workdir(),
            keep_fp32_ops=tuple(engine.build.option_map.get("keep_fp32_ops", ())),
            keep_fp32_nodes=self.kept,
            emulate=True,
        )
        return error_origin.locate(engine.model.path, emulated, self.feed, floor, self.deadline)

    def next_nodes(self, origin: ErrorOrigin) -> list[str]:
        """What to keep next: the origin; where it is kept already, the nodes reading its output
        (fp16/bf16: the output is still stored in reduced precision for them) or, for INT8,
        the nodes feeding it (their outputs are still quantized)."""
        path = self.engine.model.path
        if origin.node not in self.kept:
            return [origin.node] if origin.node in _named_nodes(path) else []
        if self.engine.precision in CONVERTED_PRECISIONS:
            nearby = error_origin.consumers(path, origin.output)
        else:
            nearby = error_origin.producers(path, origin.node)
        return [n for n in nearby if n not in self.kept]


def _named_nodes(path: Path) -> set[str]:
    import onnx

    return {n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.name}


def _passes(engine: Engine, spec: AccuracySpec, feed: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> bool:
    """The test's own accuracy gate on ``engine``."""
    result = accuracy.compare_outputs(engine.infer(feed), reference, spec, quantized=engine.quantized)
    if result.passed and spec.batch_consistency:
        result = result.with_problems(accuracy.check_batch_consistency(engine.infer, dict(feed), tolerance=spec.default))
    return result.passed


def diagnose(
    engine: Engine,
    spec: AccuracySpec,
    feed: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    diagnoser: Diagnoser,
) -> Diagnosis:
    """Locate the error's origin and search a keep_fp32_nodes under the cap (see the module)."""
    started = time.monotonic()
    search = _Search(engine, feed, diagnoser, started + diagnoser.cap_s,
                     tuple(engine.build.option_map.get("keep_fp32_nodes", ())))
    first = search.origin(engine)

    def ended(state: DiagnosisState, reason: str = "", origin: ErrorOrigin | None = first) -> Diagnosis:
        kept = search.kept if state is DiagnosisState.FIXED else ()
        return Diagnosis(state, engine.precision.value, origin, kept, tuple(search.tried),
                         time.monotonic() - started, reason, search.read_on)

    if first is None:
        spent = time.monotonic() > search.deadline
        return ended(DiagnosisState.NOT_LOCATED, f"the {diagnoser.cap_s:g} s cap ran out" if spent
                     else "the tolerance is tighter than the precision, or the error comes from elsewhere")
    origin: ErrorOrigin | None = first
    while origin is not None:
        step = search.next_nodes(origin)
        if not step:
            return ended(DiagnosisState.NO_FIX, f"nothing more to keep in fp32 at {origin.node!r}")
        if len(search.added) + len(step) > MAX_KEPT:
            return ended(DiagnosisState.NO_FIX, f"more than {MAX_KEPT} nodes would be kept")
        if time.monotonic() > search.deadline:
            return ended(DiagnosisState.NO_FIX, f"the {diagnoser.cap_s:g} s cap ran out")
        search.added += step
        search.tried.append(tuple(step))
        try:
            current = diagnoser.rebuild(engine, search.kept)
        except PytestTrtError as exc:  # e.g. nothing left to quantize: that set is no fix
            return ended(DiagnosisState.NO_FIX, f"keeping {json.dumps(list(search.kept))} does not build: {exc}")
        try:
            if _passes(current, spec, feed, reference):
                return ended(DiagnosisState.FIXED)
            origin = search.origin(current)
        finally:
            diagnoser.discard(current)  # a candidate's runner (GPU memory) is not kept for the session
    spent = time.monotonic() > search.deadline
    return ended(DiagnosisState.NO_FIX, f"the {diagnoser.cap_s:g} s cap ran out" if spent
                 else "no node kept in reduced precision introduces error any more")
