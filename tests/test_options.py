"""Options and their ini twins as users meet them: each value is checked by one rule, so a bad
ini value stops the run in the same words as the bad command-line value, and never weakens a gate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_trt.cuda import runtime as cuda
from pytest_trt.run import options
from pytest_trt.run.options import Settings

REPO = Path(__file__).resolve().parents[1]

# A gate that must fail: on a run that ignored a bad setting it would pass or be reported only.
TIGHT_BUDGET = """
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=2)
@pytest.mark.trt_perf(max_latency_ms=0.001, backend="onnxruntime")
def test_tight():
    pass
"""

CHOICES = {
    "--trt-backend": "auto, tensorrt, onnxruntime-tensorrt, onnxruntime-cuda, onnxruntime-trt-rtx, onnxruntime",
    "--trt-perf": "enforce, report, off",
    "--trt-baseline": "compare, strict, off",
    "--trt-sync": "blocking, spin",
    "--trt-runtime": "full, lean, dispatch",
    "--trt-cuda-api": "cuda-python, pycuda",
}
SIZE_HELP = (
    "(give bytes or a number with K, M, G or T (powers of 1000) or KiB, MiB, GiB or TiB (powers of 1024), "
    "e.g. 2GB or 500MiB)"
)

BAD_VALUES = [
    *[("--trt-perf", key, bad) for key, bad in [("trt_perf", "enforced"), ("trt_perf", "Enforce")]],
    ("--trt-baseline", "trt_baseline", "strictt"),
    ("--trt-backend", "trt_backend", "tensorrtt"),
    ("--trt-sync", "trt_sync", "busy"),
    ("--trt-runtime", "trt_runtime", "slim"),
    ("--trt-cuda-api", "trt_cuda_api", "cupy"),
    ("--trt-seed", "trt_seed", "x"),
    ("--trt-seed", "trt_seed", "-1"),
    ("--trt-min-iterations", "trt_min_iterations", "0"),
    ("--trt-min-iterations", "trt_min_iterations", "2.5"),
    ("--trt-warmup-ms", "trt_warmup_ms", "fast"),
    ("--trt-min-duration-ms", "trt_min_duration_ms", "-5"),
    ("--trt-max-duration-ms", "trt_max_duration_ms", "inf"),
    ("--trt-regression-threshold", "trt_regression_threshold", "-1"),
    ("--trt-regression-threshold", "trt_regression_threshold", "0"),
    ("--trt-regression-threshold", "trt_regression_threshold", "nan"),
    ("--trt-regression-threshold", "trt_regression_threshold", "inf"),
    ("--trt-cache-max-size", "trt_cache_max_size", "2 gigs"),
]


def expected_words(flag: str, bad: str) -> str:
    """What a user must read for ``bad``: written here, not taken from the code under test."""
    if flag in CHOICES:
        return f"invalid choice: '{bad}' (choose from {CHOICES[flag]})"
    if flag == "--trt-cache-max-size":
        return f"invalid size value: '{bad}' {SIZE_HELP}"
    if bad in ("nan", "inf"):
        return f"must be a finite number, got '{bad}'"
    integer = flag in ("--trt-seed", "--trt-min-iterations")
    try:
        number = int(bad) if integer else float(bad)
    except ValueError:
        return f"invalid {'int' if integer else 'float'} value: '{bad}'"
    bound = {"--trt-seed": ">= 0", "--trt-min-iterations": ">= 1", "--trt-regression-threshold": "> 0"}.get(flag, ">= 0")
    return f"must be {bound}, got {number!r}"


def assert_stopped(result: pytest.RunResult, line: str) -> None:
    """A usage error with ``line`` on stderr: no test ran, no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    seen = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in seen and "INTERNALERROR" not in seen
    assert "passed" not in seen and "failed" not in seen


@pytest.mark.parametrize(("flag", "key", "bad"), BAD_VALUES)
def test_a_bad_ini_value_is_a_usage_error_in_the_command_line_words(trt_pytester, flag, key, bad):
    trt_pytester.pytester.makepyfile(test_tight=TIGHT_BUDGET)
    trt_pytester.pytester.makeini(f"[pytest]\n{key} = {bad}\n")
    words = expected_words(flag, bad)
    assert_stopped(trt_pytester.run(fast=False), f"ERROR: pytest-trt: ini option {key}: {words}")
    trt_pytester.pytester.makeini("[pytest]\n")
    assert_stopped(trt_pytester.run(f"{flag}={bad}", fast=False), f"*error: argument {flag}: {words}")


@pytest.mark.parametrize("key", ["trt_require_gpu", "trt_cuda_graph", "trt_update_baselines"])
@pytest.mark.parametrize("bad", ["maybe", "2", "enabled"])
def test_an_ini_bool_takes_only_what_pytest_reads_as_a_bool(trt_pytester, key, bad):
    trt_pytester.pytester.makepyfile(test_tight=TIGHT_BUDGET)
    trt_pytester.pytester.makeini(f"[pytest]\n{key} = {bad}\n")
    assert_stopped(
        trt_pytester.run(fast=False),
        f"ERROR: pytest-trt: ini option {key}: invalid truth value '{bad}' (choose from true, false; "
        "pytest also reads yes/no, on/off, 1/0, y/n, t/f, in any letter case)",
    )


def test_valid_ini_values_reach_the_settings(trt_pytester):
    trt_pytester.pytester.makeini(
        "[pytest]\n"
        "trt_perf = report\ntrt_baseline = strict\ntrt_backend = onnxruntime\ntrt_seed = 7\n"
        "trt_min_iterations = 3\ntrt_warmup_ms = 0.5\ntrt_regression_threshold = 0.025\n"
        "trt_cache_max_size = 500MiB\ntrt_cuda_graph = YES\ntrt_rebuild = off\ntrt_cuda_api =\n"
    )
    settings = Settings.from_config(trt_pytester.pytester.parseconfigure(*trt_pytester.args(fast=False)))
    assert (settings.perf, settings.baseline_mode, settings.backend) == ("report", "strict", "onnxruntime")
    assert (settings.seed, settings.measure.min_iterations, settings.measure.warmup_ms) == (7, 3, 0.5)
    assert settings.regression_threshold == 0.025 and settings.cache_max_size == "500MiB"
    assert settings.measure.cuda_graph is True and settings.rebuild is False and settings.cuda_api == ""


@pytest.mark.parametrize(
    ("ini", "outcome"),
    [("trt_perf = enforce", {"failed": 1}), ("trt_perf = report", {"passed": 1})],
)
def test_a_valid_ini_perf_mode_is_applied(trt_pytester, ini, outcome):
    trt_pytester.pytester.makepyfile(test_tight=TIGHT_BUDGET)
    trt_pytester.pytester.makeini(f"[pytest]\n{ini}\n")
    trt_pytester.run().assert_outcomes(**outcome)


def test_backend_choices_are_looked_up_when_a_value_is_checked(trt_pytester, monkeypatch):
    # The backend registry can replace backend_choices(): both the command line and the ini call it.
    monkeypatch.setattr(options, "backend_choices", lambda: ("auto", "onnxruntime", "other"))
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    words = "invalid choice: 'tensorrt' (choose from auto, onnxruntime, other)"
    assert_stopped(trt_pytester.run("--trt-backend=tensorrt"), f"*error: argument --trt-backend: {words}")
    trt_pytester.pytester.makeini("[pytest]\ntrt_backend = tensorrt\n")
    assert_stopped(trt_pytester.run(), f"ERROR: pytest-trt: ini option trt_backend: {words}")


def test_cuda_api_choices_are_the_cuda_layers():
    assert options.CUDA_APIS == cuda.CUDA_APIS


# ---- the regression threshold -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ini", "shown", "slower", "times", "meant"),
    [
        (("--trt-regression-threshold=1.5",), "", "--trt-regression-threshold=1.5", "150%", "2.5", "for 1.5% write 0.015"),
        (("-q",), "trt_regression_threshold = 10", "ini option trt_regression_threshold = 10", "1000%", "11", "for 10% write 0.1"),
        (("--trt-regression-threshold=1",), "", "--trt-regression-threshold=1", "100%", "2", "for 1% write 0.01"),
    ],
)
def test_a_threshold_of_one_or_more_warns_that_it_practically_never_fails(
    trt_pytester, args, ini, shown, slower, times, meant
):
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    trt_pytester.pytester.makeini(f"[pytest]\n{ini}\n")
    result = trt_pytester.run(*args, fast=False)  # FAST_MEASURE's threshold would override the ini's
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines([
        f"*PytestConfigWarning: pytest-trt: {shown} is a fraction, not a percentage: a test fails only when "
        f"it is more than {slower} slower than its baseline ({times} times its latency), so this gate "
        f"practically never fails; {meant}"
    ])


def test_a_threshold_warning_made_an_error_stops_the_run_without_a_traceback(trt_pytester):
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    result = trt_pytester.run("--trt-regression-threshold=2", "-W", "error::pytest.PytestConfigWarning")
    assert_stopped(result, "ERROR: pytest-trt: --trt-regression-threshold=2 is a fraction, not a percentage*")


def test_a_threshold_below_one_says_nothing(trt_pytester):
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    result = trt_pytester.run("--trt-regression-threshold=0.5")
    result.assert_outcomes(passed=1)
    assert "PytestConfigWarning" not in result.stdout.str()


# ---- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (("--trt-baseline-dir=taken",), "", "--trt-baseline-dir: */taken is a file, not a folder"),
        ((), "trt_save_failures = taken", "ini option trt_save_failures: */taken is a file, not a folder"),
        ((), "trt_report_json = reports", "ini option trt_report_json: */reports is a folder, not a file"),
        (("--trt-report-md=reports",), "", "--trt-report-md: */reports is a folder, not a file"),
    ],
)
def test_a_path_of_the_wrong_kind_is_a_usage_error(trt_pytester, args, ini, message):
    (trt_pytester.path / "taken").write_text("a file")
    (trt_pytester.path / "reports").mkdir()
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    trt_pytester.pytester.makeini(f"[pytest]\n{ini}\n")
    assert_stopped(trt_pytester.run(*args), f"ERROR: pytest-trt: {message}")


# ---- the options table in docs/options.md -----------------------------------------------------


def test_the_docs_options_table_is_the_generated_one():
    text = (REPO / "docs" / "options.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- options-table:[^\n]*-->\n(.*?)<!-- options-table end -->", text, re.DOTALL)
    assert found, "docs/options.md has lost the <!-- options-table ... --> markers around its options table"
    assert found.group(1) == options.markdown_table(), (
        "docs/options.md's options table differs from the option declarations: paste the output of "
        "`python -m pytest_trt.run.options --markdown` between its markers"
    )


def test_the_table_script_prints_the_table():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest_trt.run.options", "--markdown"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == options.markdown_table()


def test_the_table_lists_every_ini_key_pytest_knows(trt_pytester):
    helped = trt_pytester.run("--help").stdout.str()
    registered = set(re.findall(r"^  (trt_\w+) \((?:string|bool)\):", helped, re.MULTILINE))
    listed = set(re.findall(r"^\| `(trt_\w+)` \|", options.markdown_table(), re.MULTILINE))
    assert registered and registered == listed


def test_help_shows_the_choices_and_the_default(trt_pytester):
    helped = trt_pytester.run("--help")
    helped.stdout.fnmatch_lines(["  --trt-perf={enforce,report,off}", "*or off (do not*", "*measure). Default: enforce."])
