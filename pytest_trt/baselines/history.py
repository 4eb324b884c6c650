"""A baseline's history: one bounded summary per recording, oldest first, so that a slow drift
that no single comparison flags can be seen and judged (drift.py).

An entry keeps the points of its *earlier* recordings in ``history``; its own recording is the
point ``BaselineEntry.point()`` makes from it, so a file recorded once is what it always was.
Points are merged as a union (a point is its JSON form), ordered by ``recorded_at`` and bounded
to the last ``limit`` (--trt-baseline-history), which keeps concurrent writers from losing each
other's recordings under the store's lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pytest_trt.serde import to_data

# Recordings kept per test (--trt-baseline-history), the latest one included.
DEFAULT_LIMIT = 50

# The settings a point keeps; points whose WORKLOAD_SETTINGS differ measured other work and are
# never judged as one series.
WORKLOAD_SETTINGS = ("backend", "precision", "batch")


@dataclass(frozen=True)
class HistoryPoint:
    """One recording as the history keeps it: when, at which commit, and its headline numbers."""

    floor_ms: float
    median_ms: float
    recorded_at: str | None = None  # ISO 8601, UTC
    commit: str | None = None
    throughput_qps: float | None = None
    settings: dict[str, str] = field(default_factory=dict)  # what it ran with: backend, precision, batch

    def key(self) -> str:
        """The point's identity: its JSON, so a union of two histories keeps each point once."""
        return json.dumps(to_data(self), sort_keys=True)

    def workload(self) -> tuple[str | None, ...]:
        """The settings that make two points comparable."""
        return tuple(self.settings.get(name) for name in WORKLOAD_SETTINGS)


def point_settings(settings: Mapping[str, object]) -> dict[str, str]:
    """The settings as a point keeps them: strings, None left out."""
    return {name: str(value) for name, value in settings.items() if value is not None}


def merged(points: Iterable[HistoryPoint], limit: int) -> list[HistoryPoint]:
    """The union of ``points`` (each once), oldest first by ``recorded_at`` (points without a
    date first, in the order given), bounded to the last ``limit``."""
    if limit < 1:
        raise ValueError(f"a history keeps at least 1 recording, got {limit!r}")
    unique: dict[str, HistoryPoint] = {}
    for point in points:
        unique.setdefault(point.key(), point)
    ordered = sorted(unique.values(), key=lambda p: p.recorded_at or "")
    return ordered[-limit:]


def comparable_tail(series: list[HistoryPoint]) -> list[HistoryPoint]:
    """The latest points that share the newest point's workload settings: a change of batch,
    precision or backend starts a new series."""
    if not series:
        return []
    last = series[-1].workload()
    start = len(series)
    while start > 0 and series[start - 1].workload() == last:
        start -= 1
    return series[start:]
