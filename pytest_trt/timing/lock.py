"""Measurements never overlap on one device: a lock per device, shared by every process of this
user on this host, is held from a measurement's warm-up to its last timed iteration.

Under pytest-xdist (``-n N``), workers build engines, compute references and check accuracy in
parallel, but two workers timing the same CPU or GPU at once slow each other down (on a 2-core VM
a 172 ms model's median read 425 ms under ``-n 2``), and nothing in either sample shows it. Two
separate pytest runs on one host collide the same way, so the lock lives in a per-user folder of
the system temp dir rather than under one run's basetemp. The folder is created private (0700)
and refused when anyone else could write to it: a planted lock file could otherwise make every
run wait, or make two measurements hold "one" lock.

The wait is returned so that the report can say how long measurements queued, and it is never
part of a measurement's time. The holder writes an owner record beside the lock: a run that waits
``NOTICE_S`` names it (pid, command, and whether it is stopped, as Ctrl-Z leaves it), and gives up
at the lock timeout (``--trt-lock-timeout``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_trt.errors import LockTimeoutError, PytestTrtError
from pytest_trt.store.locks import NOTICE_S, acquire_noticing
from pytest_trt.store.owners import ProcessOwner, read_owner_file, write_owner_file

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


@dataclass(frozen=True)
class LockWait:
    """How a measurement waits for its device: gives up after ``timeout_s``, and after
    ``notice_s`` tells ``notify`` who holds the lock (None: a line on stderr)."""

    timeout_s: float = TIMEOUT_S
    notice_s: float = NOTICE_S
    notify: Callable[[str], None] | None = None


def _holder(owner_path: Path) -> str:
    owner = read_owner_file(owner_path)
    if owner is None:
        return "held by a process that left no owner record"
    return f"held by {owner.describe()}"


def _to_stderr(line: str) -> None:
    print(f"pytest-trt: {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def measuring(device: str, timeout_s: float | None = None, *, wait: LockWait | None = None) -> Iterator[Held]:
    """Hold ``device``'s measurement lock for the ``with`` block; the Held says how long the
    wait for it was. ``timeout_s``, where given, overrides ``wait``'s."""
    wait = wait or LockWait()
    if timeout_s is not None:
        wait = dataclasses.replace(wait, timeout_s=timeout_s)
    path = lock_folder() / _lock_name(device)
    owner_path = path.with_name(path.name + ".owner")
    lock = FileLock(path, mode=0o600)
    notify = wait.notify or _to_stderr

    def notice() -> None:
        notify(f"waiting for the measurement lock of {device}, {_holder(owner_path)}; giving up after "
               f"{wait.timeout_s:g} s (--trt-lock-timeout)")

    started = time.perf_counter()
    try:
        taken = acquire_noticing(lock, wait.timeout_s, wait.notice_s, notice)
    except OSError as exc:
        raise MeasureLockError(f"cannot take the measurement lock {path}: {exc}") from None
    if not taken:
        raise MeasureLockTimeout(
            f"gave up after {wait.timeout_s:g} s waiting for the measurement lock of {device} ({path}), "
            f"{_holder(owner_path)}; wait for that process or stop it, or raise --trt-lock-timeout "
            "(ini trt_lock_timeout)"
        )
    waited_s = time.perf_counter() - started
    try:
        with contextlib.suppress(OSError):  # advice for waiting runs only
            write_owner_file(owner_path, ProcessOwner.current())
        yield Held(device, path, waited_s)
    finally:
        with contextlib.suppress(OSError):
            owner_path.unlink()
        lock.release()
