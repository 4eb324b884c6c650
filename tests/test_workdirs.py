"""Per-process work folders: made with an owner record, removed by their process, and after a
kill by a later run on the same host; anything without our owner record, or whose owner may still
be running, is left alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_trt.store import workdirs
from pytest_trt.store.owners import Liveness, ProcessOwner, read_owner_file, write_owner_file


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def planted(parent: Path, owner: ProcessOwner | None, name: str | None = None) -> Path:
    """A folder shaped like a work folder, with ``owner`` recorded in it, and a file."""
    folder = parent / (name or f"{owner.pid if owner else 1}-{'ab' * 8}")
    folder.mkdir(parents=True)
    (folder / "sub").mkdir()
    (folder / "sub" / "model.onnx").write_bytes(b"model")
    if owner is not None:
        write_owner_file(folder / workdirs.OWNER_FILE, owner)
    return folder


def like_me(**changes: object) -> ProcessOwner:
    me = ProcessOwner.current()
    return ProcessOwner(**{**me.__dict__, **changes})  # type: ignore[arg-type]


def test_a_work_folder_records_its_owner_and_is_removed_by_it(tmp_path: Path) -> None:
    folder = workdirs.create(tmp_path)
    owner = read_owner_file(folder / workdirs.OWNER_FILE)
    assert owner is not None and (owner.pid, owner.host) == (os.getpid(), socket.gethostname())
    assert owner.liveness() is Liveness.ALIVE
    assert folder.parent == tmp_path and folder.name.startswith(f"{os.getpid()}-")
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "a" / "b" / "converted.onnx").write_bytes(b"x")
    workdirs.remove(folder)
    assert list(tmp_path.iterdir()) == []


def test_only_folders_of_dead_owners_on_this_host_are_removed(tmp_path: Path) -> None:
    pid = dead_pid()
    dead = planted(tmp_path, like_me(pid=pid))
    rebooted = planted(tmp_path, like_me(pid=os.getpid(), boot_id="another-boot"), name=f"{os.getpid()}-{'cd' * 8}")
    alive = planted(tmp_path, like_me(), name=f"{os.getpid()}-{'ef' * 8}")
    other_host = planted(tmp_path, like_me(pid=pid, host="another-host"), name=f"{pid}-{'01' * 8}")
    other_namespace = planted(tmp_path, like_me(pid=pid, pid_namespace="pid:[1]"), name=f"{pid}-{'23' * 8}")
    no_record = planted(tmp_path, None, name=f"{pid}-{'45' * 8}")
    wrong_name = planted(tmp_path, like_me(pid=pid), name=f"{pid + 1}-{'67' * 8}")
    not_ours = planted(tmp_path, like_me(pid=pid), name="photos")
    (not_ours / workdirs.OWNER_FILE).write_text(json.dumps({"pid": pid}))  # a look-alike record

    assert workdirs.remove_stale(tmp_path) == 2
    assert not dead.exists() and not rebooted.exists()
    for kept in (alive, other_host, other_namespace, no_record, wrong_name, not_ours):
        assert (kept / "sub" / "model.onnx").read_bytes() == b"model", kept


def test_a_link_that_looks_like_a_dead_work_folder_is_not_followed(tmp_path: Path) -> None:
    elsewhere = planted(tmp_path / "elsewhere", like_me(pid=dead_pid()))
    parent = tmp_path / "work"
    parent.mkdir()
    (parent / elsewhere.name).symlink_to(elsewhere, target_is_directory=True)
    assert workdirs.remove_stale(parent) == 0
    assert (elsewhere / "sub" / "model.onnx").exists() and (parent / elsewhere.name).is_symlink()


def test_a_removal_cut_short_is_finished_later(tmp_path: Path) -> None:
    folder = planted(tmp_path, like_me(pid=dead_pid()))
    (folder / "sub" / "model.onnx").unlink()  # as if a kill stopped the removal here
    assert workdirs.remove_stale(tmp_path) == 1 and list(tmp_path.iterdir()) == []


def test_the_temp_parent_is_private_and_refused_when_others_could_plant_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert workdirs.temp_parent(create=False) is None
    parent = workdirs.temp_parent(create=True)
    assert parent == tmp_path / f"pytest-trt-work-{os.getuid()}" and (parent.stat().st_mode & 0o777) == 0o700
    parent.chmod(0o777)
    assert workdirs.temp_parent(create=True) is None
    parent.rmdir()
    (tmp_path / "target").mkdir(mode=0o700)
    parent.symlink_to(tmp_path / "target", target_is_directory=True)
    assert workdirs.temp_parent(create=True) is None


def test_owner_records_that_are_not_ours_read_as_none(tmp_path: Path) -> None:
    for text in ("", "{", "[]", '{"format": "pytest-trt owner"}', '{"format": "x", "pid": 1}'):
        (tmp_path / "owner.json").write_text(text)
        assert read_owner_file(tmp_path / "owner.json") is None, text
    (tmp_path / "link.json").symlink_to(tmp_path / "owner.json")
    write_owner_file(tmp_path / "owner.json", ProcessOwner.current())
    assert read_owner_file(tmp_path / "owner.json") is not None
    assert read_owner_file(tmp_path / "link.json") is None  # never read through a link
