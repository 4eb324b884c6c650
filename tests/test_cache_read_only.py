"""A cache prepared elsewhere and mounted read-only (a CI job's prepared cache): its entries are
served, nothing is written, and writing is off with one warning. Read-only is simulated with an
audit hook that fails every write under the root (the suite runs as root in CI, and root ignores
permission bits); the real chmod case runs where the tests do not run as root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from read_only_fs import read_only

from pytest_trt.backends.base import Artifact
from pytest_trt.store.cache import CacheError, EngineCache

ENTRIES = {f"model-{i}": f"engine {i}".encode() for i in range(3)}


class Builder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Artifact:
        self.calls += 1
        return Artifact(b"built now")


def load(artifact: Artifact) -> bytes:
    return artifact.data


def fill(root: Path) -> None:
    cache = EngineCache(root)
    for name, data in ENTRIES.items():
        cache.get_or_build("engine", {"name": name}, lambda data=data: Artifact(data), load)
    cache.put_bytes("reference", {"name": "model-0"}, b"outputs")
    cache.update_bytes("timing-cache", {"gpu": "x"}, lambda old: b"timings")


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under root with its size, mtime and sha256: a write of any kind changes it."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_a_read_only_filled_cache_serves_its_entries_and_writes_nothing(tmp_path: Path) -> None:
    fill(tmp_path)
    before = snapshot(tmp_path)
    warned: list[str] = []
    with read_only(tmp_path) as refused:
        cache = EngineCache(tmp_path, warn=warned.append)
        refused_at_start = list(refused)
        build = Builder()
        for name, data in ENTRIES.items():
            value, event = cache.get_or_build("engine", {"name": name}, build, load)
            assert (value, event.outcome) == (data, "hit")
        assert cache.get_bytes("reference", {"name": "model-0"}) == b"outputs"
        assert cache.update_bytes("timing-cache", {"gpu": "x"}, lambda old: (old or b"") + b"+new") == b"timings+new"
        cache.put_bytes("reference", {"name": "model-9"}, b"not kept")
        assert cache.get_or_build("engine", {"name": "new"}, build, load)[1].outcome == "miss"
        cache.max_size_bytes = 0
        assert cache.evict() == 0
        assert refused[len(refused_at_start):] == []  # after the start-up probe, no write was even tried
    assert build.calls == 1  # only the entry that was not there
    assert (cache.stats.hits, cache.stats.misses, cache.stats.corrupt) == (4, 1, 0)  # update_bytes is not counted
    assert snapshot(tmp_path) == before
    assert len(warned) == 1, warned
    assert f"engine cache {tmp_path} is read-only" in warned[0] and "Read-only file system" in warned[0]
    assert cache.root == tmp_path


def test_a_damaged_entry_in_a_read_only_cache_is_rebuilt_and_left_in_place(tmp_path: Path) -> None:
    fill(tmp_path)
    cache = EngineCache(tmp_path)
    entry = cache.entry_dir("engine", cache.key("engine", {"name": "model-1"}))
    (entry / "artifact.bin").write_bytes(b"engine 9")
    before = snapshot(tmp_path)
    warned: list[str] = []
    with read_only(tmp_path):
        cache = EngineCache(tmp_path, warn=warned.append)
        value, event = cache.get_or_build("engine", {"name": "model-1"}, Builder(), load)
    assert (value, event.outcome, cache.stats.corrupt) == (b"built now", "rebuilt", 1)
    assert snapshot(tmp_path) == before
    assert len(warned) == 2 and "corrupt cache entry" in warned[1] and "not kept" in warned[1]


def test_clear_of_a_read_only_cache_is_a_clear_error(tmp_path: Path) -> None:
    fill(tmp_path)
    with read_only(tmp_path):
        cache = EngineCache(tmp_path, warn=lambda message: None)
        with pytest.raises(CacheError, match=f"--trt-cache-clear: the engine cache {tmp_path} is read-only"):
            cache.clear()


def test_the_work_folder_of_a_read_only_cache_is_outside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(tmp_path / "cache")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with read_only(tmp_path / "cache"):
        cache = EngineCache(tmp_path / "cache", warn=lambda message: None)
        work = cache.work_dir()
        (work / "converted.onnx").write_bytes(b"model")
        assert work.parent == tmp_path / "tmp" / f"pytest-trt-work-{os.getuid()}"
        cache.close()
    assert not work.exists()


def test_an_empty_read_only_folder_turns_the_cache_off(tmp_path: Path) -> None:
    warned: list[str] = []
    with read_only(tmp_path):
        cache = EngineCache(tmp_path, warn=warned.append)
        assert cache.get_or_build("engine", {"m": 1}, Builder(), load)[1].outcome == "uncached"
    assert cache.root is None and len(warned) == 1 and "turned off for this session" in warned[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="running as root: chmod cannot make a folder read-only")
def test_a_chmod_read_only_filled_cache_serves_its_entries(tmp_path: Path) -> None:
    fill(tmp_path)
    before = snapshot(tmp_path)
    folders = [tmp_path, *(p for p in tmp_path.rglob("*") if p.is_dir())]
    for path in [*tmp_path.rglob("*"), tmp_path]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        warned: list[str] = []
        cache = EngineCache(tmp_path, warn=warned.append)
        for name in ENTRIES:
            assert cache.get_or_build("engine", {"name": name}, Builder(), load)[1].outcome == "hit"
        assert len(warned) == 1 and "is read-only" in warned[0]
    finally:
        for path in folders:
            path.chmod(0o755)
    assert snapshot(tmp_path) == before
