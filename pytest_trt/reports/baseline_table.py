"""The baseline store as text: one row per stored test, or one test's history with the drift
rule's finding over it (``pytest-trt show``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_trt.baselines.drift import DriftFinding, judge
from pytest_trt.baselines.entry import BaselineEntry
from pytest_trt.baselines.store import BaselineStore
from pytest_trt.baselines.validation import BaselineEntryError
from pytest_trt.errors import BaselineFileError


@dataclass(frozen=True)
class StoredTest:
    """One stored test: its entry and the drift rule's finding over its history."""

    module: str
    nodeid: str
    entry: BaselineEntry
    drift: DriftFinding


def stored_tests(store: BaselineStore, threshold: float) -> tuple[list[StoredTest], list[str]]:
    """Every entry of the store's hardware class, and a line per file or entry that cannot be
    read (naming it)."""
    found, problems = [], []
    try:
        known = store.known()
    except BaselineFileError as exc:
        return [], [str(exc)]
    for module in sorted(known):
        for nodeid in sorted(known[module]):
            try:
                entry = store.lookup(module, nodeid)
            except (BaselineFileError, BaselineEntryError) as exc:
                problems.append(str(exc))
                continue
            if entry is not None:
                found.append(StoredTest(module, nodeid, entry, judge(entry.series(), threshold)))
    return found, problems


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
        for line in (header, *rows)
    ]


def _short(commit: str | None) -> str:
    if not commit:
        return "-"
    dirty = commit.endswith("-dirty")
    return commit.removesuffix("-dirty")[:10] + ("-dirty" if dirty else "")


def _qps(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def baselines_table(tests: Sequence[StoredTest]) -> str:
    """One row per stored test: workload, floor, median, throughput, when, commit, how many
    recordings its history holds and what the drift rule finds."""
    header = ("test", "backend", "batch", "precision", "min ms", "p50 ms", "qps", "recorded", "commit", "rec.", "history")
    rows = []
    for t in tests:
        point = t.entry.point()
        settings = point.settings
        rows.append((
            t.nodeid, settings.get("backend", "-"), settings.get("batch", "-"), settings.get("precision", "-"),
            f"{point.floor_ms:.4g}", f"{point.median_ms:.4g}",
            _qps(point.throughput_qps),
            (point.recorded_at or "-")[:10], _short(point.commit), str(len(t.entry.series())), t.drift.state.value,
        ))
    return "\n".join(_aligned(header, rows, right={2, 4, 5, 6, 9}))


def history_table(test: StoredTest) -> str:
    """One test's recordings, oldest first, each with its change from the one before, and the
    drift rule's finding."""
    header = ("recorded", "commit", "min ms", "change", "p50 ms", "qps", "settings")
    rows, before = [], None
    for point in test.entry.series():
        change = f"{(point.floor_ms / before - 1) * 100:+.1f}%" if before else "-"
        before = point.floor_ms
        rows.append((
            point.recorded_at or "-", _short(point.commit), f"{point.floor_ms:.4g}", change, f"{point.median_ms:.4g}",
            _qps(point.throughput_qps),
            " ".join(f"{k}={v}" for k, v in sorted(point.settings.items())),
        ))
    finding = test.drift.message() or f"history: {test.drift.state.value} ({test.drift.points} comparable recordings)"
    return "\n".join([f"{test.nodeid} ({test.module})", *_aligned(header, rows, right={2, 3, 4, 5}), "", finding])
