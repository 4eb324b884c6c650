"""Per-process work folders for scratch files (converted models), kept where a later run finds them.

Each folder is ``<parent>/<pid>-<random>/`` with an ``owner.json`` naming its process (pid, host,
boot, start time). The process removes its folder when it closes; a folder whose owner died
(kill -9) is removed by the next run on the same host. Only folders that carry our owner record
are ever removed, and the record goes last, so a removal cut short is finished by a later run.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import tempfile
from contextlib import suppress
from pathlib import Path

from pytest_trt.store.owners import Liveness, ProcessOwner, read_owner_file, write_owner_file
from pytest_trt.store.regular_files import is_real_dir

OWNER_FILE = "owner.json"
_NAME = re.compile(r"(\d+)-[0-9a-f]{16}")


def temp_parent(*, create: bool) -> Path | None:
    """``<tmp>/pytest-trt-work-<user>``, private to this account; None when it is absent (and not
    ``create``) or cannot be trusted (a link, another account's, or writable by others)."""
    user = str(os.getuid()) if hasattr(os, "getuid") else (os.environ.get("USERNAME") or "user")
    parent = Path(tempfile.gettempdir()) / f"pytest-trt-work-{user}"
    if create:
        with suppress(FileExistsError):
            try:
                os.mkdir(parent, 0o700)
            except OSError:
                return None
    try:
        info = os.lstat(parent)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
        return None
    return parent


def create(parent: Path | None) -> Path:
    """A new work folder under ``parent`` (a private temp folder when None) with its owner record."""
    if parent is None:
        folder = Path(tempfile.mkdtemp(prefix=f"pytest-trt-work-{os.getpid()}-"))
    else:
        folder = parent / f"{os.getpid()}-{secrets.token_hex(8)}"
        os.mkdir(folder, 0o700)
    write_owner_file(folder / OWNER_FILE, ProcessOwner.current())
    return folder


def remove(folder: Path) -> None:
    """Remove a work folder that carries our owner record: its contents first, the record last."""
    if not is_real_dir(folder) or read_owner_file(folder / OWNER_FILE) is None:
        return
    with os.scandir(folder) as children:
        for child in list(children):
            if child.name == OWNER_FILE:
                continue
            if child.is_dir(follow_symlinks=False):
                shutil.rmtree(child.path, ignore_errors=True)  # rmtree never descends into links
            else:
                with suppress(OSError):
                    os.unlink(child.path)
    with suppress(OSError):
        os.unlink(folder / OWNER_FILE)
    with suppress(OSError):
        os.rmdir(folder)


def remove_stale(parent: Path | None) -> int:
    """Remove the work folders under ``parent`` whose owner process is known to be dead; folders
    of live processes, of other hosts, and folders without our owner record stay. Returns how many."""
    if parent is None or not is_real_dir(parent):
        return 0
    removed = 0
    try:
        with os.scandir(parent) as entries:
            candidates = [e for e in entries if e.is_dir(follow_symlinks=False) and _NAME.fullmatch(e.name)]
    except OSError:
        return 0
    for entry in candidates:
        owner = read_owner_file(Path(entry.path) / OWNER_FILE)
        match = _NAME.fullmatch(entry.name)
        if owner is None or match is None or owner.pid != int(match.group(1)):
            continue
        if owner.liveness() is Liveness.DEAD:
            remove(Path(entry.path))
            removed += 1
    return removed
