"""The per-device measurement lock (measure_lock.py): where it lives, what it refuses, and that
measure() holds it. Processes under pytest-xdist: tests/test_measure_xdist.py."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt import fingerprint
from pytest_trt.backends.base import IterationTimes
from pytest_trt.errors import PytestTrtError
from pytest_trt.specs import MeasureSettings
from pytest_trt.timing import lock as measure_lock
from pytest_trt.timing.lock import MeasureLockError, device_of, lock_folder, measuring
from pytest_trt.timing.measure import measure

posix_only = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_the_lock_folder_is_private_and_per_user(temp_dir: Path) -> None:
    folder = lock_folder()
    assert folder.parent == temp_dir and folder.name.startswith("pytest-trt-")
    if hasattr(os, "getuid"):
        assert folder.name == f"pytest-trt-{os.getuid()}"
        assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
    assert lock_folder() == folder  # found again, not refused


@posix_only
def test_a_folder_others_can_write_to_is_refused(temp_dir: Path) -> None:
    folder = temp_dir / f"pytest-trt-{os.getuid()}"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(MeasureLockError, match=r"can be written by other users \(mode 777\)") as info:
        lock_folder()
    assert str(folder) in str(info.value) and "remove it" in str(info.value)
    assert isinstance(info.value, PytestTrtError)  # a user-facing error: the test errors with the message


@posix_only
def test_a_planted_symlink_or_another_users_folder_is_refused(
    temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = temp_dir / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (temp_dir / f"pytest-trt-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(MeasureLockError, match="is not a folder"):
        lock_folder()
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)
    (temp_dir / f"pytest-trt-{real_uid + 1}").mkdir(mode=0o700)  # made by "someone else"
    with pytest.raises(MeasureLockError, match=f"belongs to another user \\(uid {real_uid}\\)"):
        lock_folder()


def test_a_second_holder_waits_until_the_first_releases(temp_dir: Path) -> None:
    events: list[str] = []
    holding, released = threading.Event(), threading.Event()
    waited: list[float] = []

    def second() -> None:
        holding.wait(10)
        with measuring("cpu") as held:
            events.append("second holds")
            waited.append(held.waited_s)

    thread = threading.Thread(target=second)
    thread.start()
    with measuring("cpu"):
        holding.set()
        released.wait(0.3)  # time for the second to start waiting
        events.append("first releases")
    thread.join(10)
    assert events == ["first releases", "second holds"]
    assert waited[0] > 0


def test_other_devices_do_not_wait(temp_dir: Path) -> None:
    with measuring("cpu"), measuring("cuda:7", timeout_s=0) as held:
        assert held.device == "cuda:7"


def test_a_lock_held_too_long_is_an_error_naming_it(temp_dir: Path) -> None:
    failures: list[str] = []

    def other() -> None:
        try:
            with measuring("cpu", timeout_s=0.05):
                pass
        except MeasureLockError as exc:
            failures.append(str(exc))

    with measuring("cpu") as held:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
    assert len(failures) == 1
    assert f"measurement lock of cpu ({held.path})" in failures[0]
    assert f"held by pid {os.getpid()}" in failures[0] and "--trt-lock-timeout" in failures[0]


class Runner:
    backend = "onnxruntime"

    def __init__(self, session: Any, device: Any = None) -> None:
        self.session = session
        if device is not None:
            self.device = device

    def timed_session(self, feed: Any, settings: MeasureSettings) -> Any:
        return self.session


class TriesTheLock:
    """A timed session that, while timing, checks whether the CPU lock is free."""

    clock = "host"
    mode: dict[str, Any] = {}
    warnings: list[str] = []

    def __init__(self) -> None:
        self.lock_was_free: list[bool] = []

    def run(self, iterations: int) -> IterationTimes:
        outcome: list[bool] = []

        def attempt() -> None:
            try:
                with measuring("cpu", timeout_s=0):
                    outcome.append(True)
            except MeasureLockError:
                outcome.append(False)

        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join(10)
        self.lock_was_free += outcome
        return IterationTimes(latency=[1.0] * iterations, span_ms=float(iterations))

    def close(self) -> None:
        pass


def test_measure_holds_the_devices_lock_while_timing(temp_dir: Path) -> None:
    session = TriesTheLock()
    settings = MeasureSettings(warmup_ms=2.0, min_iterations=5, min_duration_ms=0.0)
    result = measure(Runner(session), {"x": np.zeros(1)}, settings, batch=1)  # type: ignore[arg-type]
    assert session.lock_was_free and not any(session.lock_was_free)
    assert result.lock_wait_s >= 0
    with measuring("cpu", timeout_s=0):  # and gives it back
        pass


def test_the_device_comes_from_the_runner() -> None:
    assert device_of(Runner(None)) == "cpu"
    assert device_of(Runner(None, "cuda:1")) == "cuda:1"
    assert device_of(Runner(None, "")) == "cpu"


def test_gpus_are_locked_by_uuid_where_the_driver_gives_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under CUDA_VISIBLE_DEVICES, index 0 of two processes can be two cards, or one card two indices.
    monkeypatch.setattr(fingerprint, "gpu_facts", lambda index=0: {"uuid": f"abc{index}"})
    assert measure_lock._lock_name("cuda:1") == "measure-gpu-abc1.lock"
    monkeypatch.setattr(fingerprint, "gpu_facts", lambda index=0: None)
    assert measure_lock._lock_name("cuda:1") == "measure-cuda-1.lock"
    assert measure_lock._lock_name("cpu") == "measure-cpu.lock"
    assert measure_lock._lock_name("../x") == "measure-x.lock"
