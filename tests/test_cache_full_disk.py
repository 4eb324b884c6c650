"""A cache whose disk fills up: the cache turns itself off with one warning, and the scratch
files (converted models) leave that disk for a private temp folder, so the tests still pass."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pytest_trt.store.cache import EngineCache
from pytest_trt.types import Artifact

# The cache's disk holds the small files (marker, locks, owner records) and nothing larger: a
# full disk as a 40 KiB tmpfs is once the first model is written.
FULL_DISK_CONFTEST = """
import errno
import os

_fsync = os.fsync
CACHE = os.environ["FULL_CACHE"]


def _full_disk_fsync(fd):
    path = os.readlink(f"/proc/self/fd/{fd}")
    if path.startswith(CACHE + os.sep) and os.fstat(fd).st_size > 16384:
        raise OSError(errno.ENOSPC, "No space left on device")
    return _fsync(fd)


os.fsync = _full_disk_fsync
"""

FP16_TEST = """
import pytest

@pytest.mark.trt_model("mlp.onnx", precision="fp16", batch_size=4)
@pytest.mark.trt_accuracy(rtol=5e-2, atol=5e-2)
def test_mlp_in_fp16(trt_engine):
    pass
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads file names from /proc/self/fd")
def test_a_full_cache_disk_turns_the_cache_off_and_fp16_tests_pass(trt_pytester, monkeypatch) -> None:
    cache = trt_pytester.path / "engine-cache"
    monkeypatch.setenv("FULL_CACHE", str(cache))
    trt_pytester.pytester.makeconftest(FULL_DISK_CONFTEST)
    trt_pytester.pytester.makepyfile(test_fp16=FP16_TEST)
    result = trt_pytester.run_subprocess(f"--trt-engine-cache={cache}")
    result.assert_outcomes(passed=1)
    output = result.stdout.str() + result.stderr.str()
    assert output.count("turned off for this session") == 1, output
    assert "No space left on device" in output
    work = cache / "work"
    assert not work.is_dir() or list(work.iterdir()) == []  # the abandoned work folder is removed too


def test_the_work_folder_leaves_the_cache_once_the_cache_turns_off(tmp_path: Path) -> None:
    warned: list[str] = []
    cache = EngineCache(tmp_path / "cache", warn=warned.append)
    first = cache.work_dir()
    assert first.parent == tmp_path / "cache" / "work"
    assert cache._folder is not None
    cache._folder.disable("writing failed: [Errno 28] No space left on device")
    moved = cache.work_dir()
    assert moved != first and not moved.is_relative_to(tmp_path / "cache")
    assert first.is_dir()  # models made there may still be in use: removed at close
    cache.close()
    assert not first.exists() and not moved.exists()


def test_a_scratch_write_on_a_full_cache_disk_is_retried_in_a_temp_folder(tmp_path: Path) -> None:
    warned: list[str] = []
    cache = EngineCache(tmp_path / "cache", warn=warned.append)
    written: list[Path] = []

    def build() -> Artifact:
        scratch = cache.work_dir() / "model.onnx"
        if scratch.is_relative_to(tmp_path / "cache"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(scratch))
        scratch.write_bytes(b"converted")
        written.append(scratch)
        return Artifact(scratch.read_bytes())

    value, event = cache.get_or_build("converted-model", {"m": 1}, build, lambda artifact: artifact.data)
    assert value == b"converted" and event.outcome == "uncached"
    assert len(written) == 1 and len(warned) == 1 and "its disk is full" in warned[0]
    # Other errors are the build's own, not a full disk.
    def broken() -> Artifact:
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        cache.get_or_build("converted-model", {"m": 2}, broken, lambda artifact: artifact.data)
    cache.close()
