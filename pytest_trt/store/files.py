"""Writing files so that a reader sees the whole new file or the old one, never half of either,
and removing the temp files that a writer killed half way leaves behind.

Only a regular file is ever replaced: a symbolic link, a device, a FIFO or a folder at the
destination is refused (``NotRegularFile``), never written through nor replaced. What is written
gets the mode a plain ``open`` would give it under the process's umask (0644 under 022), so that
other accounts read a cache, a baseline or a report as they read any file of this user's."""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pytest_trt.store.regular_files import NotRegularFile, describe_mode

TEMP_SUFFIX = ".tmp"
# ".<target name, cut at 60>.<writer pid>.<mkstemp's random part>.tmp": the pid tells a later run
# whether the writer still runs.
_TEMP_NAME = re.compile(r"\.(?P<target>.{1,60})\.(?P<pid>[0-9]+)\.[^./\\]+" + re.escape(TEMP_SUFFIX))
# A temp file this old is stale even where its pid cannot be checked (another host on a shared
# folder, or a reused pid): writes of the files that use this module take well under a second.
STALE_AFTER_S = 600.0


def umask() -> int:
    """The process's umask, read without changing it where the OS says it (Linux 4.7+): setting
    it to read it would race with other threads creating files."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from ``open``: 0666 less the umask."""
    return 0o666 & ~umask()


def folder_mode() -> int:
    """The mode a new folder gets from ``mkdir``: 0777 less the umask."""
    return 0o777 & ~umask()


def check_destination(path: Path) -> None:
    """NotRegularFile when something other than a regular file is at ``path`` (a link, even one
    to a regular file, a device, a FIFO, a socket, a folder); nothing when it is absent."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there (a parent that is not a folder fails where it is made)
    if not stat.S_ISREG(mode):
        raise NotRegularFile(
            errno.EEXIST,
            f"{describe_mode(mode)} is there, not a regular file; pytest-trt replaces only regular "
            "files and writes through no link: remove it or name another path",
            str(path),
        )


def write_atomic_with(
    path: Path, write: Callable[[BinaryIO], object], *, temp_dir: Path | None = None, durable: bool = True
) -> None:
    """Call ``write`` on a temp file, flush it to disk (unless not ``durable``), then rename it
    over ``path``. The temp file lies beside ``path``, or in ``temp_dir`` (which must be on the
    same file system). An exception leaves no temp file; a writer killed half way leaves one
    that ``remove_stale_temps`` recognizes, and never a half ``path``. NotRegularFile when
    ``path`` is anything but absent or a regular file (``check_destination``)."""
    path = Path(path)
    check_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent if temp_dir is None else Path(temp_dir)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:60]}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as stream:
            if hasattr(os, "fchmod"):
                os.fchmod(stream.fileno(), file_mode())  # mkstemp's 0600 would hide it from others
            write(stream)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        check_destination(path)  # again: it may have appeared while we wrote
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str, *, temp_dir: Path | None = None) -> None:
    """``data`` to ``path`` atomically; text is written as UTF-8."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_atomic_with(path, lambda stream: stream.write(payload), temp_dir=temp_dir)


def _pid_running(pid: int) -> bool | None:
    """Whether ``pid`` runs on this host; None where that cannot be asked without side effects
    (on Windows, signal 0 would stop the process)."""
    if sys.platform == "win32":
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return None
    return True


def remove_stale_temps(folder: Path, *, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the temp files of ``write_atomic_with`` in ``folder`` whose writer is gone: its pid
    runs no more on this host, or the file is older than ``stale_after_s``. Only regular files
    whose name has exactly that pattern are touched; links are never followed. Returns what was
    removed; a file that cannot be removed is left."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if _pid_running(int(match["pid"])) is not False and now - info.st_mtime < stale_after_s:
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
