"""The artifact cache across real processes: racing builders, writers killed half way, locks left
by dead processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_trt.backends.base import Artifact
from pytest_trt.store.cache import CacheError, EngineCache

REPO = Path(__file__).resolve().parents[1]
PARTS = {"model_hash": "ab" * 32, "build": {"precision": "fp16"}, "runtime_version": "tensorrt 10.3.0"}

# One child process. argv: cache root, mode, work folder (for signals and the build log), parts JSON.
CHILD = r'''
import json, os, sys, time
from pathlib import Path

import pytest_trt.store.entries as entries_module
from pytest_trt.backends.base import Artifact
from pytest_trt.store.cache import EngineCache

root, mode, work, parts = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])


def signal_and_hang():
    (work / f"ready-{os.getpid()}").touch()
    time.sleep(600)


def build():
    with open(work / "builds.log", "a") as log:
        log.write(f"{os.getpid()}\n")
    time.sleep(0.5)  # long enough that every racer asks while this build runs
    return Artifact(b"engine" * 1000, {"pid": os.getpid()})


def wait_for_go():
    (work / f"started-{os.getpid()}").touch()
    while not (work / "go").exists():
        time.sleep(0.01)


cache = EngineCache(root)
if mode == "race":
    wait_for_go()
    _, event = cache.get_or_build("engine", parts, build, lambda a: a.data)
    print(event.outcome)
elif mode == "merge":
    wait_for_go()
    print(cache.update_bytes("timing-cache", parts, lambda old: (old or b"") + b"<%d>" % os.getpid()))
elif mode == "die-writing-data":
    def half_write(path, data):
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
        signal_and_hang()
    entries_module._write_durably = half_write
    cache.get_or_build("engine", parts, build, lambda a: a.data)
elif mode in ("die-before-rename", "die-updating-last-used"):
    replace = os.replace  # the lock's owner record is renamed into place too: let that one through
    os.replace = lambda src, dst: replace(src, dst) if str(dst).endswith(".owner") else signal_and_hang()
    cache.get_or_build("engine", parts, build, lambda a: a.data)
elif mode == "hold-entry":  # a pytest-trt process building an entry for a long time
    def slow_build():
        signal_and_hang()
    cache.get_or_build("engine", parts, slow_build, lambda a: a.data)
elif mode == "work-dir":
    (cache.work_dir() / "converted.onnx").write_bytes(b"model" * 1000)
    signal_and_hang()
elif mode == "hold-lock":
    from filelock import FileLock
    with FileLock(root / "locks" / f"{cache.key('engine', parts)}.lock"):
        signal_and_hang()
'''


class Children:
    """Starts child processes running CHILD and kills any still running at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "cache"
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.script = tmp_path / "child.py"
        self.script.write_text(CHILD)
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, mode: str) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.Popen(
            [sys.executable, str(self.script), str(self.root), mode, str(self.work), json.dumps(PARTS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.procs.append(proc)
        return proc

    def wait_for(self, prefix: str, count: int = 1, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(list(self.work.glob(f"{prefix}-*"))) < count:
            for proc in self.procs:
                if proc.poll() not in (None, 0):
                    pytest.fail(f"child exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
            if time.monotonic() > deadline:
                pytest.fail(f"children did not report {prefix!r} within {timeout_s} s")
            time.sleep(0.02)

    def kill(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL

    def builds(self) -> list[str]:
        log = self.work / "builds.log"
        return log.read_text().split() if log.exists() else []

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    spawned = Children(tmp_path)
    yield spawned
    spawned.close()


def test_processes_racing_for_one_key_build_it_once(children: Children) -> None:
    racers = [children.start("race") for _ in range(3)]
    children.wait_for("started", count=len(racers))
    (children.work / "go").touch()
    outcomes = []
    for proc in racers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["hit", "hit", "miss"]
    assert len(children.builds()) == 1


def test_processes_merging_one_entry_lose_no_update(children: Children) -> None:
    mergers = [children.start("merge") for _ in range(3)]
    children.wait_for("started", count=len(mergers))
    (children.work / "go").touch()
    for proc in mergers:
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    merged = EngineCache(children.root).get_bytes("timing-cache", PARTS)
    assert merged is not None
    assert sorted(merged.decode().strip("<>").split("><")) == sorted(str(p.pid) for p in mergers)


@pytest.mark.parametrize("mode", ["die-writing-data", "die-before-rename"])
def test_writer_killed_mid_write_leaves_nothing_loadable(children: Children, mode: str) -> None:
    writer = children.start(mode)
    children.wait_for("ready")
    children.kill(writer)
    warned: list[str] = []
    cache = EngineCache(children.root, warn=warned.append, lock_timeout_s=30)
    entry = cache.entry_dir("engine", cache.key("engine", PARTS))
    assert not entry.exists()
    assert list(entry.parent.glob(".tmp-*")), "the kill should have left the writer's temp folder"

    value, event = cache.get_or_build("engine", PARTS, lambda: Artifact(b"fresh"), lambda a: a.data)
    assert (value, event.outcome, warned) == (b"fresh", "miss", [])
    assert not list(entry.parent.glob(".tmp-*"))


def test_reader_killed_while_updating_last_used_leaves_the_entry_whole(children: Children) -> None:
    EngineCache(children.root).get_or_build("engine", PARTS, lambda: Artifact(b"stored"), lambda a: a.data)
    reader = children.start("die-updating-last-used")
    children.wait_for("ready")
    children.kill(reader)
    warned: list[str] = []
    cache = EngineCache(children.root, warn=warned.append, lock_timeout_s=30)
    value, event = cache.get_or_build("engine", PARTS, lambda: Artifact(b"rebuilt"), lambda a: a.data)
    assert (value, event.outcome, warned) == (b"stored", "hit", [])
    entry = cache.entry_dir("engine", event.key)
    assert sorted(p.name for p in entry.iterdir()) == ["artifact.bin", "record.json"]


def test_lock_left_by_a_dead_process_does_not_hang(children: Children) -> None:
    holder = children.start("hold-lock")
    children.wait_for("ready")
    children.kill(holder)
    cache = EngineCache(children.root, lock_timeout_s=30)
    assert (children.root / "locks" / f"{cache.key('engine', PARTS)}.lock").exists()
    _, event = cache.get_or_build("engine", PARTS, lambda: Artifact(b"x"), lambda a: a.data)
    assert event.outcome == "miss"


def test_lock_held_too_long_is_a_clear_error(children: Children) -> None:
    holder = children.start("hold-lock")  # another tool: no owner record beside the lock
    children.wait_for("ready")
    notes: list[str] = []
    cache = EngineCache(children.root, lock_timeout_s=0.2, notify=notes.append)
    lock_file = children.root / "locks" / f"{cache.key('engine', PARTS)}.lock"
    expected = re.escape(f"gave up after 0.2 s waiting for the lock {lock_file} on cache entry engine/")
    with pytest.raises(CacheError, match=expected) as gave_up:
        cache.get_or_build("engine", PARTS, lambda: Artifact(b"x"), lambda a: a.data)
    assert "held by a process that left no owner record" in str(gave_up.value)
    assert "--trt-lock-timeout" in str(gave_up.value)
    assert notes == []  # gave up before the notice was due
    children.kill(holder)


def test_waiting_for_a_live_holder_says_who_it_is_then_gives_up_naming_it(children: Children) -> None:
    holder = children.start("hold-entry")
    children.wait_for("ready")
    notes: list[str] = []
    cache = EngineCache(children.root, lock_timeout_s=1.5, lock_notice_s=0.3, notify=notes.append)
    with pytest.raises(CacheError) as gave_up:
        cache.get_or_build("engine", PARTS, lambda: Artifact(b"x"), lambda a: a.data)
    who = f"held by pid {holder.pid} on host {socket.gethostname()} since "
    assert len(notes) == 1, notes
    assert "waiting for cache entry engine/" in notes[0] and who in notes[0] and "--trt-lock-timeout" in notes[0]
    message = str(gave_up.value)
    assert message.startswith("gave up after 1.5 s waiting for the lock") and who in message
    assert "--trt-lock-timeout" in message
    children.kill(holder)
    # The kernel released the dead holder's lock; its stale owner record does not matter.
    assert cache.get_or_build("engine", PARTS, lambda: Artifact(b"x"), lambda a: a.data)[1].outcome == "miss"


def test_work_folder_of_a_killed_run_is_removed_by_the_next(children: Children) -> None:
    killed, alive = children.start("work-dir"), children.start("work-dir")
    children.wait_for("ready", count=2)
    folders = {p.name.split("-")[0]: p for p in (children.root / "work").iterdir()}
    assert set(folders) == {str(killed.pid), str(alive.pid)}
    children.kill(killed)
    cache = EngineCache(children.root)
    assert not folders[str(killed.pid)].exists()
    assert (folders[str(alive.pid)] / "converted.onnx").exists()  # its owner still runs
    own = cache.work_dir()
    cache.close()
    assert not own.exists()
