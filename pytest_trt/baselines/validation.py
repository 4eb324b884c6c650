"""Every number of a stored entry is checked before a comparison reads it.

An entry is read from the file's JSON in two steps: ``validate_entry`` names each number a
comparison cannot use by its dotted path, then ``BaselineEntry.from_file`` gives it its type.
``read_entry`` does both and raises ``BaselineEntryError`` naming the file, the test and the fields.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_trt.baselines.entry import DRIFT_STATS, BaselineEntry
from pytest_trt.errors import BaselineFileError
from pytest_trt.serde import SerdeError
from pytest_trt.timing.stats import percentile_label

_SHOWN_PROBLEMS = 3  # of an invalid entry, in its error line


class BaselineEntryError(BaselineFileError):
    """One test's entry in a readable baseline file holds a value a comparison cannot use."""


def read_entry(data: Any, path: Path, nodeid: str) -> BaselineEntry:
    """The entry ``data`` of ``nodeid`` in ``path``, typed; BaselineEntryError where a value
    cannot be compared with (at most three fields named, then how many more)."""
    problems = validate_entry(data)
    if not problems:
        try:
            return BaselineEntry.from_file(data)
        except SerdeError as exc:
            problems = [str(exc).removeprefix("entry.")]
    more = f"; and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    raise BaselineEntryError(f"baseline file {path}: entry {nodeid!r}: {shown}{more}")


def validate_entry(entry: Any) -> list[str]:
    """Why a stored entry's numbers cannot be compared with, one line per bad field named by its
    dotted path (``host_probe_ms.quantiles.p0 is 0, must be > 0``); [] for a sound entry.

    Latency quantiles must be finite, >= 0 and non-decreasing in percentile order, with the floor
    (p0) among them and n a positive int; host-probe quantiles the same and > 0, since every
    comparison divides by the probe floor (a zero floor made any slowdown "host ran inf% slower");
    throughput finite and >= 0; device memory a whole number of bytes >= 0; the error statistics
    that drift warnings read finite and >= 0.
    """
    if not isinstance(entry, Mapping):
        return [f"the entry is {_shown_value(entry)}, must be an object"]
    problems = _summary_problems(entry, "latency_ms", positive=False)
    if "host_probe_ms" in entry:
        problems += _summary_problems(entry, "host_probe_ms", positive=True)
        kind = entry["host_probe_ms"].get("probe") if isinstance(entry["host_probe_ms"], Mapping) else None
        if kind is not None and not isinstance(kind, str):
            problems.append(f"host_probe_ms.probe is {_shown_value(kind)}, must be a string naming the probe")
    if "throughput_qps" in entry:
        problems += _number_problems("throughput_qps", entry["throughput_qps"], positive=False)
    problems += _memory_problems(entry.get("device_memory_bytes"))
    for key in ("model", "software", "build", "accuracy"):
        if entry.get(key) is not None and not isinstance(entry[key], Mapping):
            problems.append(f"{key} is {_shown_value(entry[key])}, must be an object")
    accuracy = entry.get("accuracy")
    if isinstance(accuracy, Mapping):
        problems += _accuracy_problems(accuracy)
    problems += _history_problems(entry.get("history"))
    if not problems:  # each number sound: do they belong together?
        problems += _summary_consistency(entry["latency_ms"], "latency_ms")
        if isinstance(entry.get("host_probe_ms"), Mapping):
            problems += _summary_consistency(entry["host_probe_ms"], "host_probe_ms")
        problems += _throughput_consistency(entry)
    return problems


# Room for the six significant digits numbers are stored with.
_ROUNDING = 1e-5
# How far throughput may stray from batch / latency before the entry is called inconsistent:
# the two are measured together, so only an edit or a mix-up moves them this far apart.
THROUGHPUT_FACTOR = 3.0


def _summary_consistency(summary: Mapping[str, Any], key: str) -> list[str]:
    """A summary's mean lies within its quantiles, and one sample has one value."""
    values = sorted(float(v) for v in summary["quantiles"].values())
    low, high = values[0], values[-1]
    problems = []
    mean = summary.get("mean")
    if mean is not None and not low * (1 - _ROUNDING) <= mean <= high * (1 + _ROUNDING):
        problems.append(
            f"{key}.mean is {mean:g}, outside its quantiles ({low:g} to {high:g}): a mean lies between "
            "the smallest and the largest time, so these numbers were not measured together"
        )
    if summary["n"] == 1 and high > low * (1 + _ROUNDING):
        problems.append(f"{key}.n is 1, but its quantiles spread from {low:g} to {high:g}: one sample has one value")
    return problems


def _throughput_consistency(entry: Mapping[str, Any]) -> list[str]:
    """Throughput is batch queries per iteration time: a host-clocked entry's exactly (its span
    is the sum of its latencies), a GPU-clocked one's at most (iterations may idle between
    them, never overlap on the stream). Flagged only beyond THROUGHPUT_FACTOR either way."""
    qps, workload = entry.get("throughput_qps"), entry.get("workload")
    if not qps or not isinstance(workload, Mapping):
        return []
    batch = workload.get("batch")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        return []
    latency = entry["latency_ms"]
    field_name = "mean" if latency.get("mean") else "quantiles.p50"
    per_iteration = latency.get("mean") or latency["quantiles"].get("p50")
    if not per_iteration:
        return []
    expected = batch * 1000.0 / per_iteration
    ratio = qps / expected
    host_clock = workload.get("clock") == "host"
    if ratio <= THROUGHPUT_FACTOR and (not host_clock or ratio >= 1 / THROUGHPUT_FACTOR):
        return []
    apart = f"{ratio:.1f}x" if ratio > 1 else f"1/{1 / ratio:.1f}"
    return [
        f"throughput_qps is {qps:g}, {apart} of the {expected:.4g} that batch {batch} per "
        f"latency_ms.{field_name} ({per_iteration:g} ms) gives: the latency and the throughput were "
        "not measured together"
    ]


def _memory_problems(memory: Any) -> list[str]:
    """Device memory (bytes) a comparison's memory check reads: absent, or a whole number >= 0."""
    if memory is None or (isinstance(memory, int) and not isinstance(memory, bool) and memory >= 0):
        return []
    return [f"device_memory_bytes is {_shown_value(memory)}, must be a whole number of bytes >= 0"]


def _history_problems(history: Any) -> list[str]:
    """Earlier recordings (``history.HistoryPoint``): a list of objects with finite times > 0,
    which the drift check divides by."""
    if history is None:
        return []
    if not isinstance(history, list):
        return [f"history is {_shown_value(history)}, must be a list of recordings"]
    problems = []
    for i, point in enumerate(history):
        if not isinstance(point, Mapping):
            problems.append(f"history[{i}] is {_shown_value(point)}, must be an object")
            continue
        for key in ("floor_ms", "median_ms"):
            problems += _number_problems(f"history[{i}].{key}", point.get(key), positive=True)
    return problems


def _accuracy_problems(accuracy: Mapping[str, Any]) -> list[str]:
    problems = []
    for output, stats in accuracy.items():
        if not isinstance(stats, Mapping):
            problems.append(f"accuracy.{output} is {_shown_value(stats)}, must be an object")
            continue
        for stat in DRIFT_STATS:
            if stat in stats:
                problems += _number_problems(f"accuracy.{output}.{stat}", stats[stat], positive=False)
    return problems


def _shown_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number_problems(name: str, value: Any, *, positive: bool) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [f"{name} is {_shown_value(value)}, must be a number"]
    if not math.isfinite(value):
        return [f"{name} is {value}, must be finite"]
    if positive and value <= 0:
        return [f"{name} is {value:g}, must be > 0"]
    if value < 0:
        return [f"{name} is {value:g}, must be >= 0"]
    return []


def _percent_of(label: Any) -> float | None:
    """50.0 for the label ``p50``; None for anything ``percentile_label`` does not write."""
    if not isinstance(label, str) or not label.startswith("p"):
        return None
    try:
        percent = float(label[1:])
        return percent if percentile_label(percent) == label else None
    except ValueError:
        return None


def _summary_problems(entry: Mapping[str, Any], key: str, *, positive: bool) -> list[str]:
    """A stored sample summary (``entry.SampleSummary``): n, mean and quantiles including the floor."""
    summary = entry.get(key)
    if summary is None:
        return [f"{key} is missing"]
    if not isinstance(summary, Mapping):
        return [f"{key} is {_shown_value(summary)}, must be an object"]
    problems = []
    n = summary.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        problems.append(f"{key}.n is {_shown_value(n)}, must be a positive integer")
    if "mean" in summary:
        problems += _number_problems(f"{key}.mean", summary["mean"], positive=positive)
    quantiles = summary.get("quantiles")
    if not isinstance(quantiles, Mapping):
        return [*problems, f"{key}.quantiles is {_shown_value(quantiles)}, must be an object"]
    return problems + _quantile_problems(key, quantiles, positive=positive)


def _quantile_problems(key: str, quantiles: Mapping[Any, Any], *, positive: bool) -> list[str]:
    """Labels that are percentiles, values that are numbers, the floor among them, at least two,
    not decreasing in percentile order."""
    problems, known, points, labelled = [], [], [], set()
    for label, value in quantiles.items():
        percent = _percent_of(label)
        if percent is None:
            problems.append(f"{key}.quantiles has the key {_shown_value(label)}, not a percentile like 'p50'")
        else:
            known.append((percent, label, value))
    for percent, label, value in sorted(known, key=lambda item: item[0]):
        labelled.add(percent)
        bad = _number_problems(f"{key}.quantiles.{label}", value, positive=positive)
        problems += bad
        if not bad:
            points.append((label, float(value)))
    if 0.0 not in labelled:
        problems.append(f"{key}.quantiles.p0 is missing (the floor that is compared)")
    if len(labelled) < 2:
        problems.append(f"{key}.quantiles has {len(labelled)} percentile(s), needs at least two")
    for (low_label, low), (high_label, high) in itertools.pairwise(points):
        if high < low:
            problems.append(
                f"{key}.quantiles.{high_label} is {high:g}, below {low_label} ({low:g}): "
                "quantiles must not decrease with the percentile"
            )
    return problems
