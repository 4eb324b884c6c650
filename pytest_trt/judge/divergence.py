"""Which step diverged when an engine misses its torch module: the export or the engine.

Three outputs of one feed: the engine's, the export's on onnxruntime (fp32, CPU) and the torch
module's own. Comparing the two neighbouring pairs with the test's tolerance tells whether the
export already differs from the module (a Python branch the export froze, an op exported as
something else) or whether the engine differs from a faithful export.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import numpy as np

from pytest_trt.judge import accuracy
from pytest_trt.specs import AccuracySpec


class Diverged(Enum):
    """Which neighbouring pair misses the test's tolerance."""

    EXPORT = "export"  # export vs module fails; engine vs export passes
    ENGINE = "engine"  # engine vs export fails; export vs module passes
    BOTH = "both"
    NEITHER = "neither"  # each pair passes, their differences add up past the tolerance


@dataclass(frozen=True)
class Divergence:
    diverged: Diverged
    export_vs_module: float  # max |export - module| over the float outputs (inf: shapes differ)
    engine_vs_export: float  # max |engine - export|

    def message(self, *, export_cached: bool = False) -> str:
        """Which pair missed; where the export came from the engine cache, that it may be stale,
        since the module's export key cannot see everything forward reads."""
        said = self._pair_message()
        if export_cached and self.diverged in (Diverged.EXPORT, Diverged.BOTH):
            said += (
                "; the export was loaded from the engine cache: if the module changed in a way its "
                "cache key does not see (code in another file that forward calls, state read from "
                "elsewhere), the export is stale: rerun with --trt-rebuild to tell a stale export "
                "from a wrong one"
            )
        return said

    def _pair_message(self) -> str:
        em = f"max |export - module| = {_num(self.export_vs_module)}"
        ee = f"max |engine - export| = {_num(self.engine_vs_export)}"
        if self.diverged is Diverged.EXPORT:
            return f"the export diverged from the torch module: {em}; the engine matches the export ({ee})"
        if self.diverged is Diverged.ENGINE:
            return f"the engine diverged from the export, which matches the module: {ee} ({em})"
        if self.diverged is Diverged.BOTH:
            return f"the export diverged from the torch module ({em}) and the engine from the export ({ee})"
        return (
            f"the export matches the module ({em}) and the engine matches the export ({ee}), each within "
            "the tolerance, but together they miss it"
        )


def locate(
    engine: Mapping[str, np.ndarray],
    export: Mapping[str, np.ndarray],
    module: Mapping[str, np.ndarray],
    spec: AccuracySpec,
    *,
    quantized: bool = False,
) -> Divergence:
    """Compare engine vs export and export vs module with ``spec`` and say which pair fails."""
    export_ok = accuracy.compare_outputs(export, module, spec).passed
    engine_ok = accuracy.compare_outputs(engine, export, spec, quantized=quantized).passed
    if export_ok and engine_ok:
        diverged = Diverged.NEITHER
    elif engine_ok:
        diverged = Diverged.EXPORT
    elif export_ok:
        diverged = Diverged.ENGINE
    else:
        diverged = Diverged.BOTH
    return Divergence(diverged, max_abs_difference(export, module), max_abs_difference(engine, export))


def max_abs_difference(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> float:
    """The largest |a - b| over the outputs both have; inf where shapes differ, nan where a
    value is nan on one side only."""
    worst = 0.0
    for name in a.keys() & b.keys():
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if x.shape != y.shape:
            return math.inf
        if x.size == 0 or x.dtype.kind not in "fiub" or y.dtype.kind not in "fiub":
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
        same = (x == y) | (np.isnan(x.astype(np.float64)) & np.isnan(y.astype(np.float64)))
        diff = np.where(same, 0.0, diff)
        if np.isnan(diff).any():
            return math.nan
        worst = max(worst, float(diff.max()))
    return worst


def _num(value: float) -> str:
    return f"{value:.4g}"
