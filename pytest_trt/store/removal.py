"""Deleting what the cache wrote, and only that: files are unlinked by the names the cache writes
(an unlink never follows a link), then their folder if nothing else is left in it."""

from __future__ import annotations

import os
import stat
import uuid
from contextlib import suppress
from pathlib import Path

from pytest_trt.store.layout import OWN_ENTRY_NAMES, is_leftover_of, leftover_prefix
from pytest_trt.store.regular_files import describe_mode, is_real_dir


def remove_own_files(folder: Path) -> bool:
    """Unlink the names the cache writes in an entry or temp folder, then the folder itself; False
    when something else keeps it (or it is a link)."""
    if not is_real_dir(folder):
        return False
    try:
        with os.scandir(folder) as children:
            names = [child.name for child in children]
    except OSError:
        return False
    for name in names:
        if OWN_ENTRY_NAMES.fullmatch(name):
            with suppress(OSError):  # a folder named like our file stays, and so does its parent
                os.unlink(folder / name)
    try:
        os.rmdir(folder)
    except OSError:
        return False
    return True


def removal_refusal(entry: Path) -> str | None:
    """Why the cache may not remove the folder at an entry's path (a link, a file, a folder holding
    names it does not write), or None. FileNotFoundError when there is nothing."""
    mode = os.lstat(entry).st_mode
    if not stat.S_ISDIR(mode):
        return describe_mode(mode) if stat.S_ISLNK(mode) else "not a folder"
    foreign = sorted(name for name in os.listdir(entry) if not OWN_ENTRY_NAMES.fullmatch(name))
    if foreign:
        return f"a folder holding files the cache did not write ({', '.join(foreign[:3])})"
    # One of our names on a folder: unlink cannot remove it, so the entry moved aside would lie
    # there for good, unmentioned. (A link or a FIFO under our name is unlinked like a file.)
    folders = sorted(name for name in os.listdir(entry) if stat.S_ISDIR(os.lstat(entry / name).st_mode))
    if folders:
        return f"a folder whose {folders[0]} is a folder, which the cache never writes"
    return None


def discard_entry(entry: Path, key: str) -> None:
    """Move a checked entry folder aside in one rename, then delete it: never a half-deleted entry
    in place. An entry already gone is fine; OSError when it cannot be moved."""
    doomed = entry.parent / f"{leftover_prefix(key)}removed-{uuid.uuid4().hex}"
    try:
        os.replace(entry, doomed)
    except FileNotFoundError:
        return
    remove_own_files(doomed)


def remove_leftovers(entry: Path, key: str) -> None:
    """Under the key's lock: temp folders for this key belong to dead writers, and so do temp
    record files in the entry."""
    try:
        with os.scandir(entry.parent) as names:
            stale = [e.path for e in names if is_leftover_of(e.name, key) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for folder in stale:
        remove_own_files(Path(folder))
    if is_real_dir(entry):
        for name in os.listdir(entry):
            if name.startswith(".") and OWN_ENTRY_NAMES.fullmatch(name):
                with suppress(OSError):
                    os.unlink(entry / name)


def own_size(entry: Path) -> int:
    """Bytes of the files the cache wrote in an entry."""
    total = 0
    with suppress(OSError), os.scandir(entry) as children:
        for child in children:
            if OWN_ENTRY_NAMES.fullmatch(child.name) and child.is_file(follow_symlinks=False):
                total += child.stat(follow_symlinks=False).st_size
    return total
