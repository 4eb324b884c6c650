"""The artifact cache in one process: keys, hits and misses, integrity, eviction, --trt-rebuild,
and a directory that cannot be written."""

from __future__ import annotations

import errno
import json
import os
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from filelock import FileLock

import pytest_trt.store.keys as keys_module
from examples.make_models import make_mlp
from pytest_trt.backends.base import Artifact
from pytest_trt.errors import CacheError
from pytest_trt.model import load_model
from pytest_trt.run.marks import model_spec as make_model_spec
from pytest_trt.store.arrays import decode_arrays, encode_arrays
from pytest_trt.store.cache import EngineCache
from pytest_trt.store.layout import ARTIFACT_FILE, MARKER_FILE, RECORD_FILE
from pytest_trt.store.sizes import parse_size
from pytest_trt.store.stats import CacheEvent, CacheOutcome, CacheStats

DEVICE = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


class Builder:
    """A build function that counts its calls and returns distinct bytes each time."""

    def __init__(self, payload: bytes = b"engine-bytes") -> None:
        self.payload = payload
        self.calls = 0

    def __call__(self) -> Artifact:
        self.calls += 1
        return Artifact(self.payload + b"#%d" % self.calls, {"builder": "test", "call": self.calls})


def load(artifact: Artifact) -> bytes:
    return artifact.data


@pytest.fixture
def warned() -> list[str]:
    """Messages the cache warned with (pass ``warn=warned.append``)."""
    return []


def save_external_mlp(folder: Path, doc: str = "") -> Path:
    """The example MLP with its weights in a separate file next to it."""
    folder.mkdir(parents=True, exist_ok=True)
    proto = make_mlp()
    proto.doc_string = doc or proto.doc_string
    path = folder / "mlp.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="mlp.weights", size_threshold=0)
    return path


def engine_parts(model_path: Path, *, runtime: str = "tensorrt 10.3.0", device: dict | None = None,
                 transform: str = "none", **mark: Any) -> dict[str, Any]:
    """Key parts the way the plugin makes them for an engine."""
    spec = make_model_spec(model_path, **mark)
    return {
        "model_hash": load_model(model_path).content_hash,
        "build": spec.build.as_dict(),
        "runtime_version": runtime,
        "device": device if device is not None else DEVICE,
        "transform": transform,
    }


def _entry_files(root: Path) -> list[Path]:
    """Files under a cache root other than its marker and lock files."""
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != "locks" and p.name != MARKER_FILE]


def entry_of(cache: EngineCache, kind: str, parts: dict[str, Any]) -> Path:
    return cache.entry_dir(kind, cache.key(kind, parts))


# ---- hit and miss -------------------------------------------------------------------------------


def test_miss_builds_and_stores_then_a_new_session_hits(tmp_path: Path) -> None:
    build = Builder()
    parts = {"model_hash": "ab" * 32, "build": {"precision": "fp16"}}
    first = EngineCache(tmp_path)
    value, event = first.get_or_build("engine", parts, build, load)
    assert (value, event.outcome, build.calls) == (b"engine-bytes#1", "miss", 1)
    assert event.size_bytes == len(value) and event.build_s > 0

    second = EngineCache(tmp_path)
    value, event = second.get_or_build("engine", parts, build, load)
    assert (value, event.outcome, build.calls) == (b"engine-bytes#1", "hit", 1)
    assert event.build_s == 0.0 and event.load_s > 0
    assert (second.stats.hits, second.stats.misses, second.stats.builds) == (1, 0, 0)
    assert (first.stats.hits, first.stats.misses, first.stats.builds) == (0, 1, 1)


def test_entry_record_says_what_went_into_it(tmp_path: Path) -> None:
    parts = {"model_hash": "cd" * 32, "build": {"precision": "fp32", "shapes": {"x": [8, 256]}}}
    cache = EngineCache(tmp_path)
    _, event = cache.get_or_build("engine", parts, Builder(), load)
    entry = tmp_path / "engine" / event.key[:2] / event.key
    assert sorted(p.name for p in entry.iterdir()) == [ARTIFACT_FILE, RECORD_FILE]
    record = json.loads((entry / RECORD_FILE).read_text())
    data = (entry / ARTIFACT_FILE).read_bytes()
    assert record["parts"] == parts and record["key"] == event.key and record["kind"] == "engine"
    assert record["size_bytes"] == len(data) == event.size_bytes
    assert record["metadata"] == {"builder": "test", "call": 1}
    assert record["schema"] == keys_module.SCHEMA_VERSION and record["build_s"] >= 0
    assert record["created"] == record["last_used"]
    assert list(record) == sorted(record)  # sorted keys: stable, diffable


def test_a_hit_updates_last_used(tmp_path: Path) -> None:
    parts = {"model_hash": "ef" * 32}
    EngineCache(tmp_path).get_or_build("engine", parts, Builder(), load)
    record_path = entry_of(EngineCache(tmp_path), "engine", parts) / RECORD_FILE
    record = json.loads(record_path.read_text())
    record["last_used"] = "2001-01-01T00:00:00+00:00"
    record_path.write_text(json.dumps(record))
    EngineCache(tmp_path).get_or_build("engine", parts, Builder(), load)
    assert json.loads(record_path.read_text())["last_used"] > "2020"


def test_key_ignores_dict_order_and_covers_kind_and_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EngineCache(None)
    a = cache.key("engine", {"x": 1, "build": {"p": "fp16", "s": [1, 2]}})
    assert a == cache.key("engine", {"build": {"s": [1, 2], "p": "fp16"}, "x": 1})
    assert a != cache.key("ort-model", {"x": 1, "build": {"p": "fp16", "s": [1, 2]}})
    monkeypatch.setattr(keys_module, "SCHEMA_VERSION", keys_module.SCHEMA_VERSION + 1)
    assert a != cache.key("engine", {"x": 1, "build": {"p": "fp16", "s": [1, 2]}})


@pytest.mark.parametrize(
    ("kind", "parts", "message"),
    [
        ("engine", {"path": Path("m.onnx")}, "cache key parts for 'engine' must be plain JSON data"),
        ("engine", {"x": float("nan")}, "must be plain JSON data"),
        ("Engine/../x", {}, "cache kind must be lower-case"),
        ("locks", {}, "not 'locks'"),
        ("engine", ["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_bad_key_input_is_a_clear_error(kind: str, parts: Any, message: str) -> None:
    with pytest.raises(CacheError, match=message.replace("(", r"\(").replace(")", r"\)")):
        EngineCache(None).key(kind, parts)


# ---- a miss for each key ingredient changed on its own -------------------------------------------


def _change_model_bytes(folder: Path) -> dict[str, Any]:
    save_external_mlp(folder, doc="same weights, different graph file")
    return engine_parts(folder / "mlp.onnx")


def _change_external_data(folder: Path) -> dict[str, Any]:
    weights = folder / "mlp.weights"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0x01
    weights.write_bytes(bytes(data))
    return engine_parts(folder / "mlp.onnx")


INGREDIENTS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "model bytes": _change_model_bytes,
    "external-data bytes": _change_external_data,
    "precision": lambda f: engine_parts(f / "mlp.onnx", precision="fp16"),
    "shapes": lambda f: engine_parts(f / "mlp.onnx", shapes={"x": (16, 256)}),
    "option workspace_mb": lambda f: engine_parts(f / "mlp.onnx", workspace_mb=512),
    "option optimization_level": lambda f: engine_parts(f / "mlp.onnx", optimization_level=5),
    "option hardware_compatibility": lambda f: engine_parts(f / "mlp.onnx", hardware_compatibility="ampere_plus"),
    "option version_compatible": lambda f: engine_parts(f / "mlp.onnx", version_compatible=True),
    "option builder_flags": lambda f: engine_parts(f / "mlp.onnx", builder_flags=("FP16",)),
    "option profiles": lambda f: engine_parts(
        f / "mlp.onnx", profiles={"x": ((1, 256), (8, 256), (32, 256))}),
    "option providers": lambda f: engine_parts(f / "mlp.onnx", providers=("CPUExecutionProvider",)),
    "option graph_optimization_level": lambda f: engine_parts(f / "mlp.onnx", graph_optimization_level="basic"),
    "runtime version": lambda f: engine_parts(f / "mlp.onnx", runtime="tensorrt 10.3.1"),
    "device fingerprint": lambda f: engine_parts(
        f / "mlp.onnx", device={"gpu": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0"}),
    "precision transform": lambda f: engine_parts(f / "mlp.onnx", transform="fp16-keep-io"),
}


@pytest.mark.parametrize("ingredient", list(INGREDIENTS))
def test_changing_one_key_ingredient_misses(tmp_path: Path, ingredient: str) -> None:
    folder = tmp_path / "model"
    save_external_mlp(folder)
    base = engine_parts(folder / "mlp.onnx")
    build = Builder()
    EngineCache(tmp_path / "cache").get_or_build("engine", base, build, load)
    assert EngineCache(tmp_path / "cache").get_or_build("engine", base, build, load)[1].outcome == "hit"

    changed = INGREDIENTS[ingredient](folder)
    assert changed != base
    _, event = EngineCache(tmp_path / "cache").get_or_build("engine", changed, build, load)
    assert event.outcome == "miss" and build.calls == 2


# ---- corruption -------------------------------------------------------------------------------


def _truncate(entry: Path) -> None:
    data = (entry / ARTIFACT_FILE).read_bytes()
    (entry / ARTIFACT_FILE).write_bytes(data[: len(data) // 2])


def _flip_byte(entry: Path) -> None:
    data = bytearray((entry / ARTIFACT_FILE).read_bytes())
    data[3] ^= 0xFF
    (entry / ARTIFACT_FILE).write_bytes(bytes(data))


def _set_record(entry: Path, **changes: Any) -> None:
    record = json.loads((entry / RECORD_FILE).read_text())
    record.update(changes)
    (entry / RECORD_FILE).write_text(json.dumps(record))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated artifact": (_truncate, "the record says"),
    "flipped byte": (_flip_byte, "does not match the recorded"),
    "missing artifact": (lambda e: (e / ARTIFACT_FILE).unlink(), f"{ARTIFACT_FILE} is missing"),
    "missing record": (lambda e: (e / RECORD_FILE).unlink(), f"{RECORD_FILE} is missing"),
    "garbage record": (lambda e: (e / RECORD_FILE).write_bytes(b"\x00{not json"), "is not valid JSON"),
    "record not an object": (lambda e: (e / RECORD_FILE).write_text("[1, 2]"), "is not a JSON object"),
    "record without checksum": (lambda e: _set_record(e, sha256=None), "has no valid 'sha256'"),
    "record of another entry": (lambda e: _set_record(e, key="0" * 64), "belongs to engine/000000000000"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_corrupt_entry_is_reported_removed_and_rebuilt(tmp_path: Path, warned: list[str], damage: str) -> None:
    parts = {"model_hash": "12" * 32}
    build = Builder()
    EngineCache(tmp_path).get_or_build("engine", parts, build, load)
    entry = entry_of(EngineCache(tmp_path), "engine", parts)
    spoil, reason = DAMAGE[damage]
    spoil(entry)

    cache = EngineCache(tmp_path, warn=warned.append)
    value, event = cache.get_or_build("engine", parts, build, load)
    assert (value, event.outcome, build.calls) == (b"engine-bytes#2", "rebuilt", 2)
    assert len(warned) == 1 and str(entry) in warned[0] and reason in warned[0]
    assert (cache.stats.corrupt, cache.stats.misses, cache.stats.builds) == (1, 1, 1)
    # The rebuilt entry is whole again.
    assert EngineCache(tmp_path, warn=warned.append).get_or_build("engine", parts, build, load)[1].outcome == "hit"
    assert len(warned) == 1


def test_load_failure_on_a_stored_entry_counts_as_corrupt(tmp_path: Path, warned: list[str]) -> None:
    parts = {"model_hash": "34" * 32}
    build = Builder()
    EngineCache(tmp_path).get_or_build("engine", parts, build, load)

    def picky_load(artifact: Artifact) -> bytes:
        if artifact.data.endswith(b"#1"):
            raise RuntimeError("deserializeCudaEngine returned None")
        return artifact.data

    value, event = EngineCache(tmp_path, warn=warned.append).get_or_build("engine", parts, build, picky_load)
    assert (value, event.outcome) == (b"engine-bytes#2", "rebuilt")
    assert "the backend could not load it: RuntimeError: deserializeCudaEngine returned None" in warned[0]


def test_default_warning_survives_warnings_as_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parts = {"model_hash": "56" * 32}
    EngineCache(tmp_path).get_or_build("engine", parts, Builder(), load)
    _flip_byte(entry_of(EngineCache(tmp_path), "engine", parts))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert EngineCache(tmp_path).get_or_build("engine", parts, Builder(), load)[1].outcome == "rebuilt"
    assert "CacheWarning: pytest-trt: corrupt cache entry" in capsys.readouterr().err


def test_load_failure_on_a_fresh_build_propagates_and_stores_nothing(tmp_path: Path, warned: list[str]) -> None:
    def broken_load(artifact: Artifact) -> bytes:
        raise RuntimeError("no such engine")

    build = Builder()
    with pytest.raises(RuntimeError, match="no such engine"):
        EngineCache(tmp_path).get_or_build("engine", {"m": 1}, build, broken_load)
    assert build.calls == 1
    assert not os.path.lexists(entry_of(EngineCache(tmp_path), "engine", {"m": 1}))
    # A later run builds again and fails the same way: a build failure, never a damaged entry.
    cache = EngineCache(tmp_path, warn=warned.append)
    with pytest.raises(RuntimeError, match="no such engine"):
        cache.get_or_build("engine", {"m": 1}, build, broken_load)
    assert (build.calls, cache.stats.corrupt, warned) == (2, 0, [])


def test_build_failure_propagates_and_stores_nothing(tmp_path: Path) -> None:
    def failing_build() -> Artifact:
        raise ValueError("parser error in node 3")

    cache = EngineCache(tmp_path)
    with pytest.raises(ValueError, match="parser error"):
        cache.get_or_build("engine", {"m": 1}, failing_build, load)
    assert not cache.entry_dir("engine", cache.key("engine", {"m": 1})).exists()
    # The lock was released: the next attempt builds.
    assert cache.get_or_build("engine", {"m": 1}, Builder(), load)[1].outcome == "miss"


def test_build_must_return_an_artifact(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="build for cache kind 'engine' must return an Artifact"):
        EngineCache(tmp_path).get_or_build("engine", {"m": 1}, lambda: b"raw bytes", load)  # type: ignore[arg-type, return-value]


def test_artifact_metadata_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="artifact metadata for cache kind 'engine'"):
        EngineCache(tmp_path).get_or_build("engine", {"m": 1}, lambda: Artifact(b"x", {"when": object()}), load)


# ---- small artifacts ----------------------------------------------------------------------------


def test_put_and_get_bytes_round_trip_reference_outputs(tmp_path: Path) -> None:
    outputs = {"y": np.arange(20, dtype=np.float32).reshape(2, 10), "ids": np.array([3, 1], dtype=np.int64)}
    parts = {"model_hash": "56" * 32, "inputs_hash": "78" * 32, "reference": "onnxruntime 1.20 cpu"}
    writer = EngineCache(tmp_path)
    assert writer.get_bytes("reference", parts) is None
    writer.put_bytes("reference", parts, encode_arrays(outputs), {"outputs": ["y", "ids"]}, build_s=2.0)

    reader = EngineCache(tmp_path)
    data = reader.get_bytes("reference", parts)
    assert data is not None
    restored = decode_arrays(data)
    assert set(restored) == {"y", "ids"} and all(np.array_equal(restored[k], outputs[k]) for k in outputs)
    assert (reader.stats.hits, writer.stats.misses, writer.stats.builds, writer.stats.build_s) == (1, 1, 1, 2.0)
    assert 1.9 < reader.stats.saved_s <= 2.0


def test_get_bytes_on_a_corrupt_entry_warns_and_misses(tmp_path: Path, warned: list[str]) -> None:
    parts = {"model_hash": "9a" * 32}
    EngineCache(tmp_path).put_bytes("ort-model", parts, b"optimized model bytes")
    _flip_byte(entry_of(EngineCache(tmp_path), "ort-model", parts))
    cache = EngineCache(tmp_path, warn=warned.append)
    assert cache.get_bytes("ort-model", parts) is None
    assert len(warned) == 1 and "corrupt cache entry" in warned[0]
    assert not entry_of(cache, "ort-model", parts).exists()


def test_update_bytes_merges_under_the_lock(tmp_path: Path, warned: list[str]) -> None:
    parts = {"runtime_version": "tensorrt 10.3.0", "device": DEVICE}
    seen: list[bytes | None] = []

    def merge_with(new: bytes) -> Callable[[bytes | None], bytes]:
        def merge(old: bytes | None) -> bytes:
            seen.append(old)
            return (old or b"") + new
        return merge

    assert EngineCache(tmp_path).update_bytes("timing-cache", parts, merge_with(b"A")) == b"A"
    assert EngineCache(tmp_path).update_bytes("timing-cache", parts, merge_with(b"B")) == b"AB"
    assert seen == [None, b"A"]
    _truncate(entry_of(EngineCache(tmp_path), "timing-cache", parts))
    assert EngineCache(tmp_path, warn=warned.append).update_bytes("timing-cache", parts, merge_with(b"C")) == b"C"
    assert len(warned) == 1 and "corrupt cache entry" in warned[0]


# ---- no persistent cache, unwritable directory ---------------------------------------------------


def test_no_root_builds_every_time_and_stores_nothing(warned: list[str]) -> None:
    cache = EngineCache(None, warn=warned.append)
    build = Builder()
    assert cache.get_or_build("engine", {"m": 1}, build, load)[1].outcome == "uncached"
    assert cache.get_or_build("engine", {"m": 1}, build, load)[1].outcome == "uncached"
    assert build.calls == 2 and cache.stats.builds == 2 and cache.stats.misses == 0
    cache.put_bytes("reference", {"m": 1}, b"x")
    assert cache.get_bytes("reference", {"m": 1}) is None
    assert cache.update_bytes("timing-cache", {"m": 1}, lambda old: b"new" if old is None else b"?") == b"new"
    assert (cache.clear(), cache.evict(), warned) == (0, 0, [])
    assert cache.stats.summary_line().startswith("engine cache off")


def _assert_degraded(cache: EngineCache, warned: list[str], reason: str, first: str = "uncached") -> None:
    """The test's artifact still arrives, every time; the cache warns once and stays off."""
    build = Builder()
    for outcome in (first, "uncached"):
        value, event = cache.get_or_build("engine", {"m": 1}, build, load)
        assert value.startswith(b"engine-bytes") and event.outcome == outcome
    cache.put_bytes("reference", {"m": 1}, b"x")
    assert cache.root is None
    assert len(warned) == 1, warned
    assert "turned off for this session" in warned[0] and reason in warned[0]


def test_root_that_cannot_be_a_directory_degrades_with_one_warning(tmp_path: Path, warned: list[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cache = EngineCache(blocker / "cache", warn=warned.append)
    assert str(blocker / "cache") in warned[0]
    _assert_degraded(cache, warned, "cannot be written")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: chmod cannot make a directory read-only")
def test_read_only_root_degrades_with_one_warning(tmp_path: Path, warned: list[str]) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o500)
    try:
        _assert_degraded(EngineCache(root, warn=warned.append), warned, "cannot be written")
    finally:
        root.chmod(0o700)


def _disk_full(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_at_start_degrades_with_one_warning(
    tmp_path: Path, warned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "replace", _disk_full)
    _assert_degraded(EngineCache(tmp_path / "cache", warn=warned.append), warned, "No space left on device")


def test_disk_filling_up_mid_session_degrades_and_leaves_no_half_entry(
    tmp_path: Path, warned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = EngineCache(tmp_path, warn=warned.append)
    monkeypatch.setattr(os, "replace", _disk_full)
    _assert_degraded(cache, warned, "No space left on device", first="miss")
    monkeypatch.undo()
    assert _entry_files(tmp_path) == []
    assert EngineCache(tmp_path).get_or_build("engine", {"m": 1}, Builder(), load)[1].outcome == "miss"


# ---- --trt-rebuild ----------------------------------------------------------------------------


def test_rebuild_replaces_each_entry_once_per_session(tmp_path: Path) -> None:
    parts = {"model_hash": "bc" * 32}
    build = Builder()
    EngineCache(tmp_path).get_or_build("engine", parts, build, load)

    cache = EngineCache(tmp_path, rebuild=True)
    value, event = cache.get_or_build("engine", parts, build, load)
    assert (value, event.outcome, build.calls) == (b"engine-bytes#2", "replaced", 2)
    assert cache.get_or_build("engine", parts, build, load)[1].outcome == "hit"
    assert build.calls == 2
    # Entries this session never asked for stay, and a key not on disk is a plain miss.
    assert cache.get_or_build("engine", {"other": 1}, build, load)[1].outcome == "miss"
    assert EngineCache(tmp_path).get_or_build("engine", parts, build, load)[0] == b"engine-bytes#2"


def test_rebuild_serves_an_entry_another_worker_rebuilt_during_this_run(tmp_path: Path) -> None:
    parts = {"model_hash": "de" * 32}
    build = Builder()
    EngineCache(tmp_path).get_or_build("engine", parts, build, load)
    run_start = datetime.now(timezone.utc).timestamp()
    EngineCache(tmp_path, rebuild=True, session_start=run_start).get_or_build("engine", parts, build, load)
    other_worker = EngineCache(tmp_path, rebuild=True, session_start=run_start)
    assert other_worker.get_or_build("engine", parts, build, load)[1].outcome == "hit"
    assert build.calls == 2


def test_rebuild_ignores_stored_bytes_until_they_are_replaced(tmp_path: Path) -> None:
    parts = {"model_hash": "f0" * 32}
    EngineCache(tmp_path).put_bytes("reference", parts, b"old outputs")
    cache = EngineCache(tmp_path, rebuild=True)
    assert cache.get_bytes("reference", parts) is None
    cache.put_bytes("reference", parts, b"new outputs")
    assert cache.get_bytes("reference", parts) == b"new outputs"


# ---- clear and eviction -------------------------------------------------------------------------


def test_clear_removes_every_entry_and_leftover_temp_folders(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    for i in range(3):
        cache.get_or_build("engine", {"i": i}, Builder(), load)
    cache.put_bytes("reference", {"i": 0}, b"outputs")
    entry = entry_of(cache, "engine", {"i": 0})
    leftover = entry.parent / f".tmp-{entry.name}-killedwriter"
    leftover.mkdir()
    (leftover / ARTIFACT_FILE).write_bytes(b"half")
    assert EngineCache(tmp_path).clear() == 4
    assert not leftover.exists()
    assert _entry_files(tmp_path) == []
    assert EngineCache(tmp_path).get_or_build("engine", {"i": 0}, Builder(), load)[1].outcome == "miss"


def _populate(root: Path, ages_minutes: dict[str, int], size: int = 1000) -> dict[str, Path]:
    """One equal-sized entry per name, last used ``age`` minutes ago."""
    cache = EngineCache(root)
    now = datetime.now(timezone.utc)
    entries = {}
    for name, age in ages_minutes.items():
        parts = {"name": name}
        data = name.encode().ljust(size, b".")
        cache.get_or_build("engine", parts, lambda data=data: Artifact(data), load)
        entries[name] = entry_of(cache, "engine", parts)
        _set_record(entries[name], last_used=(now - timedelta(minutes=age)).isoformat())
    return entries


def _entry_size(entry: Path) -> int:
    return sum(p.stat().st_size for p in entry.iterdir())


def test_eviction_removes_least_recently_used_first(tmp_path: Path) -> None:
    entries = _populate(tmp_path, {"c": 30, "a": 50, "d": 10, "b": 40})
    cache = EngineCache(tmp_path, max_size_bytes=2 * _entry_size(entries["a"]) + 10)
    assert cache.evict() == 2
    assert {n for n, e in entries.items() if e.exists()} == {"c", "d"}
    assert cache.stats.evicted == 2
    assert cache.evict() == 0


def test_eviction_spares_entries_in_use(tmp_path: Path) -> None:
    entries = _populate(tmp_path, {"oldest": 50, "old": 40, "newer": 30, "newest": 20})
    cache = EngineCache(tmp_path, max_size_bytes=_entry_size(entries["newest"]) + 10)
    cache.get_or_build("engine", {"name": "oldest"}, Builder(), load)  # used by this session
    with FileLock(tmp_path / "locks" / f"{cache.key('engine', {'name': 'old'})}.lock"):  # another process
        assert cache.evict() == 2
    assert {n for n, e in entries.items() if e.exists()} == {"oldest", "old"}


def test_eviction_spares_entries_used_since_the_run_started(tmp_path: Path) -> None:
    entries = _populate(tmp_path, {"before": 50, "during": 0})
    run_start = (datetime.now(timezone.utc) - timedelta(minutes=5)).timestamp()
    assert EngineCache(tmp_path, max_size_bytes=0, session_start=run_start).evict() == 1
    assert not entries["before"].exists() and entries["during"].exists()


def test_no_max_size_never_evicts(tmp_path: Path) -> None:
    _populate(tmp_path, {"a": 99})
    assert EngineCache(tmp_path).evict() == 0


# ---- sizes and the summary line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("123", 123), ("2GB", 2_000_000_000), ("500MB", 500_000_000), ("1.5G", 1_500_000_000),
     ("64k", 64_000), ("2GiB", 2 * 1024**3), ("500 MiB", 500 * 1024**2), ("1Ti", 1024**4), ("0", 0)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "-5MB", "2 XB", "1e9", "2iB", "five"])
def test_parse_size_rejects_nonsense_naming_the_option(text: str) -> None:
    with pytest.raises(CacheError, match="--trt-cache-max-size"):
        parse_size(text)


def test_summary_line_and_stats_from_workers() -> None:
    stats = CacheStats(root="/c", hits=3, misses=1, builds=1, build_s=2.314, saved_s=6.93)
    assert stats.summary_line() == "engine cache /c: 3 hits, 1 miss (1 build, 2.31 s), 0 corrupt; saved ~6.9 s"
    total = CacheStats(**stats.as_dict())
    total.add(CacheStats(root="/c", hits=1, misses=1, builds=1, build_s=1.0, corrupt=1, evicted=2))
    assert total.summary_line() == (
        "engine cache /c: 4 hits, 2 misses (2 builds, 3.31 s), 1 corrupt, 2 evicted; saved ~6.9 s"
    )
    assert CacheEvent("engine", "k", CacheOutcome.HIT).as_dict() == {
        "kind": "engine", "key": "k", "outcome": "hit", "build_s": 0.0, "load_s": 0.0,
        "size_bytes": 0, "saved_s": 0.0,
    }
