"""A file that cannot be written at the end of the session (a baseline, a report) is an error
line in the pytest-trt summary: pytest's own FAILURES section and totals still print, and the run
exits non-zero. The store's lock lives beside the baselines, where no other user can plant it,
and nothing but baselines reaches ``git add baselines/``."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_baseline_plugin import MEASURE, TEST_A, baseline_files, stored

import pytest_trt.run.session as session
from pytest_trt.baselines import session_end
from pytest_trt.baselines import store as baseline
from pytest_trt.baselines.hardware import hardware_for
from pytest_trt.store import files

BROKEN = """
def test_broken():
    assert 1 == 2, "an ordinary failure"
"""


def write_tests(trt_pytester) -> None:
    trt_pytester.pytester.makepyfile(test_perf="import pytest\n" + TEST_A.format(shape=(8, 256)) + BROKEN)


def assert_pytest_summary_kept(result: pytest.RunResult) -> None:
    """The session end did not crash: FAILURES, the short summary and the totals are there."""
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*= FAILURES =*",
        "*an ordinary failure*",
        "*pytest-trt summary*",
        "*short test summary info*",
        "FAILED test_perf.py::test_broken - AssertionError: an ordinary failure*",
        "*= 1 failed, 1 passed in *",
    ])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_baseline_dir_that_is_a_file_is_a_usage_error(trt_pytester):
    write_tests(trt_pytester)
    blocker = trt_pytester.path / "baselines.txt"
    blocker.write_text("not a folder")
    result = trt_pytester.run(*MEASURE, f"--trt-baseline-dir={blocker}", "--trt-update-baselines")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-trt: --trt-baseline-dir: {blocker} is a file, not a folder"])
    assert blocker.read_text() == "not a folder"


def test_a_baseline_folder_that_turns_into_a_file_is_an_error_line(trt_pytester, monkeypatch):
    # Checked at the start of the run; a folder replaced by a file before the session end is
    # reported there, and pytest's own summary is kept.
    write_tests(trt_pytester)
    blocker = trt_pytester.path / "baselines"
    finish = session.RunState.write_reports

    def replace_then_write(state):
        assert not blocker.exists()  # nothing is written to the store before the session end
        blocker.write_text("not a folder")
        finish(state)

    monkeypatch.setattr(session.RunState, "write_reports", replace_then_write)
    result = trt_pytester.run(*MEASURE, f"--trt-baseline-dir={blocker}", "--trt-update-baselines")
    assert_pytest_summary_kept(result)
    result.stdout.fnmatch_lines([
        f"error: baselines: baseline folder {blocker} is a file, not a folder (--trt-baseline-dir); "
        "1 test(s) not recorded (test_perf.py::test_a)",
    ])
    assert blocker.read_text() == "not a folder"


def _failing_write(kind: int):
    """A baseline write that fails as on a read-only file system (before any byte) or a full one
    (half way through the temp file): permission bits do not stop root, so the error is raised
    in the write itself, through the real temp-file path."""

    def write(path, data, *, temp_dir=None):
        def stream(out) -> None:
            if kind == errno.ENOSPC:
                out.write(data[: len(data) // 2].encode())
            raise OSError(kind, os.strerror(kind), str(path))

        files.write_atomic_with(path, stream, temp_dir=temp_dir)

    return write


@pytest.mark.parametrize("kind", [errno.EROFS, errno.ENOSPC], ids=["read-only", "full"])
def test_a_failing_baseline_write_is_an_error_line_and_keeps_the_old_file(trt_pytester, monkeypatch, kind):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1, failed=1)
    (path,) = baseline_files(trt_pytester.path)
    before = path.read_bytes()
    monkeypatch.setattr(baseline, "write_atomic", _failing_write(kind))
    report = trt_pytester.path / "trt.json"
    result = trt_pytester.run(*MEASURE, "--trt-update-baselines", f"--trt-report-json={report}")
    assert_pytest_summary_kept(result)
    result.stdout.fnmatch_lines([
        f"baseline: test_perf.py::test_a: {session_end.NOT_WRITTEN_NOTE}",
        f"error: baselines: baseline file {path}: cannot be written ({os.strerror(kind)}); "
        "1 test(s) not recorded (test_perf.py::test_a)",
    ])
    assert path.read_bytes() == before
    tests = {t["nodeid"]: t for t in json.loads(report.read_text())["tests"]}
    assert tests["test_perf.py::test_a"]["baseline_note"] == session_end.NOT_WRITTEN_NOTE
    leftovers = [p for p in (trt_pytester.path / "baselines").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_baseline_folder_is_an_error_line(trt_pytester):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1, failed=1)
    (path,) = baseline_files(trt_pytester.path)
    folders = [path.parent, trt_pytester.path / "baselines" / baseline.PRIVATE_DIR]
    for folder in folders:
        folder.chmod(0o555)
    try:
        result = trt_pytester.run(*MEASURE, "--trt-update-baselines")
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert_pytest_summary_kept(result)
    result.stdout.fnmatch_lines(["error: baselines: *Permission denied*1 test(s) not recorded (test_perf.py::test_a)"])


def _old_lock_path(path: Path) -> Path:
    """Where the lock of a baseline file used to be: a name anyone could predict in /tmp."""
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"pytest-trt-baseline-{key}.lock"


def test_a_link_planted_at_the_old_lock_path_in_tmp_changes_nothing(trt_pytester):
    write_tests(trt_pytester)
    hardware, _ = hardware_for(False, _fingerprint())
    target = trt_pytester.path / "baselines" / hardware / "test_perf.json"
    planted = _old_lock_path(target)
    planted.symlink_to("/nonexistent-folder/victim")
    try:
        result = trt_pytester.run(*MEASURE, "--trt-update-baselines")
    finally:
        planted.unlink()
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # test_broken
    result.assert_outcomes(passed=1, failed=1)
    assert "error:" not in result.stdout.str()
    assert sorted(stored(trt_pytester.path)["tests"]) == ["test_perf.py::test_a"]


def _fingerprint() -> dict:
    from pytest_trt.fingerprint import machine_fingerprint

    return machine_fingerprint()


def test_a_link_in_place_of_the_lock_is_refused_not_followed(trt_pytester):
    write_tests(trt_pytester)
    private = trt_pytester.path / "baselines" / baseline.PRIVATE_DIR
    private.mkdir(parents=True)
    victim = trt_pytester.path / "victim.txt"
    victim.write_text("keep me")
    (private / baseline.LOCK_NAME).symlink_to(victim)
    result = trt_pytester.run(*MEASURE, "--trt-update-baselines")
    assert_pytest_summary_kept(result)
    result.stdout.fnmatch_lines([
        f"error: baselines: baseline store {private.parent}: {private / baseline.LOCK_NAME} is a symbolic link; "
        "remove it; 1 test(s) not recorded (test_perf.py::test_a)",
    ])
    assert victim.read_text() == "keep me"
    assert baseline_files(trt_pytester.path) == []


def test_the_lock_lives_beside_the_baselines_and_git_add_takes_only_baselines(trt_pytester):
    write_tests(trt_pytester)
    root = trt_pytester.path
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    result = trt_pytester.run(*MEASURE, "--trt-update-baselines")
    result.assert_outcomes(passed=1, failed=1)
    (path,) = baseline_files(root)
    private = root / "baselines" / baseline.PRIVATE_DIR
    assert (private / baseline.LOCK_NAME).is_file()
    assert not _old_lock_path(path).exists()
    subprocess.run(["git", "add", "baselines"], cwd=root, check=True)
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=root, check=True,
                            capture_output=True, text=True).stdout.split()
    assert staged == [path.relative_to(root).as_posix()]


@pytest.mark.parametrize("option", ["--trt-report-json", "--trt-report-md"])
def test_an_unwritable_report_path_is_an_error_line(trt_pytester, option):
    write_tests(trt_pytester)
    blocker = trt_pytester.path / "blocker"
    blocker.write_text("a file, not a folder")
    result = trt_pytester.run(*MEASURE, f"{option}={blocker / 'report.out'}")
    assert_pytest_summary_kept(result)
    result.stdout.fnmatch_lines([f"error: {option}: cannot write {blocker / 'report.out'} (File exists: {blocker})"])


def test_a_held_store_lock_gives_up_after_the_lock_timeout_naming_the_holder(tmp_path):
    import subprocess
    import sys
    import textwrap

    from pytest_trt.baselines.store import BaselineStore
    from pytest_trt.errors import BaselineFileError

    store = BaselineStore(tmp_path / "baselines", "cpu-test-1c", lock_timeout_s=0.5)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from pytest_trt.baselines.store import BaselineStore
        store = BaselineStore(Path({str(tmp_path / "baselines")!r}), "cpu-test-1c")
        with store._locked():
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BaselineFileError) as caught, store._locked():
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    message = str(caught.value)
    assert "gave up after 0.5 s waiting for its lock" in message
    assert f"held by pid {holder.pid} on host" in message and "--trt-lock-timeout" in message
