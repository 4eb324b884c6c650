"""The root marker: a ``PYTEST_TRT_CACHE`` file says "pytest-trt made this folder". The cache
writes and deletes only in a folder holding it; a new or empty folder gets one, a non-empty folder
without one is refused."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from pytest_trt.errors import CacheError
from pytest_trt.store.files import write_atomic
from pytest_trt.store.layout import LOCKS_DIR, MARKER_FILE
from pytest_trt.store.regular_files import NotRegularFile, describe_mode, is_real_dir, read_regular_file

_FORMAT = "pytest-trt engine cache"
_VERSION = 1
_MAX_BYTES = 64 * 1024
# write_atomic's temp file for the marker: two processes marking one new folder at once see it.
_MARKER_TEMP = re.compile(rf"\.{MARKER_FILE}\..+\.tmp")


def _marker_bytes() -> bytes:
    marker = {
        "format": _FORMAT,
        "marker_version": _VERSION,
        "created": datetime.now(timezone.utc).isoformat(),
        "about": "pytest-trt engine cache. pytest-trt deletes files only in folders holding this "
                 "marker, and there only what it wrote.",
    }
    return (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()


def marker_problem(root: Path) -> str | None:
    """Why ``root`` does not carry a valid marker, or None when it does."""
    try:
        marker = json.loads(read_regular_file(root / MARKER_FILE, _MAX_BYTES))
    except FileNotFoundError:
        return f"it has no {MARKER_FILE} marker file"
    except NotRegularFile as exc:
        return f"its {MARKER_FILE} is {exc.strerror}, not a marker file"
    except (OSError, ValueError) as exc:
        return f"its {MARKER_FILE} marker cannot be read ({exc})"
    if not isinstance(marker, dict) or marker.get("format") != _FORMAT:
        return f"its {MARKER_FILE} file is not a pytest-trt cache marker"
    return None


class DamagedMarker(CacheError):
    """The folder holds a ``PYTEST_TRT_CACHE`` that is not a valid marker (damaged, replaced,
    a link): most likely a cache folder that was damaged, so the run goes on without it."""


def claim_root(root: Path) -> None:
    """Make sure ``root`` is a cache folder pytest-trt made: mark a new or empty folder, accept a
    marked one; DamagedMarker for a marker that is not valid, CacheError for a non-empty folder
    without one. OSError: it cannot be made or marked."""
    root.mkdir(parents=True, exist_ok=True)
    names = os.listdir(root)
    if MARKER_FILE in names:
        problem = marker_problem(root)
        if problem is not None:
            raise DamagedMarker(
                f"{problem}, so pytest-trt cannot tell that it made this folder, and neither "
                "reads, stores nor deletes anything there; delete the folder to start a new cache "
                "in it, or point --trt-engine-cache at another folder"
            )
        return
    if all(_MARKER_TEMP.fullmatch(name) for name in names):  # empty, or another process marking it
        write_atomic(root / MARKER_FILE, _marker_bytes())
        return
    older = (
        " It looks like a cache made by an older pytest-trt, before caches carried the marker."
        if (root / LOCKS_DIR).is_dir() else ""
    )
    raise CacheError(
        f"the engine cache folder {root} is not empty and has no {MARKER_FILE} marker, so "
        f"pytest-trt cannot tell files it wrote from files it did not, and will neither store nor "
        f"delete anything there.{older} Delete the folder (or empty it) to start a new cache in "
        "it, or point --trt-engine-cache (trt_engine_cache_dir, PYTEST_TRT_ENGINE_CACHE) at a "
        "new or empty folder"
    )


def writing_problem(root: Path) -> str | None:
    """Why nothing can be written in the (marked) ``root``, or None when it can."""
    locks = root / LOCKS_DIR
    try:
        locks.mkdir(exist_ok=True)
        if not is_real_dir(locks):
            return f"{locks} is not a folder but {describe_mode(os.lstat(locks).st_mode)}"
        probe = locks / f".probe-{os.getpid()}"
        write_atomic(probe, b"")
        probe.unlink()
    except OSError as exc:
        return f"it cannot be written: {exc}"
    return None
