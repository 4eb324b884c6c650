"""The figures of a test over recordings and settings: its baseline history, batch sweeps and
per-layer profile. Sweeps and profiles are optional parts of a record: where a record has none
(or a report written before they existed), nothing is drawn. Their points are read by the field
names below, as attributes or keys, so this reader does not depend on their exact classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_trt.baselines.drift import theil_sen
from pytest_trt.baselines.history import HistoryPoint
from pytest_trt.judge.records import TestRecord
from pytest_trt.reports.html.figures import BLUE, GREEN, GREY, Plot, figure, label_room, log_axis, to_svg

SWEEP_FIELD = "sweep"
PROFILE_FIELDS = ("profile", "layers")
LAYER_TIME_FIELDS = ("median_ms", "time_ms", "ms", "mean_ms", "average_ms")
LAYER_NAME_FIELDS = ("name", "layer")
TOP_LAYERS = 15
MIN_TREND_POINTS = 3


def history(record: TestRecord, prefix: str) -> Plot | None:
    """One point per recording (floor and median), oldest first, each with its commit and date as
    a hover text; from three recordings on, the drift rule's Theil-Sen line through the floors
    as the trend, with its change per recording."""
    points = record.history
    if len(points) < 2:  # one recording is the baseline itself: nothing to draw over time
        return None
    xs = np.arange(1, len(points) + 1)
    titles: dict[str, str] = {}
    rotated = len(points) > 6
    with figure(height_in=2.7 if rotated else 2.3, bottom_in=0.85 if rotated else 0.5) as (fig, (ax,)):
        ax.plot(xs, [p.median_ms for p in points], color=GREY, linewidth=1, label="median")
        ax.plot(xs, [p.floor_ms for p in points], color=BLUE, linewidth=1.2, label="floor")
        for index, point in enumerate(points):
            gid = f"trt-history-{index}"
            (marker,) = ax.plot([xs[index]], [point.floor_ms], "o", color=BLUE)
            marker.set_gid(gid)
            titles[gid] = _hover(index, point)
        trend = _trend(xs, [p.floor_ms for p in points])
        if trend is not None:
            line, per_recording = trend
            (drawn,) = ax.plot(xs, line, "--", color=GREEN, label=f"trend {per_recording * 100:+.2f}% per recording")
            drawn.set_gid("trt-trend")
        ax.set_xticks(xs, [_tick(p, i) for i, p in enumerate(points)], rotation=30 if rotated else 0)
        ax.set_xlabel("recording (commit)")
        ax.set_ylabel("ms")
        ax.set_title(f"History: {len(points)} recording{'s' if len(points) != 1 else ''}")
        ax.legend(loc="best")
        return Plot("history", "Baseline history", to_svg(fig, f"{prefix}-history", titles))


def _hover(index: int, point: HistoryPoint) -> str:
    parts = [f"recording {index + 1}", f"commit {point.commit or 'unknown'}", point.recorded_at or "date unknown",
             f"floor {point.floor_ms:.4g} ms", f"median {point.median_ms:.4g} ms"]
    if point.throughput_qps is not None and math.isfinite(point.throughput_qps):
        parts.append(f"{point.throughput_qps:,.0f} qps")
    return ", ".join(parts)


def _tick(point: HistoryPoint, index: int) -> str:
    return (point.commit or "")[:7] or str(index + 1)


def _trend(xs: np.ndarray, floors: Sequence[float]) -> tuple[np.ndarray, float] | None:
    values = np.asarray(floors, dtype=np.float64)
    if values.size < MIN_TREND_POINTS or not np.isfinite(values).all():
        return None
    # The drift rule's own fit (Theil-Sen), so the line and the warning give one figure.
    slope, intercept = theil_sen(values.tolist())
    line = slope * (xs - xs[0]) + intercept
    return line, float(slope / line[0]) if line[0] else 0.0


def sweep(record: TestRecord, prefix: str) -> Plot | None:
    """Latency and throughput against batch size, one line per stream count where points have one."""
    points = [p for p in (getattr(record, SWEEP_FIELD, None) or ()) if _number(_field(p, "batch")) is not None]
    if not points:
        return None
    groups: dict[Any, list[Any]] = {}
    for point in points:
        groups.setdefault(_field(point, "streams"), []).append(point)
    with figure(1, 2) as (fig, (left, right)):
        for streams, members in sorted(groups.items(), key=lambda item: str(item[0])):
            members.sort(key=lambda p: _number(_field(p, "batch")) or 0)
            batches = [_drawn(_number(_field(p, "batch"))) for p in members]
            label = f"{streams} streams" if streams is not None else None
            left.plot(batches, [_drawn(_latency_ms(p)) for p in members], "o-", label=label)
            right.plot(batches, [_drawn(_number(_field(p, "throughput"))) for p in members], "o-", label=label)
        ticks = sorted({_drawn(_number(_field(p, "batch"))) for p in points})
        for ax, what in ((left, "latency (ms)"), (right, "throughput (qps)")):
            log_axis(ax, "x", base=2)
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.set_xlabel("batch size")
            ax.set_ylabel(what)
            if len(groups) > 1:
                ax.legend(loc="best")
        left.set_title("Sweep: latency")
        right.set_title("Sweep: throughput")
        return Plot("sweep", "Batch sweep", to_svg(fig, f"{prefix}-sweep"))


def profile(record: TestRecord, prefix: str) -> Plot | None:
    """The slowest layers of a per-layer profile, slowest on top."""
    layers = _layers(record)
    if not layers:
        return None
    layers.sort(key=lambda pair: pair[1], reverse=True)
    shown, total = layers[:TOP_LAYERS], sum(ms for _, ms in layers)
    labels = [_short(name) for name, _ in shown]
    with figure(height_in=0.9 + 0.2 * len(shown), left_in=label_room(labels)) as (fig, (ax,)):
        ys = np.arange(len(shown))
        ax.barh(ys, [ms for _, ms in shown], color=BLUE, alpha=0.7)
        ax.set_yticks(ys, labels)
        ax.invert_yaxis()
        ax.set_xlabel("ms per iteration")
        more = f", {len(layers) - len(shown)} more not shown" if len(layers) > len(shown) else ""
        ax.set_title(f"Per-layer profile: {len(layers)} layers, {total:.4g} ms in all{more}")
        return Plot("profile", "Per-layer profile", to_svg(fig, f"{prefix}-profile"))


def _layers(record: TestRecord) -> list[tuple[str, float]]:
    found: Any = None
    for field_name in PROFILE_FIELDS:
        found = getattr(record, field_name, None)
        if found:
            break
    if found is None:
        return []
    items = _field(found, "layers") if _field(found, "layers") is not None else found
    layers = []
    for item in items if isinstance(items, (list, tuple)) else []:
        name = next((_field(item, f) for f in LAYER_NAME_FIELDS if _field(item, f) is not None), None)
        ms = next((_number(_field(item, f)) for f in LAYER_TIME_FIELDS if _number(_field(item, f)) is not None), None)
        if name is not None and ms is not None:
            layers.append((str(name), ms))
    return layers


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def _field(obj: Any, name: str) -> Any:
    """A point's field, as an attribute or a key (a record's dataclass, or JSON data)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _latency_ms(point: Any) -> float | None:
    """A sweep point's latency: a number of ms, or a summary with a median."""
    value = _field(point, "latency")
    if value is None:
        value = _field(point, "latency_ms")
    summary = _field(value, "median") if value is not None and not isinstance(value, (int, float)) else None
    return _number(summary if summary is not None else value)


def _drawn(value: float | None) -> float:
    """A missing number as NaN, which matplotlib leaves out of a line."""
    return math.nan if value is None else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
