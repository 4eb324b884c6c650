"""The engine cache's safety promises as users meet them (issue: reliability defects found by fault
injection): it never deletes a folder it did not make, never follows a link, never hangs on a
planted FIFO, serves a read-only cache, says who holds a lock and gives up with a clear error,
and keeps its work folders where a later run can find them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from onnx_builders import overflowing_model
from test_cache_plugin import LOGGING_CONFTEST, REPO, Suite

TESTS = Path(__file__).resolve().parent
RUN_TIMEOUT_S = 120

PERSONAL_FILES = {
    "photos/20/2023-summer/img.jpg": b"\xff\xd8 a photo",
    "backups/20/20240101/db.sql": b"CREATE TABLE t (x int);",
    "mail/in/inbox-2024/msg": b"From: someone",
}

# Writes fail under $TRT_READ_ONLY_ROOT as on a read-only mount (see read_only_fs.py).
READ_ONLY_CONFTEST = """
import os
from read_only_fs import ROOTS, install

if os.environ.get("TRT_READ_ONLY_ROOT"):
    install()
    ROOTS.append(os.path.abspath(os.environ["TRT_READ_ONLY_ROOT"]))
"""

# With $TRT_HANG_BUILD set, the first build signals through that file and then runs for ten
# minutes: a pytest-trt run holding an entry's lock while it builds.
HANGING_BUILD_CONFTEST = """
import os, time
from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend

if os.environ.get("TRT_HANG_BUILD"):
    def slow_build(self, model, build):
        open(os.environ["TRT_HANG_BUILD"], "w").close()
        time.sleep(600)
    OnnxRuntimeBackend.build = slow_build
"""


@pytest.fixture
def suite(trt_pytester: Any, monkeypatch: pytest.MonkeyPatch) -> Suite:
    made = Suite(trt_pytester, monkeypatch)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(TESTS)]))
    return made


def run_bounded(trt_pytester: Any, *args: str) -> pytest.RunResult:
    """A pytest run in a fresh process that fails the test instead of hanging."""
    return trt_pytester.pytester.runpytest_subprocess(*trt_pytester.args(*args), timeout=RUN_TIMEOUT_S)


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@pytest.mark.parametrize("option", ["--trt-cache-clear", "--trt-cache-max-size=1"])
def test_a_folder_the_cache_did_not_make_is_refused_and_nothing_in_it_deleted(suite: Suite, option: str) -> None:
    write_files(suite.cache, PERSONAL_FILES)
    result = run_bounded(suite.trt_pytester, f"--trt-engine-cache={suite.cache}", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: pytest-trt: the engine cache folder {suite.cache} is not empty and has no "
        "PYTEST_TRT_CACHE marker*Delete the folder*or point --trt-engine-cache*"
    ])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert files_under(suite.cache) == PERSONAL_FILES


@pytest.mark.parametrize(
    ("damage", "option"),
    [(b"{not json", None), (b'{"format": "something else"}\n', "--trt-cache-clear"), (b"", "--trt-cache-max-size=1")],
)
def test_a_damaged_marker_runs_the_suite_uncached_with_a_warning_and_leaves_the_folder_alone(
    suite: Suite, damage: bytes, option: str | None
) -> None:
    suite.run()
    (suite.cache / "PYTEST_TRT_CACHE").write_bytes(damage)
    before = files_under(suite.cache)
    result = run_bounded(suite.trt_pytester, f"--trt-engine-cache={suite.cache}", *filter(None, [option]))
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    result.stderr.fnmatch_lines([
        f"*CacheWarning: pytest-trt: engine cache {suite.cache} turned off for this session (its "
        "PYTEST_TRT_CACHE *delete the folder to start a new cache in it*; artifacts are still built, "
        "but not kept across runs"
    ])
    result.stdout.fnmatch_lines(["engine cache off (artifacts kept for this session only): 4 builds*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert files_under(suite.cache) == before  # the marker's bytes too: nothing deleted or rewritten


def test_cache_clear_never_deletes_through_a_symlinked_kind_folder(suite: Suite, tmp_path: Path) -> None:
    suite.run()
    outside = tmp_path / "shared-elsewhere"
    outside.mkdir()
    (suite.cache / "reference").rename(outside / "reference")
    (suite.cache / "reference").symlink_to(outside / "reference", target_is_directory=True)
    before = files_under(outside)
    assert len(before) == 4  # two whole reference entries, outside the cache

    result, counts, _ = suite.run("--trt-cache-clear")
    assert files_under(outside) == before
    assert counts["builds"] == 4  # the onnxruntime entries were cleared; references went uncached
    output = result.stdout.str() + result.stderr.str()  # warnings at start-up go to stderr
    assert f"{suite.cache / 'reference'} (a symbolic link, not followed)" in output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_planted_in_a_shared_cache_does_not_hang_the_run(suite: Suite) -> None:
    suite.run()
    record = suite.entries("onnxruntime")[0] / "record.json"
    record.unlink()
    os.mkfifo(record)
    result = run_bounded(suite.trt_pytester, f"--trt-engine-cache={suite.cache}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*corrupt cache entry*record.json is not a regular file but a FIFO*rebuilding*",
                                 "*engine cache*: 3 hits, 1 miss (1 build*1 corrupt*"])


def test_a_read_only_cache_is_served_and_not_written(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    suite.trt_pytester.pytester.makeconftest(LOGGING_CONFTEST + READ_ONLY_CONFTEST)
    suite.run()
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in suite.cache.rglob("*") if p.is_file()}
    monkeypatch.setenv("TRT_READ_ONLY_ROOT", str(suite.cache))

    result, counts, sessions = suite.run()
    assert counts == {"hits": 4, "misses": 0, "builds": 0, "corrupt": 0}
    assert set(sessions) == {"ORT_DISABLE_ALL", "onnxruntime:hit", "reference:hit"}  # nothing rebuilt
    assert (result.stdout.str() + result.stderr.str()).count("is read-only for this session") == 1
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in suite.cache.rglob("*") if p.is_file()} == before


def test_a_run_waiting_on_a_held_entry_errors_naming_the_holder_and_the_option(suite: Suite, tmp_path: Path) -> None:
    suite.trt_pytester.pytester.makeconftest(LOGGING_CONFTEST + HANGING_BUILD_CONFTEST)
    ready = tmp_path / "holder-is-building"
    args = suite.trt_pytester.args(f"--trt-engine-cache={suite.cache}", "-k", "mlp")
    holder = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=suite.trt_pytester.path,
                              env=dict(os.environ, TRT_HANG_BUILD=str(ready)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the holder run never started building"
            time.sleep(0.05)
        result = run_bounded(suite.trt_pytester,
            f"--trt-engine-cache={suite.cache}", "--trt-lock-timeout=1", "-k", "mlp")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*test_mlp: gave up after 1 s waiting for the lock *.lock on cache entry onnxruntime/*, "
        f"held by pid {holder.pid} on host {socket.gethostname()} since *"
        "raise --trt-lock-timeout (ini trt_lock_timeout)*"
    ])
    assert "Traceback" not in result.stdout.str()


def test_converted_models_live_in_a_work_folder_under_the_cache_that_the_run_removes(
    trt_pytester: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    overflowing_model(trt_pytester.path / "overflow.onnx")
    trt_pytester.pytester.makepyfile(test_overflow="""
import os, pytest
from pathlib import Path

@pytest.mark.trt_model("overflow.onnx", precision="fp16", shapes={"x": (4, 8)},
                       input_ranges={"x": (0.5, 1.0)}, keep_fp32_nodes=("project", "reduce"))
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
def test_overflow(trt_engine):
    work = [p for p in (Path(os.environ["CACHE"]) / "work").iterdir()]
    assert len(work) == 1 and work[0].name.startswith(f"{os.getpid()}-")
    assert list(work[0].rglob("*.onnx"))  # the converted model
""")
    cache = trt_pytester.path / "engine-cache"
    monkeypatch.setenv("CACHE", str(cache))
    run_bounded(trt_pytester, f"--trt-engine-cache={cache}").assert_outcomes(passed=1)
    assert list((cache / "work").iterdir()) == []
