"""Atomic writes: the whole new file or the old one, no temp file left behind by an exception, and
the temp files of writers that died removed, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_trt.store import files


def test_write_atomic_replaces_the_whole_file(tmp_path) -> None:
    target = tmp_path / "sub" / "data.json"
    files.write_atomic(target, "first")
    files.write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["data.json"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp(tmp_path) -> None:
    target = tmp_path / "data.bin"
    files.write_atomic(target, b"old")

    def half_then_fail(stream) -> None:
        stream.write(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        files.write_atomic_with(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_an_interrupted_rename_leaves_no_temp(tmp_path, monkeypatch) -> None:
    def interrupted(source, destination) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(tmp_path / "data.bin", b"new")
    assert list(tmp_path.iterdir()) == []


def test_temp_files_carry_the_writers_pid(tmp_path, monkeypatch) -> None:
    seen = []

    def spy(source, destination) -> None:
        seen.append(Path(source).name)
        real_replace(source, destination)

    real_replace = files.os.replace
    monkeypatch.setattr(files.os, "replace", spy)
    files.write_atomic(tmp_path / "out" / "data.json", b"x", temp_dir=tmp_path)
    (name,) = seen
    assert name.startswith(f".data.json.{os.getpid()}.") and name.endswith(".tmp")
    assert (tmp_path / "out" / "data.json").read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


@pytest.mark.skipif(sys.platform == "win32", reason="pids are not checked on Windows")
def test_stale_temps_of_dead_writers_are_removed_and_nothing_else(tmp_path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    stale = tmp_path / f".base.json.{dead}.k2x_9abc.tmp"
    live = tmp_path / f".base.json.{alive}.abcdefgh.tmp"
    old_live = tmp_path / f".other.json.{alive}.zzzzzzzz.tmp"
    others = [
        tmp_path / "base.json",  # a real file
        tmp_path / f"base.json.{dead}.abcdefgh.tmp",  # not a dotted temp name
        tmp_path / f".base.json.{dead}.abcdefgh.tmp.keep",
        tmp_path / ".base.json.abcdefgh.tmp",  # no pid in it: not ours to judge
        tmp_path / "notes.txt",
    ]
    for path in (stale, live, old_live, *others):
        path.write_text("x")
    os.utime(old_live, (time.time() - 2 * files.STALE_AFTER_S,) * 2)
    folder = tmp_path / f".dir.json.{dead}.abcdefgh.tmp"
    folder.mkdir()  # a folder of that name is not a temp file
    link = tmp_path / f".link.json.{dead}.abcdefgh.tmp"
    link.symlink_to(tmp_path / "notes.txt")  # nor is a link, whatever it points at
    assert sorted(files.remove_stale_temps(tmp_path)) == sorted([stale, old_live])
    assert not stale.exists() and not old_live.exists()
    assert live.exists() and folder.is_dir() and link.is_symlink() and all(p.exists() for p in others)
    assert (tmp_path / "notes.txt").read_text() == "x"


def test_removing_temps_of_a_missing_folder_does_nothing(tmp_path) -> None:
    assert files.remove_stale_temps(tmp_path / "absent") == []


def test_an_owner_record_temp_carries_the_pid_and_is_removed_once_its_writer_is_gone(tmp_path, monkeypatch) -> None:
    # A kill between writing an owner record's temp file and its rename left
    # ".lock.owner.<random>.tmp" that no later run recognized.
    from pytest_trt.store import owners

    seen = []
    real_replace = files.os.replace

    def spy(source, destination) -> None:
        seen.append(Path(source).name)
        real_replace(source, destination)

    monkeypatch.setattr(files.os, "replace", spy)
    owners.write_owner_file(tmp_path / "lock.owner", owners.ProcessOwner.current())
    (name,) = seen
    assert name.startswith(f".lock.owner.{os.getpid()}.") and name.endswith(".tmp")
    left = tmp_path / name.replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    left.write_bytes(b"{}")
    assert files.remove_stale_temps(tmp_path) == [left]
    assert [p.name for p in tmp_path.iterdir()] == ["lock.owner"]
