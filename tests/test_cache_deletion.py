"""What the engine cache may delete: only what it can show it wrote. A folder it did not make (no
marker) is refused, a symbolic link is never followed, and an entry is removed only when its
folder holds nothing but the files the cache writes (and, for clear and eviction, its record is
the cache's own record for that path)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from pytest_trt.backends.base import Artifact
from pytest_trt.store.cache import CacheError, EngineCache
from pytest_trt.store.folder import CacheMode

MARKER_FILE = "PYTEST_TRT_CACHE"  # named in the docs: users meet it

# The folders of the issue: a personal folder that someone pointed the cache at.
PERSONAL_FILES = {
    "photos/20/2023-summer/img.jpg": b"\xff\xd8 a photo",
    "backups/20/20240101/db.sql": b"CREATE TABLE t (x int);",
    "mail/in/inbox-2024/msg": b"From: someone",
}


def build(data: bytes = b"engine") -> Artifact:
    return Artifact(data)


def load(artifact: Artifact) -> bytes:
    return artifact.data


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def tree(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root`` (links not followed) with its bytes, or its link target."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
    return found


def fake_entry(root: Path, kind: str, data: bytes = b"not an engine", key: str = "ab" * 32) -> Path:
    """A folder laid out and recorded exactly like a cache entry."""
    entry = root / kind / key[:2] / key
    entry.mkdir(parents=True)
    (entry / "artifact.bin").write_bytes(data)
    record = {"schema": 1, "kind": kind, "key": key, "size_bytes": len(data),
              "sha256": hashlib.sha256(data).hexdigest(), "created": "2024-01-01T00:00:00+00:00",
              "last_used": "2024-01-01T00:00:00+00:00"}
    (entry / "record.json").write_text(json.dumps(record))
    return entry


# ---- the marker ---------------------------------------------------------------------------------


def test_a_new_folder_and_an_empty_folder_get_the_marker(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for root in (tmp_path / "new" / "cache", empty):
        EngineCache(root)
        marker = json.loads((root / MARKER_FILE).read_text())
        assert marker["format"] == "pytest-trt engine cache" and marker["marker_version"] == 1


def test_a_folder_another_process_is_marking_counts_as_empty(tmp_path: Path) -> None:
    # Two runs starting on one new folder: one may see the other's marker temp file.
    (tmp_path / f".{MARKER_FILE}.x1y2z3.tmp").write_bytes(b"")
    cache = EngineCache(tmp_path)
    assert cache.root == tmp_path and (tmp_path / MARKER_FILE).is_file()


def test_a_folder_with_files_and_no_marker_is_refused_and_left_untouched(tmp_path: Path) -> None:
    write_files(tmp_path, PERSONAL_FILES)
    before = tree(tmp_path)
    with pytest.raises(CacheError) as refused:
        EngineCache(tmp_path, max_size_bytes=1)
    message = str(refused.value)
    assert str(tmp_path) in message and f"has no {MARKER_FILE} marker" in message
    assert "--trt-engine-cache" in message and "older pytest-trt" not in message
    assert tree(tmp_path) == before


def test_an_older_unmarked_cache_is_refused_with_a_hint(tmp_path: Path) -> None:
    EngineCache(tmp_path).get_or_build("engine", {"m": 1}, build, load)
    (tmp_path / MARKER_FILE).unlink()
    before = tree(tmp_path)
    with pytest.raises(CacheError, match="looks like a cache made by an older pytest-trt"):
        EngineCache(tmp_path)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("marker", [b"{not json", b'{"format": "something else"}', b"[]"])
def test_a_marker_that_is_not_ours_turns_the_cache_off_and_leaves_the_folder_alone(tmp_path: Path, marker: bytes) -> None:
    # A damaged cache never fails a run (it used to be a CacheError, a usage error of the run).
    EngineCache(tmp_path).get_or_build("engine", {"m": 1}, build, load)
    (tmp_path / MARKER_FILE).write_bytes(marker)
    before = tree(tmp_path)
    warned: list[str] = []
    cache = EngineCache(tmp_path, max_size_bytes=0, warn=warned.append)
    assert cache.root is None and cache.mode is CacheMode.OFF
    assert cache.get_or_build("engine", {"m": 1}, build, load)[1].outcome == "uncached"
    assert (cache.clear(), cache.evict()) == (0, 0)
    cache.close()
    assert len(warned) == 1 and f"engine cache {tmp_path} turned off" in warned[0] and MARKER_FILE in warned[0]
    assert tree(tmp_path) == before


def test_a_marker_that_is_a_link_turns_the_cache_off(tmp_path: Path) -> None:
    other = tmp_path / "other"
    EngineCache(other)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / MARKER_FILE).symlink_to(other / MARKER_FILE)
    warned: list[str] = []
    assert EngineCache(tmp_path / "cache", warn=warned.append).root is None
    assert len(warned) == 1 and "a symbolic link, not a marker file" in warned[0]


def test_clear_and_eviction_refuse_a_cache_whose_marker_went_away(tmp_path: Path) -> None:
    warned: list[str] = []
    cache = EngineCache(tmp_path, max_size_bytes=0, warn=warned.append)
    EngineCache(tmp_path).get_or_build("engine", {"m": 1}, build, load)
    (tmp_path / MARKER_FILE).unlink()
    before = tree(tmp_path)
    with pytest.raises(CacheError, match=f"refusing to clear {tmp_path}: it has no {MARKER_FILE} marker"):
        cache.clear()
    assert cache.evict() == 0
    assert len(warned) == 1 and f"not evicting anything from {tmp_path}" in warned[0]
    assert tree(tmp_path) == before


# ---- clear and eviction in a marked cache ---------------------------------------------------------


def test_clear_removes_only_entries_it_can_show_it_wrote(tmp_path: Path) -> None:
    warned: list[str] = []
    cache = EngineCache(tmp_path, warn=warned.append)
    ours = []
    for i in range(2):
        cache.get_or_build("engine", {"i": i}, build, load)
        ours.append(cache.entry_dir("engine", cache.key("engine", {"i": i})).relative_to(tmp_path).as_posix())
    write_files(tmp_path, PERSONAL_FILES)  # copied into the cache folder by someone
    # Shaped like entries, but not the cache's: another entry's record; an extra file beside ours.
    borrowed = fake_entry(tmp_path, "engine", key="cd" * 32)
    record = json.loads((borrowed / "record.json").read_text())
    (borrowed / "record.json").write_text(json.dumps(dict(record, key="ef" * 32)))
    crowded = fake_entry(tmp_path, "engine", key="12" * 32)
    (crowded / "notes.txt").write_text("mine")
    before = tree(tmp_path)

    assert cache.clear() == 2
    expected = {n: d for n, d in before.items() if not n.startswith((*ours, "locks/"))}
    assert {n: d for n, d in tree(tmp_path).items() if not n.startswith("locks/")} == expected
    assert len(warned) == 1 and "left 2 item(s)" in warned[0]
    assert str(borrowed) in warned[0] and f"{crowded} (a folder holding files the cache did not write (notes.txt))" in warned[0]


def test_clear_never_deletes_through_a_symlinked_kind_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    fake_entry(outside, "engine")  # looks exactly like a cache entry, but lives outside the cache
    write_files(outside / "engine", {"ab/notes.txt": b"keep me"})
    root = tmp_path / "cache"
    warned: list[str] = []
    cache = EngineCache(root, warn=warned.append)
    cache.get_or_build("onnxruntime", {"m": 1}, build, load)
    (root / "engine").symlink_to(outside / "engine", target_is_directory=True)
    before = tree(outside)

    assert cache.clear() == 1  # the real entry
    assert tree(outside) == before
    assert (root / "engine").is_symlink()
    assert len(warned) == 1 and "a symbolic link, not followed" in warned[0]


@pytest.mark.parametrize("level", ["kind", "shard", "entry"])
def test_a_symlinked_folder_is_never_read_written_or_deleted_through(tmp_path: Path, level: str) -> None:
    root, outside = tmp_path / "cache", tmp_path / "outside"
    warned: list[str] = []
    cache = EngineCache(root, warn=warned.append)
    key = cache.key("engine", {"m": 1})
    planted = fake_entry(outside, "engine", data=b"planted", key=key)
    link = {"kind": root / "engine", "shard": root / "engine" / key[:2], "entry": root / "engine" / key[:2] / key}[level]
    target = {"kind": outside / "engine", "shard": planted.parent, "entry": planted}[level]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    before = tree(outside)

    value, event = cache.get_or_build("engine", {"m": 1}, lambda: build(b"fresh"), load)
    assert (value, event.outcome) == (b"fresh", "uncached")  # not the planted bytes, nothing stored
    cache.put_bytes("engine", {"m": 1}, b"more")
    assert cache.clear() == 0
    cache.max_size_bytes = 0
    assert cache.evict() == 0
    assert tree(outside) == before and link.is_symlink()
    assert any(str(link) in w and "does not read, write or delete through it" in w for w in warned)


def test_a_damaged_entry_holding_a_file_the_cache_did_not_write_is_left_alone(tmp_path: Path) -> None:
    warned: list[str] = []
    EngineCache(tmp_path).get_or_build("engine", {"m": 1}, build, load)
    cache = EngineCache(tmp_path, warn=warned.append)
    entry = cache.entry_dir("engine", cache.key("engine", {"m": 1}))
    (entry / "artifact.bin").write_bytes(b"damaged")
    (entry / "thesis.tex").write_text("\\documentclass{article}")

    value, event = cache.get_or_build("engine", {"m": 1}, lambda: build(b"rebuilt"), load)
    assert (value, event.outcome) == (b"rebuilt", "rebuilt")
    assert (entry / "thesis.tex").read_text() == "\\documentclass{article}"
    assert (entry / "artifact.bin").read_bytes() == b"damaged"
    assert any("thesis.tex" in w and "did not write" in w for w in warned)
    assert cache.root is not None  # the rest of the cache stays on


def test_eviction_removes_only_entries_with_their_own_record(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path, max_size_bytes=0, session_start=2e9)
    EngineCache(tmp_path).get_or_build("engine", {"m": 1}, build, load)
    write_files(tmp_path, PERSONAL_FILES)
    unrecorded = fake_entry(tmp_path, "engine", key="34" * 32)
    (unrecorded / "record.json").write_text("{}")
    before = {n: d for n, d in tree(tmp_path).items() if not n.startswith(("engine/", "locks/"))}
    before_unrecorded = tree(unrecorded)

    assert cache.evict() == 1
    assert {n: d for n, d in tree(tmp_path).items() if not n.startswith(("engine/", "locks/"))} == before
    assert tree(unrecorded) == before_unrecorded


@pytest.mark.parametrize("how", ["clear", "evict"])
def test_an_entry_whose_artifact_is_a_folder_is_left_in_place_and_named(tmp_path: Path, how: str) -> None:
    # unlink cannot remove a folder: moved aside, it would lie under a temp name, unmentioned.
    warned: list[str] = []
    EngineCache(tmp_path).get_or_build("engine", {"m": 1}, build, load)
    cache = EngineCache(tmp_path, warn=warned.append, max_size_bytes=0, session_start=2e9)
    entry = cache.entry_dir("engine", cache.key("engine", {"m": 1}))
    (entry / "artifact.bin").unlink()
    (entry / "artifact.bin").mkdir()
    (entry / "artifact.bin" / "data").write_text("someone's")

    assert (cache.clear() if how == "clear" else cache.evict()) == 0
    assert (entry / "artifact.bin" / "data").read_text() == "someone's"
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no .tmp-<key>-removed-* beside it
    assert any(str(entry) in w and "artifact.bin is a folder" in w for w in warned), warned
