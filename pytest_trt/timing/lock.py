"""Measurements never overlap on one device: a lock per device, shared by every process of this
user on this host, is held from a measurement's warm-up to its last timed iteration.

Under pytest-xdist (``-n N``), workers build engines, compute references and check accuracy in
parallel, but two workers timing the same CPU or GPU at once slow each other down (on a 2-core VM
a 172 ms model's median read 425 ms under ``-n 2``), and nothing in either sample shows it. Two
separate pytest runs on one host collide the same way, so the lock lives in a per-user folder of
the system temp dir rather than under one run's basetemp. The folder is created private (0700)
and refused when anyone else could write to it: a planted lock file could otherwise make every
run wait, or make two measurements hold "one" lock.

The wait is returned so that the report can say how long measurements queued.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from pytest_trt.errors import LockTimeoutError, PytestTrtError

CPU = "cpu"  # one lock for the host's CPUs: CPU timings share caches, memory and the scheduler
# Long enough for many workers' slow measurements queued ahead (each holds the lock for at most
# its warm-up plus max_duration_ms); past it, a hung run is the likely holder.
TIMEOUT_S = 1800.0


class MeasureLockError(PytestTrtError):
    """The measurement lock could not be taken; the message names the folder or the file."""


class MeasureLockTimeout(MeasureLockError, LockTimeoutError):
    """Another process measured on the device for longer than the lock timeout."""


@dataclass
class Held:
    """A held measurement lock: which device, and how long it took to get it."""

    device: str
    path: Path
    waited_s: float


def _user() -> str:
    uid = getattr(os, "getuid", None)
    if uid is not None:
        return str(uid())
    try:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", getpass.getuser()) or "user"
    except (KeyError, OSError):  # no user name to be had (e.g. no USERNAME on Windows)
        return "user"


def lock_folder() -> Path:
    """``<tempdir>/pytest-trt-<uid>``, created 0700; a MeasureLockError names it when it is not a
    folder of this user's that only this user can write to."""
    folder = Path(tempfile.gettempdir()) / f"pytest-trt-{_user()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise MeasureLockError(f"cannot create the measurement lock folder {folder}: {exc}") from None
    info = folder.lstat()
    problem = None
    if not stat.S_ISDIR(info.st_mode):
        problem = "is not a folder (a symlink or a file)"
    elif hasattr(os, "getuid") and info.st_uid != os.getuid():
        problem = f"belongs to another user (uid {info.st_uid})"
    elif hasattr(os, "getuid") and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"can be written by other users (mode {stat.S_IMODE(info.st_mode):o})"
    if problem:
        raise MeasureLockError(
            f"the measurement lock folder {folder} {problem}, so its locks cannot be trusted; remove it "
            "(pytest-trt makes it again, private), or point TMPDIR at a folder of your own"
        )
    return folder


def device_of(runner: Any) -> str:
    """The device a runner's timings belong to: its ``device`` ("cpu", "cuda:0"), or the CPU for
    runners that do not say (they time on the host)."""
    device = getattr(runner, "device", None)
    return device if isinstance(device, str) and device else CPU


def _lock_name(device: str) -> str:
    """A file name per physical device. A GPU index means another card under another
    CUDA_VISIBLE_DEVICES, so GPUs are named by UUID where the driver gives one."""
    name = device
    if device.startswith("cuda:") and device[5:].isdigit():
        from pytest_trt.fingerprint import gpu_facts

        uuid = (gpu_facts(int(device[5:])) or {}).get("uuid")
        if uuid:
            name = f"gpu-{uuid}"
    return "measure-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-.") or CPU) + ".lock"


@contextlib.contextmanager
def measuring(device: str, timeout_s: float | None = None) -> Iterator[Held]:
    """Hold ``device``'s measurement lock for the ``with`` block; the Held says how long the
    wait for it was."""
    path = lock_folder() / _lock_name(device)
    limit = TIMEOUT_S if timeout_s is None else timeout_s
    lock = FileLock(path, timeout=limit, mode=0o600)
    started = time.perf_counter()
    try:
        lock.acquire()
    except Timeout:
        raise MeasureLockTimeout(
            f"waited {limit:g} s for the measurement lock of {device} ({path}): another pytest process of "
            "this user on this host has been measuring on it all that time; a hung run holds it (see "
            f"`fuser {path}`)"
        ) from None
    except OSError as exc:
        raise MeasureLockError(f"cannot take the measurement lock {path}: {exc}") from None
    try:
        yield Held(device, path, time.perf_counter() - started)
    finally:
        lock.release()
