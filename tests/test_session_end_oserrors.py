"""An OSError at the session end is an error line under pytest's own summary, never a traceback in
its place: a baseline folder that cannot be searched, a test module whose baseline file name
would be too long for the file system (shortened with a digest instead), a report name too long."""

from __future__ import annotations

import errno
import os
import pathlib
from pathlib import Path

import pytest
from test_baseline_plugin import MEASURE, TEST_A, baseline_files
from test_baseline_session_end import assert_pytest_summary_kept, write_tests

from pytest_trt.baselines.hardware import MAX_NAME_BYTES, module_file_name


def _denied_under(monkeypatch, folder: Path) -> None:
    """Every stat below ``folder`` fails as after ``chmod 000 folder`` for a user who is not root
    (root passes permission bits, and the suite runs as root in CI)."""
    real_stat = pathlib.Path.stat

    def stat(self, *args, **kwargs):
        if self != folder and self.is_relative_to(folder):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "stat", stat)


@pytest.mark.parametrize("update", [False, True], ids=["compare", "update"])
def test_a_baseline_folder_that_cannot_be_searched_is_an_error_line(trt_pytester, monkeypatch, update):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1, failed=1)
    (path,) = baseline_files(trt_pytester.path)
    before = path.read_bytes()
    _denied_under(monkeypatch, path.parent)
    # The test file named: pytest's own collection would walk into the folder otherwise.
    result = trt_pytester.run(*MEASURE, "test_perf.py", *(["--trt-update-baselines"] if update else []))
    monkeypatch.undo()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*= FAILURES =*", "*pytest-trt summary*", "*short test summary info*"])
    # The test that reads the baseline says it cannot; the session end says nothing was written.
    result.stdout.fnmatch_lines([f"*baseline file {path}: cannot be read (Permission denied)*"])
    if update:
        result.stdout.fnmatch_lines(["error: baselines: *Permission denied*1 test(s) not recorded (test_perf.py::test_a)*"])
    assert path.read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root passes permission bits")
def test_a_baseline_root_of_mode_000_is_an_error_line(trt_pytester):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=1, failed=1)
    root = trt_pytester.path / "baselines"
    root.chmod(0o000)
    try:
        result = trt_pytester.run(*MEASURE, "test_perf.py", "--trt-update-baselines")
    finally:
        root.chmod(0o755)
    assert_pytest_summary_kept(result)
    result.stdout.fnmatch_lines(["error: baselines: *Permission denied*"])


def test_a_long_module_path_gets_a_short_baseline_file_name_that_later_runs_find(trt_pytester):
    folder = trt_pytester.path / ("d" * 100) / ("e" * 100) / ("f" * 100)
    folder.mkdir(parents=True)
    (folder / "test_long.py").write_text("import pytest\n" + TEST_A.format(shape=(8, 256)).replace(
        '"mlp.onnx"', repr(str(trt_pytester.path / "mlp.onnx"))))
    first = trt_pytester.run(*MEASURE, "--trt-update-baselines")
    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    (path,) = baseline_files(trt_pytester.path)
    module = f"{'d' * 100}/{'e' * 100}/{'f' * 100}/test_long.py"
    assert path.name == module_file_name(module)
    assert len(path.name.encode()) <= MAX_NAME_BYTES
    again = trt_pytester.run(*MEASURE, "-v")
    assert again.ret == pytest.ExitCode.OK, again.stdout.str()
    assert "no baseline" not in again.stdout.str()
    assert "error:" not in again.stdout.str()
    assert baseline_files(trt_pytester.path) == [path]


def test_baseline_file_names_short_enough_are_kept_and_long_ones_end_in_a_digest():
    assert module_file_name("tests/perf/test_x.py") == "tests__perf__test_x.json"
    exact = "a" * (MAX_NAME_BYTES - len(".json")) + ".py"
    assert module_file_name(exact) == exact.removesuffix(".py") + ".json"
    long_a, long_b = "x/" * 150 + "test_a.py", "x/" * 150 + "test_b.py"
    name_a, name_b = module_file_name(long_a), module_file_name(long_b)
    assert name_a == module_file_name(long_a)  # the same on every run
    assert name_a != name_b and name_a.startswith("x__x__") and name_a.endswith(".json")
    assert len(name_a.encode()) == MAX_NAME_BYTES
    wide = module_file_name("ü" * 200 + ".py")  # cut on whole characters
    assert len(wide.encode()) <= MAX_NAME_BYTES and wide.encode().decode() == wide


@pytest.mark.parametrize("option", ["--trt-report-json", "--trt-report-md"])
def test_a_report_name_too_long_is_a_usage_error_naming_the_option(trt_pytester, option):
    write_tests(trt_pytester)
    target = trt_pytester.path / ("r" * 300 + ".out")
    result = trt_pytester.run(*MEASURE, f"{option}={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: pytest-trt: {option}: cannot use {target}: File name too long"])


def test_an_oserror_escaping_the_session_end_is_an_error_line(trt_pytester, monkeypatch):
    import pytest_trt.run.session as session

    def fail(state) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/somewhere")

    write_tests(trt_pytester)
    monkeypatch.setattr(session.RunState, "write_reports", fail)
    result = trt_pytester.run(*MEASURE)
    assert_pytest_summary_kept(result)
    result.stdout.fnmatch_lines(["error: session end: *Input/output error*"])
