"""Per-process work folders for scratch files (converted models), kept where a later run finds them.

Each folder is ``<parent>/<pid>-<random>/`` with an ``owner.json`` naming its process (pid, host,
boot, start time). The process removes its folder when it closes; a folder whose owner died
(kill -9) is removed by the next run on the same host. Only folders that carry our owner record
are ever removed, and the record goes last, so a removal cut short is finished by a later run.

Where the private parent cannot be trusted, a folder is made in the temp folder itself as
``pytest-trt-work-<pid>-<random>``; a later run removes those too, when they are this account's,
private, carry our owner record for that pid, and the pid is dead. Backends' temporaries during a
build (``scratch``) live in such a folder of their process, never loose in the temp folder.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pytest_trt.store.owners import Liveness, ProcessOwner, read_owner_file, write_owner_file
from pytest_trt.store.regular_files import is_real_dir

OWNER_FILE = "owner.json"
_NAME = re.compile(r"(\d+)-[0-9a-f]{16}")
_FALLBACK_PREFIX = "pytest-trt-work-"
# What tempfile.mkdtemp(prefix=_FALLBACK_PREFIX + "<pid>-") names: 8 of its random characters.
_FALLBACK_NAME = re.compile(re.escape(_FALLBACK_PREFIX) + r"(\d+)-[a-z0-9_]{8}")


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
        folder = Path(tempfile.mkdtemp(prefix=f"{_FALLBACK_PREFIX}{os.getpid()}-"))
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
        if _dead_owners(Path(entry.path), _NAME.fullmatch(entry.name)):
            remove(Path(entry.path))
            removed += 1
    return removed


def remove_stale_fallbacks() -> int:
    """Remove the ``pytest-trt-work-<pid>-<random>`` folders made in the temp folder itself (the
    private parent untrusted) whose process is dead: only real folders of this account, private
    to it, with our owner record of that pid. Returns how many."""
    removed = 0
    try:
        with os.scandir(tempfile.gettempdir()) as entries:
            candidates = [e for e in entries if _FALLBACK_NAME.fullmatch(e.name)]
    except OSError:
        return 0
    for entry in candidates:
        path = Path(entry.path)
        if _private_dir(path) and _dead_owners(path, _FALLBACK_NAME.fullmatch(entry.name)):
            remove(path)
            removed += 1
    return removed


def _private_dir(path: Path) -> bool:
    """A real folder (not a link) of this account that no other account can write in."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    return not hasattr(os, "getuid") or (info.st_uid == os.getuid() and not info.st_mode & 0o022)


def _dead_owners(folder: Path, name: re.Match[str] | None) -> bool:
    """True when ``folder`` carries our owner record, for the pid its name gives, and that process
    is known to be dead."""
    owner = read_owner_file(folder / OWNER_FILE)
    if owner is None or name is None or owner.pid != int(name.group(1)):
        return False
    return owner.liveness() is Liveness.DEAD


_process_scratch: tuple[int, Path] | None = None  # (pid, folder): this process's scratch folder


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder for one step (a backend's build), removed when the step ends; it lies
    in this process's own work folder under the private temp parent, which a later run removes
    if this process is killed first."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=_scratch_parent()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # our own, made just above


def _scratch_parent() -> Path:
    global _process_scratch
    if _process_scratch is None or _process_scratch[0] != os.getpid() or not is_real_dir(_process_scratch[1]):
        try:
            folder = create(temp_parent(create=True))
        except OSError:
            folder = create(None)
        _process_scratch = (os.getpid(), folder)
        atexit.register(remove, folder)
    return _process_scratch[1]
