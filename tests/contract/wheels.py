"""Real wheels for contract tests: fetched once with pip into a cache folder, read in place.

``cached_wheel`` finds a wheel in the cache folder (``$PYTEST_TRT_WHEEL_CACHE``, else
``$XDG_CACHE_HOME/pytest-trt/wheels``, else ``~/.cache/pytest-trt/wheels``) or, when asked to,
downloads it with ``pip download --no-deps`` first (under a file lock, so xdist workers fetch it
once; the file appears whole or not at all). ``missing_strings`` streams one member of a wheel
and says which NUL-terminated strings (C string literals) it lacks, without unpacking it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

CHUNK = 8 << 20
# pip matches platform tags exactly; these wheels are manylinux_2_28 x86-64 builds.
PIP_TARGET = (
    "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.12",
    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_27_x86_64",
    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
)


def cache_dir() -> Path:
    given = os.environ.get("PYTEST_TRT_WHEEL_CACHE")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-trt" / "wheels"


def _find(folder: Path, filename_prefix: str) -> Path | None:
    found = sorted(folder.glob(f"{filename_prefix}-*.whl")) if folder.is_dir() else []
    return found[0] if found else None


def cached_wheel(requirement: str, filename_prefix: str, *, download: bool) -> Path | None:
    """The cached wheel for ``requirement`` (``name==version``; its file name starts with
    ``filename_prefix``), downloading it first when ``download``; None if absent."""
    folder = cache_dir() / filename_prefix
    found = _find(folder, filename_prefix)
    if found is not None or not download:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        found = _find(folder, filename_prefix)
        if found is not None:
            return found
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", *PIP_TARGET, "-d", tmp, requirement]
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            got = _find(Path(tmp), filename_prefix)
            if done.returncode != 0 or got is None:
                raise RuntimeError(f"pip download {requirement} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
            final = folder / got.name
            os.replace(got, final)  # same folder: the wheel appears whole
        return final


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member)


def missing_strings(wheel: Path, member: str, names: Iterable[str]) -> set[str]:
    """The ``names`` that do not occur NUL-terminated in ``member`` of ``wheel``. A C string
    literal ends in NUL; the linker may merge it into the tail of a longer one
    ("user_compute_stream" inside "has_user_compute_stream"), so any prefix is accepted."""
    needles = {name: name.encode() + b"\0" for name in names}
    overlap = max((len(n) for n in needles.values()), default=1)
    missing = set(needles)
    tail = b""
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as stream:
        while missing:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            window = tail + chunk
            missing -= {name for name in missing if needles[name] in window}
            tail = window[-overlap:]
    return missing
