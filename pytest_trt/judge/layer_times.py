"""Per-layer time: the profiling pass after the timed loop, and where a regression's time went.

The pass runs on the test's runner after every timed measurement of the test, under the
device's measurement lock (a profiling session must not slow another worker's timed window).
A regression is explained by aligning the baseline's profile with this run's: by layer name,
else, for layers renamed between builds (TensorRT fuses differently), by op type and IO shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_trt.backends.layer_profile import PROFILE_RUNS, LayerProfile, LayerTime
from pytest_trt.timing import lock

if TYPE_CHECKING:
    import numpy as np

# Layers a regression's explanation names at most.
SHOWN_CHANGES = 5


def profile(runner: Any, feed: Mapping[str, np.ndarray], wait: lock.LockWait, runs: int = PROFILE_RUNS) -> LayerProfile | None:
    """The runner's per-layer times, or None where its backend has no profiler."""
    method = getattr(runner, "profile_layers", None)
    if method is None:
        return None
    with lock.measuring(lock.device_of(runner), wait=wait):
        result = method(feed, runs)
    return result if isinstance(result, LayerProfile) else None


@dataclass(frozen=True)
class LayerChange:
    """One layer's time in the baseline and now (None: absent there)."""

    name: str
    op: str
    before_ms: float | None
    after_ms: float | None
    renamed_from: str = ""

    @property
    def delta_ms(self) -> float:
        return (self.after_ms or 0.0) - (self.before_ms or 0.0)

    def words(self, total_delta_ms: float) -> str:
        share = f"{self.delta_ms:+.2f} ms of {total_delta_ms:+.2f} ms in {self.name!r}"
        if self.before_ms is None:
            return f"{share} ({self.op}, appeared: {self.after_ms:.2f} ms)"
        if self.after_ms is None:
            return f"{share} ({self.op}, vanished: was {self.before_ms:.2f} ms)"
        relative = f", {self.after_ms / self.before_ms - 1:+.0%}" if self.before_ms > 0 else ""
        was = f", was {self.renamed_from!r}" if self.renamed_from else ""
        return f"{share} ({self.op}, {self.before_ms:.2f} -> {self.after_ms:.2f} ms{relative}{was})"


def _signature(layer: LayerTime) -> tuple[str, str]:
    return (layer.op, layer.shapes)


def align(before: LayerProfile, after: LayerProfile) -> list[LayerChange]:
    """Every layer of either profile, paired by name, then by op and IO shapes (in time order)."""
    old, new = before.by_name(), after.by_name()
    changes = [LayerChange(n, layer.op, old[n].ms, layer.ms) for n, layer in new.items() if n in old]
    unmatched_old = [layer for n, layer in old.items() if n not in new]
    for name, layer in new.items():
        if name in old:
            continue
        twin = next((o for o in unmatched_old if o.shapes and _signature(o) == _signature(layer)), None)
        if twin is not None:
            unmatched_old.remove(twin)
            changes.append(LayerChange(name, layer.op, twin.ms, layer.ms, renamed_from=twin.name))
        elif before.complete:
            changes.append(LayerChange(name, layer.op, None, layer.ms))
    if after.complete:
        changes += [LayerChange(o.name, o.op, o.ms, None) for o in unmatched_old]
    return changes


def where_time_went(before: LayerProfile, after: LayerProfile, shown: int = SHOWN_CHANGES) -> list[str]:
    """The layers whose time grew most, as a regression's failure names them."""
    total = after.total_ms - before.total_ms
    grown = sorted((c for c in align(before, after) if c.delta_ms > 0), key=lambda c: -c.delta_ms)
    lines = [change.words(total) for change in grown[:shown]]
    if not lines:
        return [f"no layer grew between the baseline's profile and this run's ({total:+.2f} ms in all)"]
    return lines
