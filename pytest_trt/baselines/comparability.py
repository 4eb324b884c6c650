"""Is a stored entry comparable with this run, and what moved since it was recorded?

A different workload (shapes, batch, precision, IO signature, backend, timing mode) or another
host probe makes an entry stale: it is not compared. A changed model, runtime, driver or build
options are what the comparison exists to judge: they are reported beside its verdict. Accuracy
error statistics well above the entry's are a warning, never a failure.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from pytest_trt.baselines.entry import DRIFT_STATS, AccuracyStats, BaselineEntry, BaselineInput, timed_workload
from pytest_trt.baselines.regression import MIN_PROBES
from pytest_trt.serde import to_data
from pytest_trt.timing import host_probe

# Accuracy drift: an error statistic "well above" its baseline is more than DRIFT_FACTOR times it
# and more than DRIFT_FLOOR above it in absolute terms (so 0 -> 1e-9 is not a drift).
DRIFT_FACTOR = 2.0
DRIFT_FLOOR = 1e-6


def staleness(entry: BaselineEntry, measured: BaselineInput) -> str | None:
    """Why the baseline measured a different workload (shapes, batch, precision, IO signature,
    backend or timing mode) or was divided by another probe, or None when it is comparable."""
    if entry.workload is None:
        return "baseline entry has no workload"
    old, new = entry.workload, timed_workload(measured)
    if measured.perf is None:  # nothing was timed this run: only the workload itself can differ
        old = dataclasses.replace(old, clock=None, mode=None)
    if old != new:
        before, after = _flatten(to_data(old)), _flatten(to_data(new))
        diffs = [f"{key} {_show(before.get(key))} -> {_show(after.get(key))}"
                 for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
        if diffs:
            return "workload changed: " + "; ".join(diffs)
    return _probe_change(entry, measured)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """JSON data as ``{"inputs.x.shape": [1, 256], ...}``: the keys a change is named by."""
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key in sorted(value):
            flat.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, separators=(", ", ": "), sort_keys=True).strip('"')


def _probe_change(entry: BaselineEntry, measured: BaselineInput) -> str | None:
    """Why the entry's probe times cannot be divided by this run's: another probe timed them
    (its speed is another number), or None."""
    stored, perf = entry.host_probe_ms, measured.perf
    if stored is None or perf is None or len(perf.probe_ms or ()) < MIN_PROBES:
        return None
    if stored.probe == host_probe.KIND:
        return None
    return (
        f"host probe changed: {_show(stored.probe) if stored.probe is not None else 'an earlier probe'} -> "
        f"{host_probe.KIND} (its times are not comparable; record the baseline again with --trt-update-baselines)"
    )


def _short(digest: str | None) -> str:
    return f"{digest[:8]}.." if digest else "(none)"


def _version_change(old: str, new: str) -> str:
    """``onnxruntime 1.31.0 -> 1.32.0`` when only the version moved."""
    old_name, _, old_version = old.partition(" ")
    new_name, _, new_version = new.partition(" ")
    if old_name == new_name and old_version and new_version:
        return f"{old_name} {old_version} -> {new_version}"
    return f"{old} -> {new}"


def changes(entry: BaselineEntry, measured: BaselineInput, software: Mapping[str, str] | None = None) -> list[str]:
    """What changed since the baseline without making it stale: the model, the runtime and other
    software, build options. These are what the comparison exists to judge."""
    subject = measured.subject
    found = []
    old_hash = entry.model.content_hash if entry.model is not None else None
    if old_hash != subject.model.content_hash:
        found.append(f"model {_short(old_hash)} -> {_short(subject.model.content_hash)}")
    old_sw = entry.software
    new_sw = {"runtime": subject.runtime_version, **(software or {})}
    if old_sw.get("runtime") != new_sw["runtime"]:
        found.append(_version_change(str(old_sw.get("runtime")), new_sw["runtime"]))
    for key in sorted(set(new_sw) - {"runtime", "backend"}):
        if key in old_sw and old_sw[key] != new_sw[key]:
            found.append(f"{key} {old_sw[key]} -> {new_sw[key]}")
    old_options = to_data(entry.build.options) if entry.build is not None else None
    new_options = to_data(subject.build.options)
    if old_options != new_options:
        found.append(f"build options {_show(old_options)} -> {_show(new_options)}")
    return found


def accuracy_drift(entry: BaselineEntry, accuracy: AccuracyStats) -> list[str]:
    """One warning line per output error statistic well above the baseline's (see DRIFT_*);
    ``accuracy``: this run's statistics per output."""
    lines = []
    for output, stats in accuracy.items():
        before = entry.accuracy.get(output, {})
        for key in DRIFT_STATS:
            old, new = before.get(key), stats.get(key)
            if old is None or new is None:
                continue
            if new > DRIFT_FACTOR * old and new - old > DRIFT_FLOOR:
                times = f"{new / old:.1f}x" if old > 0 else "from 0"
                lines.append(
                    f"accuracy drift: output {output!r} {key} {new:.3g} vs baseline {old:.3g} ({times}), "
                    "still within tolerance"
                )
    return lines
