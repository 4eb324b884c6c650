"""What a pytest-xdist worker sends its controller, as one typed message.

A worker's records, the baseline entries it staged, the tests it collected that measure latency
and its cache counters travel as JSON in ``workeroutput`` (``serde``: one rule for every record
written and read back); the controller rebuilds the ``TestRecord``s and merges them into its own
session state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_trt.serde import dumps, from_data
from pytest_trt.store.stats import CacheStats

if TYPE_CHECKING:
    from pytest_trt.judge.records import TestRecord

# The key in pytest-xdist's ``workeroutput`` dict.
WORKER_OUTPUT_KEY = "pytest_trt"


@dataclass
class WorkerReport:
    records: list[TestRecord] = field(default_factory=list)
    # module -> nodeid -> entry staged by --trt-update-baselines
    staged_baselines: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # module -> nodeids of collected tests that measure latency (for unused baselines)
    measured: dict[str, set[str]] = field(default_factory=dict)
    cache: CacheStats = field(default_factory=CacheStats)

    def to_json(self) -> str:
        return dumps({
            "records": self.records,
            "baselines": self.staged_baselines,
            "measured": self.measured,
            "cache": self.cache,
        })

    @classmethod
    def from_json(cls, text: str) -> WorkerReport:
        # Imported here: records pull in numpy, and this module loads with the plugin.
        from pytest_trt.judge.records import TestRecord

        data = json.loads(text)
        return cls(
            records=[from_data(TestRecord, record, where="xdist record") for record in data["records"]],
            staged_baselines={m: dict(e) for m, e in data["baselines"].items()},
            measured={m: set(ids) for m, ids in data["measured"].items()},
            cache=from_data(CacheStats, data["cache"], where="xdist cache"),
        )

    def merge(self, other: WorkerReport) -> None:
        """Fold another process's report into this one."""
        self.records.extend(other.records)
        for module, entries in other.staged_baselines.items():
            self.staged_baselines.setdefault(module, {}).update(entries)
        for module, nodeids in other.measured.items():
            self.measured.setdefault(module, set()).update(nodeids)
        self.cache.add(other.cache)
