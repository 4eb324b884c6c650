"""A baseline's history in the store: one point per recording, a union under the lock, bounded,
one line per point in the file; old files load; pruning works; and the drift rule over it."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from test_baseline_entry_format import CPU, NODEID, OLD_FILE, RECORDED_AT, old_entry, recorded

from pytest_trt.baselines.drift import DriftState, judge, mann_kendall, theil_sen
from pytest_trt.baselines.entry import BaselineEntry, entry_from_measurement
from pytest_trt.baselines.history import HistoryPoint, merged
from pytest_trt.baselines.store import BaselineStore

MODULE = "tests/test_m.py"


def recording(commit: str, day: int, scale: float = 1.0) -> BaselineEntry:
    """The entry one recording at ``commit`` on day ``day`` stages, its floor scaled."""
    record = recorded()
    record = dataclasses.replace(record, perf=dataclasses.replace(
        record.perf, samples_ms=[t * scale for t in record.perf.samples_ms]))
    entry = entry_from_measurement(record, commit, software={"driver": "550.1", "cuda": "12.4"})
    return dataclasses.replace(entry, recorded_at=f"2026-12-{day:02d}T10:00:00+00:00")


def write(root, entry: BaselineEntry, *, limit: int = 50) -> None:
    store = BaselineStore(root, CPU, history_limit=limit)
    store.stage(MODULE, NODEID, entry.with_history(store.earlier(MODULE, NODEID), limit))
    assert store.write().problems == []


def stored(root) -> BaselineEntry:
    entry = BaselineStore(root, CPU).lookup(MODULE, NODEID)
    assert entry is not None
    return entry


def test_three_recordings_at_three_commits_give_three_points(tmp_path):
    for day, commit in enumerate(("aaa", "bbb", "ccc"), start=1):
        write(tmp_path, recording(commit, day, 1.0 + day / 100))
    series = stored(tmp_path).series()
    assert [p.commit for p in series] == ["aaa", "bbb", "ccc"]
    assert [p.recorded_at[:10] for p in series if p.recorded_at] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert series[0].floor_ms < series[1].floor_ms < series[2].floor_ms
    assert series[-1].settings == {"backend": "onnxruntime", "precision": "fp32", "batch": "1",
                                   "runtime": "onnxruntime 1.31.0", "model": "3f2a00000000"}
    assert len(stored(tmp_path).history or []) == 2  # the earlier two; the entry is the third


def test_each_point_is_one_line_of_the_file_and_small(tmp_path):
    write(tmp_path, recording("a" * 40, 1))
    path = tmp_path / CPU / "tests__test_m.json"
    one = path.read_text()
    write(tmp_path, recording("b" * 40, 2, 1.01))
    two = path.read_text()
    added = [line for line in two.splitlines() if line not in one.splitlines()]
    point_lines = [line for line in added if '"floor_ms"' in line]
    assert len(point_lines) == 1
    # The point's line (docs/regression.md states its size): about 300 bytes.
    assert len(point_lines[0].encode()) < 320, point_lines[0]
    assert json.loads(two)["tests"][NODEID]["history"][0]["commit"] == "a" * 40


def test_writers_that_raced_keep_the_union_of_their_points(tmp_path):
    write(tmp_path, recording("base", 1))
    # Two processes (CI jobs) read the same file, then write one after the other under the lock.
    first, second = BaselineStore(tmp_path, CPU), BaselineStore(tmp_path, CPU)
    a = recording("job-a", 2).with_history(first.earlier(MODULE, NODEID), 50)
    b = recording("job-b", 3, 1.01).with_history(second.earlier(MODULE, NODEID), 50)
    first.stage(MODULE, NODEID, a)
    second.stage(MODULE, NODEID, b)
    assert first.write().problems == [] and second.write().problems == []
    assert [p.commit for p in stored(tmp_path).series()] == ["base", "job-a", "job-b"]


def test_the_history_is_bounded_to_the_last_n_recordings(tmp_path):
    for day in range(1, 8):
        write(tmp_path, recording(f"c{day}", day), limit=3)
    entry = stored(tmp_path)
    assert [p.commit for p in entry.series()] == ["c5", "c6", "c7"]
    assert entry.commit == "c7"
    with pytest.raises(ValueError, match="at least 1"):
        BaselineStore(tmp_path, CPU, history_limit=0)


def test_an_old_file_loads_and_its_recording_becomes_the_first_point(tmp_path):
    entry = old_entry(tmp_path)
    assert entry.history is None and [p.commit for p in entry.series()] == ["0123abcd-dirty"]
    write(tmp_path, recording("new", 2))
    assert [p.commit for p in stored(tmp_path).series()] == ["0123abcd-dirty", "new"]


def test_a_first_recording_writes_the_same_bytes_as_before(tmp_path):
    write(tmp_path, dataclasses.replace(recording("0123abcd-dirty", 1), recorded_at=RECORDED_AT))
    assert (tmp_path / CPU / "tests__test_m.json").read_text() == OLD_FILE


def test_a_bad_history_point_names_the_field(tmp_path):
    path = tmp_path / CPU / "tests__test_m.json"
    path.parent.mkdir(parents=True)
    data = json.loads(OLD_FILE)
    data["tests"][NODEID]["history"] = [{"floor_ms": -1, "median_ms": 1.0}]
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match=r"history\[0\]\.floor_ms is -1, must be > 0"):
        BaselineStore(tmp_path, CPU).lookup(MODULE, NODEID)


def test_pruning_removes_entries_with_their_history(tmp_path):
    for day in (1, 2):
        write(tmp_path, recording(f"c{day}", day))
    store = BaselineStore(tmp_path, CPU)
    assert store.unused({MODULE: set()}) == {MODULE: {NODEID}}
    assert store.prune({MODULE: {NODEID}}) == 1
    assert not (tmp_path / CPU / "tests__test_m.json").exists()


def test_merged_is_a_union_in_date_order():
    a = HistoryPoint(1.0, 1.1, "2026-12-02T00:00:00+00:00", "b")
    b = HistoryPoint(1.0, 1.1, "2026-12-01T00:00:00+00:00", "a")
    assert merged([a, b, a], 5) == [b, a]
    assert merged([a, b], 1) == [a]


# ---- the drift rule --------------------------------------------------------------------------


def series(floors, commits=None) -> list[HistoryPoint]:
    commits = commits or [f"c{i}" for i in range(len(floors))]
    return [HistoryPoint(float(f), float(f), f"2026-12-{i + 1:02d}T00:00:00+00:00", c, settings={"batch": "1"})
            for i, (f, c) in enumerate(zip(floors, commits, strict=False))]


def test_a_drift_of_one_percent_per_recording_is_a_drift_while_no_step_exceeds_the_threshold():
    rng = np.random.default_rng(3)
    floors = [1.0 * 1.01**i * (1 + 0.002 * rng.standard_normal()) for i in range(10)]
    assert max(b / a - 1 for a, b in itertools.pairwise(floors)) < 0.03
    finding = judge(series(floors), 0.03)
    assert finding.state is DriftState.DRIFT and finding.flagged
    assert 0.007 < finding.per_recording < 0.013 and finding.change > 0.03
    assert "per recording" in finding.message()


def test_a_step_names_its_commit():
    floors = [1.0, 1.002, 0.998, 1.001, 0.999, 1.0, 1.06, 1.061, 1.059, 1.06, 1.062, 1.058]
    finding = judge(series(floors), 0.03)
    assert finding.state is DriftState.STEP and finding.at is not None and finding.at.commit == "c6"
    assert 0.05 < finding.change < 0.07
    assert "commit c6" in finding.message()


def test_flat_noise_a_small_step_and_a_short_history_are_not_flagged():
    rng = np.random.default_rng(0)
    assert judge(series(1 + 0.01 * rng.standard_normal(20)), 0.03).state is DriftState.STEADY
    small = np.array([1.0] * 8 + [1.02] * 8) * (1 + 0.003 * rng.standard_normal(16))
    finding = judge(series(small), 0.03)
    assert finding.state is DriftState.STEADY and 0.01 < finding.change < 0.03  # seen, under the threshold
    assert judge(series([1.0, 1.1, 1.2]), 0.03).state is DriftState.TOO_SHORT


def test_only_the_points_of_the_latest_workload_are_judged():
    points = series([1.0 * 1.02**i for i in range(10)])
    changed = [dataclasses.replace(p, settings={"batch": "8"}) for p in points[-4:]]
    assert judge([*points[:-4], *changed], 0.03).state is DriftState.TOO_SHORT


def test_mann_kendall_and_theil_sen_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    y = list(1 + 0.01 * rng.standard_normal(15) + 0.002 * np.arange(15))
    y[3] = y[4]  # a tie
    _, p = mann_kendall(y)
    tau = stats.kendalltau(np.arange(15), y, alternative="greater")
    # Both are normal approximations; ours is continuity-corrected, so a little larger.
    assert tau.pvalue < p < 1.3 * tau.pvalue
    slope, intercept = theil_sen(y)
    ref = stats.theilslopes(y, np.arange(15))
    assert slope == pytest.approx(ref.slope) and intercept == pytest.approx(ref.intercept)
