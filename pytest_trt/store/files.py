"""Writing files so that a reader sees the whole new file or the old one, never half of either,
and removing the temp files that a writer killed half way leaves behind."""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"
# ".<target name, cut at 60>.<writer pid>.<mkstemp's random part>.tmp": the pid tells a later run
# whether the writer still runs.
_TEMP_NAME = re.compile(r"\.(?P<target>.{1,60})\.(?P<pid>[0-9]+)\.[^./\\]+" + re.escape(TEMP_SUFFIX))
# A temp file this old is stale even where its pid cannot be checked (another host on a shared
# folder, or a reused pid): writes of the files that use this module take well under a second.
STALE_AFTER_S = 600.0


def write_atomic_with(
    path: Path, write: Callable[[BinaryIO], object], *, temp_dir: Path | None = None, umask_mode: bool = False
) -> None:
    """Call ``write`` on a temp file, flush it to disk, then rename it over ``path``. The temp
    file lies beside ``path``, or in ``temp_dir`` (which must be on the same file system). An
    exception leaves no temp file; a writer killed half way leaves one that
    ``remove_stale_temps`` recognizes, and never a half ``path``. ``umask_mode``: the file gets
    the permissions ``open()`` would give it under the user's umask (0644 under umask 022), not
    the temp file's private 0600: for files users share, such as reports."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent if temp_dir is None else Path(temp_dir)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:60]}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if umask_mode:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str, *, temp_dir: Path | None = None, umask_mode: bool = False) -> None:
    """``data`` to ``path`` atomically; text is written as UTF-8 (``umask_mode``: see write_atomic_with)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_atomic_with(path, lambda stream: stream.write(payload), temp_dir=temp_dir, umask_mode=umask_mode)


def _umask() -> int:
    """The process's umask: reading it means setting it, so it is set back at once."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


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
