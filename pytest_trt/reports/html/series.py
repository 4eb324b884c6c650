"""The figures of a test over recordings and settings: its baseline history, its batch sweep
(``TestRecord.sweep``) or concurrent streams (``TestRecord.streams``), and its per-layer profile
(``TestRecord.layers``). Each is an optional part of a record: where a record has none (or a
report written before they existed), nothing is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pytest_trt.baselines.drift import theil_sen
from pytest_trt.baselines.history import HistoryPoint
from pytest_trt.judge.records import TestRecord
from pytest_trt.reports.html.figures import BLUE, GREEN, GREY, Plot, figure, label_room, log_axis, to_svg

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
    """Latency (p50) and throughput against batch size (``batch_sizes=``) or against the number
    of streams (``streams=``)."""
    points: list[tuple[int, float, float]]
    if record.sweep:
        points, axis = [(p.batch, p.latency.median, p.throughput) for p in record.sweep], "batch size"
    elif record.streams:
        points, axis = [(p.streams, p.latency.median, p.throughput) for p in record.streams], "streams"
    else:
        return None
    points.sort()
    xs = [float(x) for x, _, _ in points]
    with figure(1, 2) as (fig, (left, right)):
        left.plot(xs, [_drawn(_finite(ms)) for _, ms, _ in points], "o-")
        right.plot(xs, [_drawn(_finite(qps)) for _, _, qps in points], "o-")
        for ax, what in ((left, "p50 latency (ms)"), (right, "throughput (qps)")):
            log_axis(ax, "x", base=2)
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.set_xlabel(axis)
            ax.set_ylabel(what)
        left.set_title(f"Latency by {axis}")
        right.set_title(f"Throughput by {axis}")
        return Plot("sweep", "Batch sweep" if record.sweep else "Streams", to_svg(fig, f"{prefix}-sweep"))


def profile(record: TestRecord, prefix: str) -> Plot | None:
    """The slowest layers of the test's per-layer profile, slowest on top."""
    found = record.layers
    if found is None or not found.layers:
        return None
    shown = sorted(found.layers, key=lambda layer: layer.ms, reverse=True)[:TOP_LAYERS]
    labels = [_short(f"{layer.name} ({layer.op})" if layer.op else layer.name) for layer in shown]
    with figure(height_in=0.9 + 0.2 * len(shown), left_in=label_room(labels)) as (fig, (ax,)):
        ys = np.arange(len(shown))
        ax.barh(ys, [layer.ms for layer in shown], color=BLUE, alpha=0.7)
        ax.set_yticks(ys, labels)
        ax.invert_yaxis()
        ax.set_xlabel("ms per run")
        more = f", the {len(shown)} slowest shown" if found.total_layers > len(shown) else ""
        ax.set_title(f"Per-layer profile: {found.total_layers} layers, {found.total_ms:.4g} ms in all{more}")
        return Plot("profile", "Per-layer profile", to_svg(fig, f"{prefix}-profile"))


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def _drawn(value: float | None) -> float:
    """A missing number as NaN, which matplotlib leaves out of a line."""
    return math.nan if value is None else value


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
