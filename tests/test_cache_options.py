"""The engine cache's options as users meet them: mistakes are usage errors that name the option
(never an INTERNALERROR or a silent no-op), and the lock timeout comes from the command line or
the ini file."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_trt.run.options import Settings

RUN_TIMEOUT_S = 120


def run_bounded(trt_pytester: Any, *args: str) -> pytest.RunResult:
    return trt_pytester.pytester.runpytest_subprocess(*trt_pytester.args(*args), timeout=RUN_TIMEOUT_S)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--trt-engine-cache",), "pytest-trt: --trt-engine-cache without a DIR keeps engines in pytest's cache "
                                  "folder, but pytest's cacheprovider plugin is disabled (-p no:cacheprovider); "
                                  "give a folder (--trt-engine-cache=DIR) or enable the cacheprovider"),
        (("--trt-cache-clear",), "pytest-trt: --trt-cache-clear empties the engine cache, but no engine cache is "
                                 "in use; add --trt-engine-cache[[]=DIR[]]*"),
        (("--trt-engine-cache=c", "--trt-lock-timeout=0"), "argument --trt-lock-timeout: must be > 0, got 0.0"),
        (("--trt-engine-cache=c", "--trt-lock-timeout=inf"),
         "argument --trt-lock-timeout: must be a finite number, got 'inf'"),
        (("--trt-engine-cache=c", "--trt-lock-timeout=soon"), "*--trt-lock-timeout: invalid float value: 'soon'"),
    ],
)
def test_cache_option_mistakes_are_usage_errors(trt_pytester: Any, args: tuple[str, ...], message: str) -> None:
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    result = run_bounded(trt_pytester, *args)  # trt_pytester.args() has -p no:cacheprovider
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_the_default_cache_folder_works_with_the_cacheprovider(trt_pytester: Any) -> None:
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    args = list(trt_pytester.args("--trt-engine-cache", "--trt-cache-clear"))
    at = args.index("no:cacheprovider")
    del args[at - 1 : at + 1]  # this run keeps pytest's cacheprovider
    result = trt_pytester.pytester.runpytest_subprocess(*args, timeout=RUN_TIMEOUT_S)
    result.assert_outcomes(passed=1)
    assert (trt_pytester.path / ".pytest_cache" / "d" / "trt-engines" / "PYTEST_TRT_CACHE").is_file()


def test_lock_timeout_comes_from_the_ini_file_and_the_command_line_wins(trt_pytester: Any) -> None:
    pytester = trt_pytester.pytester
    assert Settings.from_config(pytester.parseconfigure(*trt_pytester.args())).lock_timeout_s == 600
    pytester.makeini("[pytest]\ntrt_lock_timeout = 7.5\n")
    assert Settings.from_config(pytester.parseconfigure(*trt_pytester.args())).lock_timeout_s == 7.5
    config = pytester.parseconfigure(*trt_pytester.args("--trt-lock-timeout=2"))
    assert Settings.from_config(config).lock_timeout_s == 2
    pytester.makeini("[pytest]\ntrt_lock_timeout = -5\n")
    result = run_bounded(trt_pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-trt: ini option trt_lock_timeout: must be > 0, got -5.0"])
