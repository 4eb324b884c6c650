"""A baseline's history: one bounded summary per recording, oldest first, so that a slow drift
that no single comparison flags can be seen and judged."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HistoryPoint:
    """One recording as the history keeps it: when, at which commit, and its headline numbers."""

    floor_ms: float
    median_ms: float
    recorded_at: str | None = None  # ISO 8601, UTC
    commit: str | None = None
    throughput_qps: float | None = None
    settings: dict[str, str] = field(default_factory=dict)  # what it ran with: backend, precision, batch
