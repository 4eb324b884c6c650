"""An accuracy diagnosis as records keep it: where a reduced-precision build's error starts
(judge/error_origin.py finds it) and the keep_fp32_nodes that fixed it (judge/precision_fix.py).
Plain data, no numpy: the JSON report and xdist messages carry it inside ``AccuracyResult``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class TensorError:
    """One tensor of the converted graph against the reference's."""

    max_abs: float  # largest |converted - reference| over finite pairs
    ref_max: float  # largest |reference|
    rel: float  # max_abs / ref_max; inf where the converted tensor is non-finite and the reference is not
    overflow: bool  # non-finite where the reference is finite


@dataclass(frozen=True)
class ErrorOrigin:
    """The first node whose output error is its own."""

    node: str
    op: str
    output: str
    error: TensorError
    inherited: float  # largest relative error among its inputs (0: inputs exact)

    def words(self, precision: str) -> str:
        where = f"{self.node!r} ({self.op}), output {self.output!r}"
        inputs = f"its inputs' relative error {self.inherited:.1e}"
        if self.error.overflow:
            return (f"{where}: inf/nan where the reference is finite (max |reference| {self.error.ref_max:.3g}, "
                    f"{precision} holds up to {_LIMITS.get(precision, 'less')}); {inputs}")
        return (f"{where}: relative error {self.error.rel:.1e} (max |d| {self.error.max_abs:.3g} of max |reference| "
                f"{self.error.ref_max:.3g}); {inputs}")


_LIMITS = {"fp16": "65504", "bf16": "3.4e38"}


class DiagnosisState(str, Enum):
    """How an accuracy diagnosis ended."""

    FIXED = "fixed"  # a set of nodes kept in fp32 made the test's accuracy gate pass
    NO_FIX = "no-fix"  # the error's origin was found; no set tried under the cap passed
    NOT_LOCATED = "not-located"  # no node introduces error beyond the precision's rounding
    FAILED = "failed"  # the diagnosis itself could not run (``reason`` says why)


@dataclass(frozen=True)
class Diagnosis:
    """Where a reduced-precision build's error starts, and the keep_fp32_nodes that fixed it."""

    state: DiagnosisState
    precision: str
    origin: ErrorOrigin | None = None
    keep_fp32_nodes: tuple[str, ...] = ()  # the argument that passed (the mark's own names first)
    tried: tuple[tuple[str, ...], ...] = ()  # the nodes added at each rebuild
    seconds: float = 0.0
    reason: str = ""  # why the search stopped without a fix
    read_on: str = ""  # the backend whose engine computed the converted graph's tensors ("": onnxruntime's CPU)

    def lines(self) -> list[str]:
        if self.read_on:
            graph = f"graph on {self.read_on}, its tensors marked as outputs,"
        else:
            graph = "Q/DQ graph" if self.precision in ("int8", "fp8") else "graph emulated"
            graph += " on onnxruntime's CPU provider"
        head = f"diagnosis ({self.precision} {graph} against the fp32 model, {self.seconds:.1f} s):"
        if self.state is DiagnosisState.FAILED:
            return [head, f"  the diagnosis failed: {self.reason}"]
        if self.origin is None:
            return [head, f"  no node introduces error beyond {self.precision} rounding: {self.reason}"]
        lines = [head, f"  error starts at {self.origin.words(self.precision)}"]
        if self.state is DiagnosisState.FIXED:
            lines.append(f"  fix that passed: trt_model(..., keep_fp32_nodes={json.dumps(list(self.keep_fp32_nodes))})")
        else:
            tried = "; ".join(json.dumps(list(t)) for t in self.tried) or "none"
            lines.append(f"  no set of nodes kept in fp32 made it pass ({self.reason}; tried {tried})")
        return lines
