"""What the cache did: how each artifact was obtained (one event per artifact) and the session's
counters for the terminal summary."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from pytest_trt import serde


class CacheOutcome(str, Enum):
    """How one artifact was obtained."""

    HIT = "hit"
    MISS = "miss"
    REBUILT = "rebuilt"  # the entry was damaged
    REPLACED = "replaced"  # --trt-rebuild
    UNCACHED = "uncached"  # no persistent cache

    def __str__(self) -> str:
        return self.value

    @property
    def built(self) -> bool:
        return self is not CacheOutcome.HIT

    @property
    def counts_as_miss(self) -> bool:
        return self in (CacheOutcome.MISS, CacheOutcome.REBUILT, CacheOutcome.REPLACED)


@dataclass(frozen=True)
class CacheEvent:
    """How one artifact was obtained. ``build_s`` is time spent building in this call;
    ``saved_s`` is, for a hit, the recorded build time minus the load time."""

    kind: str
    key: str
    outcome: CacheOutcome
    build_s: float = 0.0
    load_s: float = 0.0
    size_bytes: int = 0
    saved_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = serde.to_data(self)
        return data


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


@dataclass
class CacheStats:
    """Counters for the terminal summary. ``CacheStats(**other.as_dict())`` round-trips, so xdist
    workers can send theirs to the controller, which sums them with ``add``."""

    root: str | None = None
    hits: int = 0
    misses: int = 0
    builds: int = 0
    build_s: float = 0.0
    load_s: float = 0.0
    saved_s: float = 0.0
    corrupt: int = 0
    evicted: int = 0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = serde.to_data(self)
        return data

    def add(self, other: CacheStats) -> None:
        for counter in fields(self):
            if counter.name != "root":
                setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))

    def count(self, event: CacheEvent, *, built: bool) -> None:
        """Add one artifact's event; ``built`` when this call built it."""
        if event.outcome is CacheOutcome.HIT:
            self.hits += 1
            self.saved_s += event.saved_s
        elif event.outcome.counts_as_miss:
            self.misses += 1
        if built:
            self.builds += 1
        self.build_s += event.build_s
        self.load_s += event.load_s

    def summary_line(self) -> str:
        builds = f"{_plural(self.builds, 'build')}, {self.build_s:.2f} s"
        if self.root is None:
            return f"engine cache off (artifacts kept for this session only): {builds}"
        line = (
            f"engine cache {self.root}: {_plural(self.hits, 'hit')}, "
            f"{_plural(self.misses, 'miss', 'misses')} ({builds}), {self.corrupt} corrupt"
        )
        if self.evicted:
            line += f", {self.evicted} evicted"
        return line + f"; saved ~{self.saved_s:.1f} s"
