"""How far an unchanged model may read from its baseline: the spread between the sessions it was
recorded in, and between its recordings of the same model at other times (baselines/spread.py),
and what a comparison makes of them."""

from __future__ import annotations

import dataclasses

import pytest
from test_baseline_history import recording

from pytest_trt.baselines import spread
from pytest_trt.baselines.entry import BaselineEntry, EntryModel
from pytest_trt.baselines.regression import Doubt, Measurement, Verdict, assess
from pytest_trt.baselines.spread import SpreadSource
from pytest_trt.judge.baseline_gate import _detectable

THRESHOLD = 0.03


def recorded(scales: list[float], sessions: list[float] | None = None) -> BaselineEntry:
    """The entry of the last of recordings whose floors are scaled by ``scales``, on days 1, 2, ...,
    with the earlier ones in its history, and its sessions' floors (``sessions``, ms)."""
    entries = [recording(f"c{day}", day, scale) for day, scale in enumerate(scales, start=1)]
    entry = entries[-1].with_history([e.point() for e in entries[:-1]], limit=50)
    floor = entry.latency_ms.floor
    return dataclasses.replace(entry, session_floors_ms=sessions or [floor, floor])


def other_model(entry: BaselineEntry) -> BaselineEntry:
    assert entry.model is not None
    return dataclasses.replace(entry, model=EntryModel(entry.model.file, "9" * 64))


def test_three_recordings_of_the_model_give_their_spread():
    entry = recorded([1.00, 1.08, 1.02])
    by_recordings = spread.recordings(entry)
    floors = [p.floor_ms for p in entry.series()]
    assert by_recordings.count == 3 and by_recordings.source is SpreadSource.RECORDINGS
    assert by_recordings.fraction == pytest.approx((max(floors) - min(floors)) / sorted(floors)[1])
    assert 0.07 < by_recordings.fraction < 0.09


def test_fewer_than_three_recordings_say_nothing():
    assert spread.recordings(recorded([1.0, 1.2])).fraction == 0.0


def test_recordings_of_another_model_or_runtime_do_not_count():
    entries = [recording(f"c{day}", day, scale) for day, scale in enumerate([1.0, 1.3, 1.0], start=1)]
    changed = [other_model(entries[0]), entries[1], entries[2]]
    entry = entries[-1].with_history([e.point() for e in changed[:-1]], limit=50)
    assert spread.recordings(entry).count == 2 and spread.recordings(entry).fraction == 0.0
    upgraded = dataclasses.replace(entries[0], software={**entries[0].software, "runtime": "onnxruntime 9.9"})
    entry = entries[-1].with_history([upgraded.point(), entries[1].point()], limit=50)
    assert spread.recordings(entry).count == 2


def test_only_the_latest_recordings_count():
    # An old recording far off, then eleven at one speed: it has aged out of the window.
    entry = recorded([1.5, *[1.0] * 11])
    assert spread.recordings(entry).count == spread.WINDOW and spread.recordings(entry).fraction == 0.0


def test_an_entry_without_a_model_hash_reads_no_recordings_spread():
    entry = dataclasses.replace(recorded([1.0, 1.1, 1.0]), model=None)
    assert spread.recordings(entry).count == 0


def test_the_wider_spread_is_added_and_named():
    entry = recorded([1.00, 1.08, 1.02])
    floor = entry.latency_ms.floor
    new = Measurement([floor * 1.06] * 30)  # +6%: beyond the threshold, within 3% + the recordings' ~8%
    verdict = assess(entry, new, THRESHOLD)
    assert verdict.status is Verdict.INCONCLUSIVE and verdict.doubt is Doubt.WITHIN_SPREAD
    assert verdict.spread is not None and verdict.spread.source is SpreadSource.RECORDINGS
    assert verdict.bound == pytest.approx(THRESHOLD + spread.recordings(entry).fraction)
    assert "for the spread between the 3 recordings of this model" in verdict.message
    assert "the 3 recordings of this model in the baseline's history varied" in verdict.message
    (warning,) = _detectable(verdict, "onnxruntime")
    assert warning.startswith("3 recordings of this model (onnxruntime) varied ")


def test_without_the_history_the_same_reading_is_a_regression():
    entry = recorded([1.02])
    floor = entry.latency_ms.floor
    verdict = assess(entry, Measurement([floor * 1.06] * 30), THRESHOLD)
    assert verdict.status is Verdict.REGRESSED and verdict.spread is None and verdict.bound == THRESHOLD


def test_where_the_sessions_varied_more_they_are_added():
    entry = recorded([1.00, 1.01, 1.00], sessions=[1.0, 1.05, 1.1])
    verdict = assess(entry, Measurement([entry.latency_ms.floor * 1.2] * 30), THRESHOLD)
    assert verdict.spread is not None and verdict.spread.source is SpreadSource.SESSIONS
    assert "for the spread between the sessions it was recorded in" in verdict.message
    assert _detectable(verdict, "onnxruntime")[0].startswith("sessions of this model (onnxruntime) varied 9.5%")
