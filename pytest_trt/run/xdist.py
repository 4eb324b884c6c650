"""What a pytest-xdist worker sends its controller, as one typed message.

A worker's records (``TestRecord.as_dict()`` form), the baseline entries it staged, the tests it
collected that measure latency and its cache counters travel as JSON in ``workeroutput``; the
controller merges them into its own session state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pytest_trt.store.stats import CacheStats

# The key in pytest-xdist's ``workeroutput`` dict.
WORKER_OUTPUT_KEY = "pytest_trt"


@dataclass
class WorkerReport:
    records: list[dict[str, Any]] = field(default_factory=list)
    # module -> nodeid -> entry staged by --trt-update-baselines
    staged_baselines: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # module -> nodeids of collected tests that measure latency (for unused baselines)
    measured: dict[str, set[str]] = field(default_factory=dict)
    cache: CacheStats = field(default_factory=CacheStats)

    def to_json(self) -> str:
        return json.dumps({
            "records": self.records,
            "baselines": self.staged_baselines,
            "measured": {module: sorted(ids) for module, ids in self.measured.items()},
            "cache": self.cache.as_dict(),
        })

    @classmethod
    def from_json(cls, text: str) -> WorkerReport:
        data = json.loads(text)
        return cls(
            records=list(data["records"]),
            staged_baselines={m: dict(e) for m, e in data["baselines"].items()},
            measured={m: set(ids) for m, ids in data["measured"].items()},
            cache=CacheStats(**data["cache"]),
        )

    def merge(self, other: WorkerReport) -> None:
        """Fold another process's report into this one."""
        self.records.extend(other.records)
        for module, entries in other.staged_baselines.items():
            self.staged_baselines.setdefault(module, {}).update(entries)
        for module, nodeids in other.measured.items():
            self.measured.setdefault(module, set()).update(nodeids)
        self.cache.add(other.cache)
