"""The engine cache's options as users meet them: mistakes are usage errors that name the option
(never an INTERNALERROR or a silent no-op)."""

from __future__ import annotations

from typing import Any

import pytest

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
    ],
)
def test_cache_option_mistakes_are_usage_errors(trt_pytester: Any, args: tuple[str, ...], message: str) -> None:
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    result = run_bounded(trt_pytester, *args)  # trt_pytester.args() has -p no:cacheprovider
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
