"""A baseline file that cannot be read, or that belongs to other hardware, is never compared with
and never overwritten unless the user asks for it with --trt-replace-unreadable-baselines; the
run that meets it while updating fails."""

from __future__ import annotations

import fnmatch
import json

import pytest
from test_baseline_plugin import MEASURE, baseline_files, stored, write_tests

REPLACE = "--trt-replace-unreadable-baselines"
OTHER_HARDWARE = "nvidia-h100-80gb-hbm3-80gb-cc9.0-132sm"


def _truncated(text: str) -> bytes:
    return text[: len(text) // 2].encode()


def _garbage(text: str) -> bytes:
    return b"\xff\xfe\x00 not a baseline \x13"


def _wrong_shape(text: str) -> bytes:
    return json.dumps({"schema": 1, "hardware": "x", "tests": ["test_perf.py::test_a"]}).encode()


def _newer_schema(text: str) -> bytes:
    return text.replace('"schema": 1', '"schema": 2').encode()


UNREADABLE = [
    pytest.param(_truncated, "not valid JSON (line *", id="truncated"),
    pytest.param(_garbage, "cannot be read: 'utf-8' codec can't decode byte 0xff*", id="garbage"),
    pytest.param(_wrong_shape, "expected an object with a 'tests' object", id="wrong-shape"),
    pytest.param(_newer_schema, "schema 2 is newer than this pytest-trt reads (1); upgrade pytest-trt",
                 id="newer-schema"),
    # Once accepted and rewritten as schema 1.
    pytest.param(lambda text: text.replace('"schema": 1', '"schema": 0').encode(),
                 "schema 0 is not one pytest-trt writes (1 to 1); the file was edited", id="schema-0"),
    pytest.param(lambda text: text.replace('"schema": 1', '"schema": -1').encode(),
                 "schema -1 is not one pytest-trt writes (1 to 1); the file was edited", id="schema-negative"),
]


def _record_both(trt_pytester):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    (path,) = baseline_files(trt_pytester.path)
    return path


@pytest.mark.parametrize(("damage", "reason"), UNREADABLE)
def test_update_refuses_an_unreadable_file_and_keeps_it(trt_pytester, damage, reason):
    path = _record_both(trt_pytester)
    damaged = damage(path.read_text())
    path.write_bytes(damaged)
    result = trt_pytester.run(*MEASURE, "--trt-update-baselines", "-k", "test_a")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines([
        f"error: baselines: baseline file {path}: {reason}; left as it is, 1 test(s) not recorded "
        f"(test_perf.py::test_a): fix or remove it, or pass {REPLACE} to replace it with this run's entries",
        "=* 1 passed, 1 deselected in *",
    ])
    assert path.read_bytes() == damaged
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.parametrize(("damage", "reason"), UNREADABLE)
def test_the_explicit_option_replaces_an_unreadable_file(trt_pytester, damage, reason):
    path = _record_both(trt_pytester)
    path.write_bytes(damage(path.read_text()))
    result = trt_pytester.run(*MEASURE, "--trt-update-baselines", REPLACE, "-k", "test_a")
    assert result.ret == pytest.ExitCode.OK
    shown = " ".join(result.stdout.str().split())  # the summary wraps long notes at the terminal width
    assert fnmatch.fnmatch(shown, f"*baselines: baseline file {path}: {reason}; replaced ({REPLACE}) by this run's 1 entry*")
    assert sorted(stored(trt_pytester.path)["tests"]) == ["test_perf.py::test_a"]
    trt_pytester.run(*MEASURE, "-k", "test_a").assert_outcomes(passed=1, deselected=1)


def test_the_ini_twin_replaces_an_unreadable_file(trt_pytester):
    path = _record_both(trt_pytester)
    path.write_text("{")
    trt_pytester.pytester.makeini("[pytest]\ntrt_replace_unreadable_baselines = true\n")
    result = trt_pytester.run(*MEASURE, "--trt-update-baselines")
    assert result.ret == pytest.ExitCode.OK
    assert sorted(stored(trt_pytester.path)["tests"]) == ["test_perf.py::test_a", "test_perf.py::test_b"]


def test_an_update_keeps_the_entries_of_tests_that_did_not_run(trt_pytester):
    path = _record_both(trt_pytester)
    before = json.loads(path.read_text())["tests"]["test_perf.py::test_b"]
    trt_pytester.run(*MEASURE, "--trt-update-baselines", "-k", "test_a").assert_outcomes(passed=1, deselected=1)
    assert stored(trt_pytester.path)["tests"]["test_perf.py::test_b"] == before


def _moved_from_other_hardware(path) -> dict:
    data = json.loads(path.read_text())
    data["hardware"] = OTHER_HARDWARE
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def test_a_file_of_other_hardware_is_not_compared(trt_pytester):
    path = _record_both(trt_pytester)
    _moved_from_other_hardware(path)
    result = trt_pytester.run(*MEASURE)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        f"*baseline: baseline file {path}: recorded on hardware '{OTHER_HARDWARE}', but it lies in the folder of "
        f"'{path.parent.name}', this machine's hardware class; not compared: fix, move or remove the file, or "
        f"replace it with --trt-update-baselines {REPLACE}",
    ])
    assert "vs baseline" not in result.stdout.str()


def test_an_update_does_not_overwrite_a_file_of_other_hardware(trt_pytester):
    path = _record_both(trt_pytester)
    _moved_from_other_hardware(path)
    before = path.read_bytes()
    result = trt_pytester.run(*MEASURE, "--trt-update-baselines")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        f"error: baselines: baseline file {path}: recorded on hardware '{OTHER_HARDWARE}', but it lies in the "
        f"folder of '{path.parent.name}', this machine's hardware class; left as it is, 2 test(s) not recorded*",
    ])
    assert path.read_bytes() == before
    replaced = trt_pytester.run(*MEASURE, "--trt-update-baselines", REPLACE)
    assert replaced.ret == pytest.ExitCode.OK
    assert stored(trt_pytester.path)["hardware"] == path.parent.name


def test_a_file_whose_module_does_not_match_its_name_is_not_compared(trt_pytester):
    path = _record_both(trt_pytester)
    data = json.loads(path.read_text())
    data["module"] = "tests/test_elsewhere.py"
    path.write_text(json.dumps(data))
    result = trt_pytester.run(*MEASURE)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        f"*baseline: baseline file {path}: its 'module' 'tests/test_elsewhere.py' does not match the file name; "
        "not compared*",
    ])
