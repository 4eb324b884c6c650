"""The baseline file format across the typed entry: an entry survives the file's JSON unchanged,
and a file written before entries were typed loads, compares and rewrites the same."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from test_baseline import make_record

from pytest_trt.baselines.comparability import accuracy_drift, changes, staleness
from pytest_trt.baselines.entry import BaselineEntry, EntryModel, ProbeSummary, entry_from_measurement
from pytest_trt.baselines.regression import Measurement, assess
from pytest_trt.baselines.store import BaselineStore
from pytest_trt.baselines.validation import validate_entry
from pytest_trt.timing import host_probe

CPU = "cpu-amd-epyc-2c"
NODEID = "tests/test_m.py::test_a"
RECORDED_AT = "2026-12-01T10:00:00+00:00"

# Written by BaselineStore.entry_from_record and BaselineStore.write before entries were typed,
# from the measurement ``recorded()`` makes (recorded_at fixed).
OLD_FILE = """\
{
 "hardware": "cpu-amd-epyc-2c",
 "module": "tests/test_m.py",
 "schema": 1,
 "tests": {
  "tests/test_m.py::test_a": {
   "accuracy": {
    "y": {
     "max_abs": 2.5e-06,
     "mean_abs": 3e-07,
     "p99_rel": 0.0001
    }
   },
   "build": {
    "options": {
     "graph_optimization_level": "basic"
    },
    "precision": "fp32",
    "shapes": {
     "x": [
      1,
      256
     ]
    }
   },
   "commit": "0123abcd-dirty",
   "host_probe_ms": {
    "mean": 0.11235,
    "n": 20,
    "probe": "matmul-f32-48x48x16-aligned-warm",
    "quantiles": {
     "p0": 0.1,
     "p0.5": 0.100124,
     "p1": 0.100247,
     "p10": 0.10247,
     "p100": 0.1247,
     "p2": 0.100494,
     "p25": 0.106175,
     "p5": 0.101235,
     "p50": 0.11235,
     "p75": 0.118525,
     "p90": 0.12223,
     "p95": 0.123465,
     "p99": 0.124453
    }
   },
   "latency_ms": {
    "mean": 1.18127,
    "n": 60,
    "quantiles": {
     "p0": 1.0494,
     "p0.5": 1.0499,
     "p1": 1.0504,
     "p10": 1.08636,
     "p100": 1.4932,
     "p2": 1.05225,
     "p25": 1.11708,
     "p5": 1.0708,
     "p50": 1.1735,
     "p75": 1.2344,
     "p90": 1.26001,
     "p95": 1.31905,
     "p99": 1.4673
    }
   },
   "model": {
    "content_hash": "3f2a000000000000000000000000000000000000000000000000000000000000",
    "file": "mlp.onnx"
   },
   "recorded_at": "2026-12-01T10:00:00+00:00",
   "software": {
    "backend": "onnxruntime",
    "cuda": "12.4",
    "driver": "550.1",
    "runtime": "onnxruntime 1.31.0"
   },
   "throughput_qps": 846.545,
   "workload": {
    "backend": "onnxruntime",
    "batch": 1,
    "clock": "host",
    "inputs": {
     "x": {
      "dtype": "float32",
      "shape": [
       1,
       256
      ]
     }
    },
    "mode": {
     "clock": "host"
    },
    "outputs": {
     "y": {
      "dtype": "float32",
      "shape": [
       1,
       10
      ]
     }
    },
    "precision": "fp32"
   }
  }
 }
}
"""


def recorded():
    """The measurement OLD_FILE was recorded from."""
    samples = np.round(np.random.default_rng(7).gamma(4.0, 0.05, 60) + 1.0, 4).tolist()
    record = make_record(samples, errors={"max_abs": 2.5e-6, "mean_abs": 3e-7, "p99_rel": 1e-4},
                         options={"graph_optimization_level": "basic"})
    record = dataclasses.replace(record, perf=dataclasses.replace(record.perf, probe_ms=[round(0.1 + 0.0013 * i, 5) for i in range(20)]))
    return record


def old_entry(tmp_path) -> BaselineEntry:
    path = tmp_path / CPU / "tests__test_m.json"
    path.parent.mkdir(parents=True)
    path.write_text(OLD_FILE)
    entry = BaselineStore(tmp_path, CPU).lookup("tests/test_m.py", NODEID)
    assert entry is not None
    return entry


def test_an_entry_survives_the_files_json():
    record = recorded()
    entry = entry_from_measurement(record, "abc", software={"driver": "550.1"})
    assert BaselineEntry.from_file(json.loads(json.dumps(entry.to_file()))) == entry
    without_probe = dataclasses.replace(record, perf=dataclasses.replace(record.perf, probe_ms=None))
    plain = entry_from_measurement(without_probe, None)
    assert plain.host_probe_ms is None and "host_probe_ms" not in plain.to_file()  # left out, as always
    assert BaselineEntry.from_file(json.loads(json.dumps(plain.to_file()))) == plain


def test_a_file_written_before_entries_were_typed_loads_with_every_field(tmp_path):
    entry = old_entry(tmp_path)
    assert validate_entry(json.loads(OLD_FILE)["tests"][NODEID]) == []
    assert entry.latency_ms.n == 60 and entry.latency_ms.floor == 1.0494 and entry.latency_ms.mean == 1.18127
    assert entry.latency_ms.quantiles["p0.5"] == 1.0499 and len(entry.latency_ms.quantiles) == 13
    assert isinstance(entry.host_probe_ms, ProbeSummary) and entry.host_probe_ms.probe == host_probe.KIND
    assert entry.host_probe_ms.floor == 0.1 and entry.host_probe_ms.n == 20
    assert entry.throughput_qps == 846.545
    assert entry.accuracy == {"y": {"max_abs": 2.5e-06, "mean_abs": 3e-07, "p99_rel": 0.0001}}
    assert entry.software == {"backend": "onnxruntime", "cuda": "12.4", "driver": "550.1", "runtime": "onnxruntime 1.31.0"}
    assert entry.model == EntryModel("mlp.onnx", "3f2a" + "0" * 60)
    assert entry.build is not None and entry.build.shapes == {"x": (1, 256)}
    assert entry.build.options == {"graph_optimization_level": "basic"}
    assert entry.workload is not None and entry.workload.inputs["x"].shape == (1, 256)
    assert (entry.workload.backend, entry.workload.clock, entry.workload.mode) == ("onnxruntime", "host", {"clock": "host"})
    assert (entry.recorded_at, entry.commit) == (RECORDED_AT, "0123abcd-dirty")


def test_the_same_measurement_writes_the_same_bytes_as_before(tmp_path):
    record = recorded()
    entry = entry_from_measurement(record, "0123abcd-dirty", software={"driver": "550.1", "cuda": "12.4"})
    store = BaselineStore(tmp_path, CPU)
    store.stage("tests/test_m.py", NODEID, dataclasses.replace(entry, recorded_at=RECORDED_AT))
    (path,) = store.write().written
    assert path.read_text() == OLD_FILE
    # And the old entry, read back and written again, is the same file.
    again = BaselineStore(tmp_path / "again", CPU)
    again.stage("tests/test_m.py", NODEID, old_entry(tmp_path / "old"))
    (rewritten,) = again.write().written
    assert rewritten.read_text() == OLD_FILE


def test_an_old_entry_compares_as_it_did_before(tmp_path):
    # The numbers read from OLD_FILE are those the code before entries were typed read; the
    # verdict is the rule's of today: a raw floor beyond the bound that only the probe takes back
    # is in doubt (the host's speed read at the probe's floor: 0.10 stored, 0.11 now), and an
    # entry without session floors adds no margin for sessions.
    entry = old_entry(tmp_path)
    assert entry.session_floors_ms is None
    new = Measurement([1.2 + 0.001 * i for i in range(60)], [0.11 + 0.0013 * i for i in range(20)])
    verdict = assess(entry, new, 0.1)
    assert verdict.status == "inconclusive" and verdict.spread_margin == 0.0
    assert verdict.change == verdict.raw_change == pytest.approx(0.14351057747284157, rel=1e-9)
    assert verdict.host_change == pytest.approx(0.1, rel=1e-9)
    assert verdict.message == (
        "min +14.4% vs baseline (threshold 10%); the host probe ran 10% slower than when the baseline was "
        "recorded; divided by the host's speed beyond the probe's own 2% it reads +6.0%, within 11.5% (the bound "
        "plus 1.5% for what the division may miss): the host may be what slowed"
    )
    record = make_record(errors={"max_abs": 1e-5, "mean_abs": 3e-7, "p99_rel": 1e-4})
    record = dataclasses.replace(record, perf=dataclasses.replace(record.perf, probe_ms=[0.1] * 20))
    assert staleness(entry, record) is None
    assert changes(entry, record, {"driver": "560.1", "cuda": "12.4"}) == [
        "driver 550.1 -> 560.1", 'build options {"graph_optimization_level": "basic"} -> {}'
    ]
    assert accuracy_drift(entry, record.accuracy) == [
        "accuracy drift: output 'y' max_abs 1e-05 vs baseline 2.5e-06 (4.0x), still within tolerance"
    ]
    assert staleness(entry, make_record(shape=(8, 256), precision="fp16")) == (
        "workload changed: batch 1 -> 8; inputs.x.shape [1, 256] -> [8, 256]; outputs.y.shape [1, 10] -> [8, 10]; "
        "precision fp32 -> fp16"
    )
    earlier_probe = dataclasses.replace(entry, host_probe_ms=dataclasses.replace(entry.host_probe_ms, probe=None))
    assert staleness(earlier_probe, record) == (
        f"host probe changed: an earlier probe -> {host_probe.KIND} (its times are not comparable; record the "
        "baseline again with --trt-update-baselines)"
    )
