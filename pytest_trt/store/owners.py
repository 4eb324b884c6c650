"""Who a process is, written beside what it holds: a cache entry's lock (so that a waiting run can
say whom it waits for) or a work folder (so that a later run can tell a dead owner's folder from a
live one's and remove only the first)."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from pytest_trt.store.files import write_atomic_with
from pytest_trt.store.regular_files import read_regular_file

_FORMAT = "pytest-trt owner"
_MAX_BYTES = 64 * 1024


class Liveness(Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # another host or PID namespace, or an OS where we cannot ask


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read(200).strip()
    except (OSError, ValueError):
        return ""


def _pid_namespace() -> str:
    # Containers that share a host name (host networking) still have their own PID numbers.
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class ProcessOwner:
    pid: int
    host: str
    since: float  # epoch seconds
    boot_id: str  # "" where the OS does not say; a new boot means every old owner is gone
    pid_namespace: str

    @classmethod
    def current(cls) -> ProcessOwner:
        return cls(os.getpid(), socket.gethostname(), time.time(),
                   _read_text("/proc/sys/kernel/random/boot_id"), _pid_namespace())

    def to_json(self) -> bytes:
        return (json.dumps({"format": _FORMAT, **asdict(self)}, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> ProcessOwner | None:
        """The owner in ``data``, or None when it is not a record this module wrote."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
                return None
            owner = cls(int(raw["pid"]), str(raw["host"]), float(raw["since"]),
                        str(raw["boot_id"]), str(raw["pid_namespace"]))
        except (ValueError, TypeError, KeyError):
            return None
        return owner if owner.pid > 0 else None

    def liveness(self) -> Liveness:
        me = ProcessOwner.current()
        if self.host != me.host:
            return Liveness.UNKNOWN
        if self.boot_id and me.boot_id and self.boot_id != me.boot_id:
            return Liveness.DEAD
        if self.pid_namespace != me.pid_namespace or os.name != "posix":
            return Liveness.UNKNOWN  # (on Windows, os.kill(pid, 0) would end the process)
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return Liveness.DEAD
        except PermissionError:
            return Liveness.ALIVE  # another account's process
        except OSError:
            return Liveness.UNKNOWN
        return Liveness.ALIVE

    def describe(self) -> str:
        """'pid 4242 on host ci-7 since 2024-05-01 10:00:00 UTC (95 s ago), running `pytest -n 4`',
        and 'STOPPED ...' when that process is stopped (SIGSTOP, Ctrl-Z): it will not let go
        until it is resumed or ended. Command and state are told only for this host's processes."""
        when = datetime.fromtimestamp(self.since, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        age = max(0, round(time.time() - self.since))
        text = f"pid {self.pid} on host {self.host} since {when} ({age} s ago)"
        if self.liveness() is not Liveness.ALIVE:
            return text
        command = process_command(self.pid)
        if command:
            text += f", running `{command}`"
        if process_stopped(self.pid):
            text += (f"; that process is STOPPED (SIGSTOP or Ctrl-Z) and holds the lock until it is "
                     f"resumed (`kill -CONT {self.pid}`, or `fg` in its shell) or ended")
        return text


_COMMAND_CHARS = 160


def process_command(pid: int) -> str:
    """The command line of ``pid`` on this host, cut at 160 characters; "" where the OS does
    not say (no /proc, another account's process hidden)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4 * _COMMAND_CHARS)
    except OSError:
        return ""
    command = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return command if len(command) <= _COMMAND_CHARS else command[: _COMMAND_CHARS - 3] + "..."


def process_stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped (state T: SIGSTOP, Ctrl-Z; t: stopped by a debugger) per
    /proc/<pid>/stat; False where the OS does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read(4096)
    except OSError:
        return False
    # "pid (comm) S ...": the command may hold spaces and parentheses, the state follows the last ")".
    state = stat_line.rpartition(b")")[2].split()[:1]
    return state in ([b"T"], [b"t"])


def write_owner_file(path: Path, owner: ProcessOwner) -> None:
    """``owner`` to ``path`` in one rename (a reader sees the old record or the new, never half);
    its temp file carries our pid, so that ``files.remove_stale_temps`` removes it after a kill.
    Not fsynced: the record is advice for people and for cleanup, and after a power cut an empty
    file reads as "no record", which only makes cleanup more careful."""
    record = owner.to_json()
    write_atomic_with(path, lambda stream: stream.write(record), durable=False)


def read_owner_file(path: Path) -> ProcessOwner | None:
    """The owner recorded at ``path``; None when absent, unreadable or not ours."""
    try:
        return ProcessOwner.from_json(read_regular_file(path, _MAX_BYTES))
    except OSError:
        return None
