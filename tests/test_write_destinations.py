"""What the plugin writes never replaces anything but a regular file, never writes through a link,
and gets the mode the user's umask gives (0644 under 022): reports, baseline files, saved
failures, the engine cache's marker and entries."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from test_baseline_plugin import MEASURE, baseline_files
from test_baseline_session_end import assert_pytest_summary_kept, write_tests

import pytest_trt.run.session as session
from pytest_trt.store import files
from pytest_trt.store.regular_files import NotRegularFile


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_link_at_the_destination_is_refused_and_its_target_kept(tmp_path) -> None:
    target = tmp_path / "target.json"
    target.write_text("keep me")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(NotRegularFile, match="a symbolic link is there"):
        files.write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "target.json"]


def test_a_fifo_at_the_destination_is_refused(tmp_path) -> None:
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match="a FIFO"):
        files.write_atomic(fifo, "new")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_are_written_with_the_umask(tmp_path, mask, mode) -> None:
    old = os.umask(mask)
    try:
        files.write_atomic(tmp_path / "new.json", "x")
        existing = tmp_path / "existing.json"
        existing.write_text("old")
        existing.chmod(0o600)
        files.write_atomic(existing, "new")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new.json") == mode
    assert _mode(existing) == mode


def test_the_umask_is_read_without_changing_it() -> None:
    old = os.umask(0o027)
    try:
        assert files.umask() == 0o027
        assert files.file_mode() == 0o640 and files.folder_mode() == 0o750
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)


@pytest.mark.parametrize("option", ["--trt-report-json", "--trt-report-md"])
def test_a_report_path_that_is_a_link_or_a_fifo_is_a_usage_error(trt_pytester, option):
    write_tests(trt_pytester)
    target = trt_pytester.path / "target.txt"
    target.write_text("keep me")
    link = trt_pytester.path / "link.json"
    link.symlink_to(target)
    fifo = trt_pytester.path / "fifo.json"
    os.mkfifo(fifo)
    for path, kind in ((link, "a symbolic link"), (fifo, "a FIFO (named pipe)")):
        result = trt_pytester.run(*MEASURE, f"{option}={path}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: pytest-trt: {option}: {path} is {kind}, not a regular file;*"])
    assert link.is_symlink() and target.read_text() == "keep me"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_device_at_the_report_path_is_a_usage_error(trt_pytester):
    device = trt_pytester.path / "full"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is
    except (PermissionError, AttributeError):
        pytest.skip("making a device node needs root")
    write_tests(trt_pytester)
    result = trt_pytester.run(*MEASURE, f"--trt-report-json={device}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-trt: --trt-report-json: {device} is a character device, *"])
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_a_link_that_appears_at_the_report_path_before_the_end_is_an_error_line(trt_pytester, monkeypatch):
    write_tests(trt_pytester)
    target = trt_pytester.path / "target.txt"
    target.write_text("keep me")
    link = trt_pytester.path / "report.json"
    finish = session.RunState.write_reports

    def plant_then_write(state):
        link.symlink_to(target)
        finish(state)

    monkeypatch.setattr(session.RunState, "write_reports", plant_then_write)
    result = trt_pytester.run(*MEASURE, f"--trt-report-json={link}")
    assert_pytest_summary_kept(result)
    result.stdout.fnmatch_lines([f"error: --trt-report-json: cannot write {link} (a symbolic link is there, *)"])
    assert link.is_symlink() and target.read_text() == "keep me"


def test_a_0644_baseline_file_stays_0644_after_an_update_and_reports_are_0644(trt_pytester, umask_022):
    write_tests(trt_pytester)
    report = trt_pytester.path / "trt.json"
    trt_pytester.run(*MEASURE, "--trt-update-baselines", f"--trt-report-json={report}")
    (path,) = baseline_files(trt_pytester.path)
    assert _mode(path) == 0o644 and _mode(report) == 0o644
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1, failed=1)
    assert _mode(path) == 0o644


def test_a_cache_is_written_readable_by_other_accounts(trt_pytester, umask_022):
    write_tests(trt_pytester)
    cache = trt_pytester.path / "cache"
    trt_pytester.run(*MEASURE, f"--trt-engine-cache={cache}").assert_outcomes(passed=1, failed=1)
    assert _mode(cache / "PYTEST_TRT_CACHE") == 0o644
    records = list(cache.rglob("record.json"))
    assert records
    for record in records:
        entry = record.parent
        assert _mode(entry) == 0o755, entry
        assert _mode(record) == 0o644 and _mode(entry / "artifact.bin") == 0o644
