"""Every command-line option and its ini twin, declared once in ``OPTIONS``: the type, the allowed
values and the default drive argparse, the ini validation, ``Settings`` and the README's table
(``python -m pytest_trt.run.options --markdown`` prints it)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_trt import backends, measure_defaults
from pytest_trt.arguments import SyncMode
from pytest_trt.backends.trt_api import RUNTIMES
from pytest_trt.errors import SpecError
from pytest_trt.reports.plotting import REPORT_EXTRA, plotting_installed
from pytest_trt.run.gpus import GpuSelection
from pytest_trt.run.option_kinds import (
    INI_FALSE,
    INI_TRUE,
    Kind,
    Option,
    OptionValueError,
    size_bytes,
)
from pytest_trt.specs import MeasureSettings

PERF_MODES = ("enforce", "report", "off")
BASELINE_MODES = ("compare", "strict", "off")
# Largest total size of one test's generated inputs (a model may declare billions of elements).
DEFAULT_MAX_INPUT_BYTES = "4GiB"
# cuda.runtime.CUDA_APIS names the same two; it is not imported here because it imports numpy.
CUDA_APIS = ("cuda-python", "pycuda")
ENGINE_CACHE_ENV = "PYTEST_TRT_ENGINE_CACHE"


def backend_choices() -> tuple[str, ...]:
    """What ``--trt-backend`` accepts: ``auto`` and every registered backend (built-in, or from
    the ``pytest_trt.backends`` entry point group)."""
    return ("auto", *backends.names())


OPTIONS: tuple[Option, ...] = (
    Option("--trt-backend", "trt_backend", Kind.CHOICE,
           "backend that runs gated models: auto (the first usable of tensorrt, onnxruntime-tensorrt, "
           "onnxruntime-cuda, onnxruntime; the header says which and why the better ones were not "
           "usable) or a registered backend's name.",
           default="auto", choices=lambda: backend_choices()),  # looked up when a value is checked
    Option("--trt-require-gpu", "trt_require_gpu", Kind.BOOL,
           "fail the session when no GPU backend is usable, instead of falling back to the CPU, where "
           "GPU budgets (trt_perf without backend=) are not enforced (for GPU CI gates).",
           default=False),
    Option("--trt-perf", "trt_perf", Kind.CHOICE,
           "what to do with trt_perf budgets: enforce (fail the test), report (measure, never fail) "
           "or off (do not measure).",
           default="enforce", choices=lambda: PERF_MODES),
    Option("--trt-collect-models", "trt_collect_models", Kind.BOOL,
           "collect each *.onnx file that has settings (a <name>.trt.toml beside it, or a section in "
           "its folder's trt.toml) as tests gated by them, no Python needed (docs/model-files.md).",
           default=False),
    Option("--trt-seed", "trt_seed", Kind.INT, "seed for generated inputs when a mark gives none.",
           default=0, minimum=0, metavar="N"),
    Option("--trt-warmup-ms", "trt_warmup_ms", Kind.FLOAT,
           "warm-up time before measuring, in ms (marks may override).",
           default=measure_defaults.WARMUP_MS, minimum=0, metavar="MS"),
    Option("--trt-min-iterations", "trt_min_iterations", Kind.INT,
           "fewest timed iterations, for models fast enough to run them in a few seconds (slow models "
           "take fewer, see docs/measurement.md; marks may override).",
           default=measure_defaults.MIN_ITERATIONS, minimum=1, metavar="N"),
    Option("--trt-min-duration-ms", "trt_min_duration_ms", Kind.FLOAT,
           "shortest timed duration, in ms (marks may override).",
           default=measure_defaults.MIN_DURATION_MS, minimum=0, metavar="MS"),
    Option("--trt-max-duration-ms", "trt_max_duration_ms", Kind.FLOAT,
           "longest timed duration, in ms: stops a slow model early (marks may override).",
           default=measure_defaults.MAX_DURATION_MS, minimum=0, metavar="MS"),
    Option("--trt-cuda-graph", "trt_cuda_graph", Kind.BOOL,
           "capture the enqueue in a CUDA graph (GPU backends; marks may override).", default=False),
    Option("--trt-no-transfers", "trt_no_transfers", Kind.BOOL,
           "time GPU compute only, without H2D/D2H copies (GPU backends; marks may override).",
           default=False),
    Option("--trt-no-host-probe", "trt_no_host_probe", Kind.BOOL,
           "do not time the host-speed probe between host-clock iterations (baselines then compare "
           "raw floors).", default=False),
    Option("--trt-sync", "trt_sync", Kind.CHOICE,
           "how the host waits for the GPU: blocking or spin (marks may override).",
           default="blocking", choices=lambda: tuple(mode.value for mode in SyncMode)),
    Option("--trt-runtime", "trt_runtime", Kind.CHOICE,
           "TensorRT runtime that deserializes engines: full, lean or dispatch (lean and dispatch "
           "load version_compatible=True plans only).",
           default="full", choices=lambda: RUNTIMES),
    Option("--trt-cuda-api", "trt_cuda_api", Kind.CHOICE,
           "CUDA binding for the GPU backends: cuda-python or pycuda.",
           default="", default_text="the one installed (cuda-python first)", choices=lambda: CUDA_APIS),
    Option("--trt-gpus", "trt_gpus", Kind.GPUS,
           "the GPUs a run uses: under pytest-xdist worker gwK is pinned to the K-th of them, round-robin "
           "(workers sharing one take turns to time it); without xdist the first of them runs every test.",
           default_text="GPU 0", metavar="GPUS"),
    Option("--trt-engine-cache", "trt_engine_cache_dir", Kind.FOLDER,
           f"keep built engines across runs in DIR; the flag alone keeps them under pytest's cache "
           f"dir. Env: {ENGINE_CACHE_ENV}.",
           default_text="off", metavar="DIR", flag_alone=True, env=ENGINE_CACHE_ENV),
    Option("--trt-rebuild", "trt_rebuild", Kind.BOOL,
           "rebuild and replace the engine cache entries the selected tests use.", default=False),
    Option("--trt-cache-clear", "trt_cache_clear", Kind.BOOL, "empty the engine cache before the run.",
           default=False),
    Option("--trt-cache-max-size", "trt_cache_max_size", Kind.SIZE,
           "evict least recently used engine cache entries beyond this size, e.g. 2GB or 500MiB.",
           default_text="no limit", metavar="SIZE"),
    Option("--trt-lock-timeout", "trt_lock_timeout", Kind.FLOAT,
           "seconds to wait for another process's lock on an engine cache entry (it is building or "
           "reading it), on the baseline store or on the device's measurement lock before giving up "
           "with an error naming the holder; who holds a lock is printed after 5 s of waiting.",
           default=600.0, minimum=0, above_minimum=True, metavar="SECONDS"),
    Option("--trt-max-input-bytes", "trt_max_input_bytes", Kind.SIZE,
           "refuse to generate inputs larger than this in all for one test, e.g. 2GB or 500MiB.",
           default=DEFAULT_MAX_INPUT_BYTES, minimum=0, above_minimum=True, metavar="SIZE"),
    Option("--trt-baseline-dir", "trt_baseline_dir", Kind.FOLDER, "where baselines live.",
           default_text="<rootdir>/baselines", metavar="DIR"),
    Option("--trt-baseline", "trt_baseline", Kind.CHOICE,
           "compare with stored baselines, strict (a missing or stale baseline fails the test) or off.",
           default="compare", choices=lambda: BASELINE_MODES),
    Option("--trt-update-baselines", "trt_update_baselines", Kind.BOOL,
           "record or replace the baselines of the tests that ran.", default=False),
    Option("--trt-replace-unreadable-baselines", "trt_replace_unreadable_baselines", Kind.BOOL,
           "with --trt-update-baselines, replace a baseline file that cannot be read (not JSON, wrong "
           "shape, newer schema, another hardware class's) by this run's entries; without it such a "
           "file is left as it is and the session fails.", default=False),
    Option("--trt-prune-baselines", "trt_prune_baselines", Kind.BOOL,
           "remove baselines that no selected test uses any more.", default=False),
    Option("--trt-baseline-history", "trt_baseline_history", Kind.INT,
           "recordings a baseline's history keeps per test (the latest included); a steady drift or a "
           "step over them is a warning, a failure under --trt-baseline=strict.",
           default=50, minimum=1, metavar="N"),
    Option("--trt-regression-threshold", "trt_regression_threshold", Kind.FLOAT,
           "slowdown vs baseline that fails a test when a re-measurement confirms it, as a fraction "
           "(0.03 is 3%); docs/regression.md says what the default catches and how often it cries wolf.",
           default=measure_defaults.REGRESSION_THRESHOLD, minimum=0, above_minimum=True, metavar="FRACTION"),
    Option("--trt-report-json", "trt_report_json", Kind.FILE, "write every measured test as JSON to PATH.",
           default_text="none", metavar="PATH"),
    Option("--trt-report-md", "trt_report_md", Kind.FILE,
           "write a Markdown summary to PATH (and to $GITHUB_STEP_SUMMARY when set).",
           default_text="none", metavar="PATH"),
    Option("--trt-report-html", "trt_report_html", Kind.FILE,
           f"write one self-contained HTML file with the tests' plots to PATH (draws with matplotlib: "
           f"{REPORT_EXTRA}).", default_text="none", metavar="PATH"),
    Option("--trt-profile-layers", "trt_profile_layers", Kind.BOOL,
           "after each timed test, time every layer in a separate profiling pass (also done on a "
           "missed budget, a confirmed regression and a baseline recording).", default=False),
    Option("--trt-fresh-processes", "trt_fresh_processes", Kind.CHOICE,
           "measure a baseline recording's further sessions, and the sessions that confirm a "
           "regression, each in a fresh Python process: for models whose processes differ in speed.",
           default="off", choices=lambda: ("on", "off")),
    Option("--trt-diagnose", "trt_diagnose", Kind.CHOICE,
           "on an fp16/bf16 accuracy failure, name the node where the error starts and search the "
           "keep_fp32_nodes that fixes it.", default="on", choices=lambda: ("on", "off")),
    Option("--trt-diagnose-time", "trt_diagnose_time", Kind.FLOAT,
           "seconds one test's diagnosis may take (checked between rebuilds).", default=60.0, minimum=0,
           metavar="SECONDS"),
    Option("--trt-save-failures", "trt_save_failures", Kind.FOLDER,
           "on an accuracy failure, save inputs, outputs and reference as .npz under DIR.",
           default_text="none", metavar="DIR"),
)
_BY_DEST = {option.dest: option for option in OPTIONS}


def register(parser: pytest.Parser) -> None:
    group = parser.getgroup("trt", "pytest-trt: TensorRT / onnxruntime accuracy and speed gates")
    for option in OPTIONS:
        option.register(parser, group)


@dataclass(frozen=True)
class Given:
    """One setting's value and where it came from (``source`` is None for the default)."""

    value: Any
    source: str | None = None

    def shown(self) -> str:
        value = f"{self.value:g}" if isinstance(self.value, float) else str(self.value)
        return f"{self.source}={value}" if self.source and self.source.startswith("--") else f"{self.source} = {value}"


def read(config: pytest.Config, name: str) -> Given:
    """A setting from the command line (argparse has checked it), else the ini (checked here, by
    the same rule), else the environment, else its default. Bad values are UsageErrors."""
    option = _BY_DEST[name]
    given = config.getoption(option.dest)
    if given is not None and given is not False:
        return Given(given, option.flag)
    source = f"ini option {option.ini}"
    if option.kind is Kind.BOOL:
        try:
            raw = config.getini(option.ini)
        except (ValueError, TypeError, pytest.UsageError) as exc:
            raise pytest.UsageError(
                f"pytest-trt: {source}: {exc} (choose from {INI_TRUE[0]}, {INI_FALSE[0]}; pytest also reads "
                f"{', '.join(f'{t}/{f}' for t, f in zip(INI_TRUE[1:], INI_FALSE[1:], strict=True))}, in any letter case)"
            ) from None
        return Given(bool(raw), source if raw is not None else None)
    raw = config.getini(option.ini)
    if raw == "" and option.default in (None, ""):
        raw = None  # written empty: unset, for options whose default is "none"
    if raw is None and option.env is not None and os.environ.get(option.env):
        raw, source = os.environ[option.env], f"environment variable {option.env}"
    if raw is None:
        return Given(option.default)
    try:
        return Given(option.parse(raw), source)
    except OptionValueError as exc:
        raise pytest.UsageError(f"pytest-trt: {source}: {exc}") from None


def check_ini_keys(config: pytest.Config) -> None:
    """A ``trt_*`` ini key pytest-trt does not have is a usage error naming the closest one:
    pytest only warns of unknown keys, and the run would go on with the defaults."""
    import difflib

    known = [option.ini for option in OPTIONS]
    written = sorted(key for key in _unknown_ini_keys(config) if key.startswith("trt_") and key not in known)
    if not written:
        return
    problems = []
    for key in written:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        problems.append(f"{key}" + (f" (did you mean {close[0]}?)" if close else ""))
    where = f" in {config.inipath}" if config.inipath else ""
    raise pytest.UsageError(
        f"pytest-trt: unknown ini option{'s' if len(problems) > 1 else ''}{where}: {'; '.join(problems)}"
    )


def _unknown_ini_keys(config: pytest.Config) -> set[str]:
    """The ini keys no plugin declared, as pytest's own warning finds them."""
    own_check = getattr(config, "_get_unknown_ini_keys", None)  # private; public inicfg is deprecated
    if own_check is not None:
        return set(own_check())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return set(getattr(config, "inicfg", {}))


def _checked_path(path: Path, kind: Kind, source: str) -> Path:
    """``path`` unless it already exists as the wrong kind: a folder option naming a file or a
    file option naming a folder, or anything but a regular file for a file option: the plugin
    never writes through a link nor replaces a device or a FIFO. (A folder that cannot be made is
    found where it is written.)"""
    import stat

    from pytest_trt.store.regular_files import describe_mode

    mode = None
    try:
        if kind is Kind.FOLDER and path.exists() and not path.is_dir():
            raise pytest.UsageError(f"pytest-trt: {source}: {path} is a file, not a folder")
        if kind is Kind.FILE:
            mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        pass  # nothing there: a parent that is not a folder is reported where the file is written
    except OSError as exc:  # a name too long for the file system, a folder that cannot be searched
        raise pytest.UsageError(f"pytest-trt: {source}: cannot use {path}: {exc.strerror or exc}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise pytest.UsageError(f"pytest-trt: {source}: {path} is a folder, not a file")
    if mode is not None and not stat.S_ISREG(mode):
        raise pytest.UsageError(
            f"pytest-trt: {source}: {path} is {describe_mode(mode)}, not a regular file; pytest-trt "
            "replaces only regular files and writes through no link: remove it or name another path"
        )
    return path


def _engine_cache_dir(config: pytest.Config, root: Path) -> Path | None:
    """The engine cache folder the options name: a folder, pytest's cache folder for the flag
    alone, or None when no engine cache is used."""
    cache = read(config, "trt_engine_cache_dir")
    if cache.value == "":  # the flag alone
        pytest_cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
        if pytest_cache is None:
            raise pytest.UsageError(
                "pytest-trt: --trt-engine-cache without a DIR keeps engines in pytest's cache "
                "folder, but pytest's cacheprovider plugin is disabled (-p no:cacheprovider); "
                "give a folder (--trt-engine-cache=DIR) or enable the cacheprovider"
            )
        return Path(pytest_cache.mkdir("trt-engines"))
    if cache.value:
        return _checked_path(root / cache.value, Kind.FOLDER, cache.source or "")
    return None


def _plotting(config: pytest.Config, report: Path | None) -> Path | None:
    """The HTML report's path, where matplotlib (the report extra) is there to draw its plots."""
    if report is not None and not plotting_installed():
        raise pytest.UsageError(f"pytest-trt: {read(config, 'trt_report_html').shown()} draws its plots with "
                                f"matplotlib, which is not installed: install the report extra ({REPORT_EXTRA})")
    return report


def _warn_of_a_percentage_threshold(config: pytest.Config, threshold: Given) -> None:
    """A threshold of 1 or more was most likely meant as a percentage: say so, once per run."""
    if threshold.value < 1 or hasattr(config, "workerinput"):  # xdist workers: said by the controller
        return
    try:
        config.issue_config_time_warning(pytest.PytestConfigWarning(_regression_threshold_warning(threshold)), 2)
    except pytest.PytestConfigWarning as exc:  # -W error: stop the run, without a traceback
        raise pytest.UsageError(str(exc)) from None


def _regression_threshold_warning(given: Given) -> str:
    threshold = given.value
    return (
        f"pytest-trt: {given.shown()} is a fraction, not a percentage: a test fails only when it is "
        f"more than {threshold * 100:g}% slower than its baseline ({threshold + 1:g} times its latency), "
        f"so this gate practically never fails; for {threshold:g}% write {threshold / 100:g}"
    )


@dataclass(frozen=True)
class Settings:
    backend: str
    require_gpu: bool
    perf: str
    collect_models: bool
    seed: int
    measure: MeasureSettings
    runtime: str
    cuda_api: str
    gpus: GpuSelection | None
    engine_cache_dir: Path | None
    rebuild: bool
    cache_clear: bool
    cache_max_size: str | None
    lock_timeout_s: float
    max_input_bytes: int
    baseline_dir: Path
    baseline_mode: str
    update_baselines: bool
    replace_unreadable_baselines: bool
    prune_baselines: bool
    baseline_history: int
    regression_threshold: float
    report_json: Path | None
    report_md: Path | None
    report_html: Path | None
    save_failures: Path | None
    profile_layers: bool = False
    diagnose_s: float | None = 60.0  # the diagnosis's time cap; None: --trt-diagnose=off
    fresh_processes: bool = False  # --trt-fresh-processes: sessions of recordings and confirmations in new processes

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        check_ini_keys(config)
        root = Path(config.rootpath)

        def value(name: str) -> Any:
            return read(config, name).value

        def path(name: str) -> Path | None:
            given = read(config, name)
            if not given.value:
                return None
            return _checked_path(root / given.value, _BY_DEST[name].kind, given.source or name)

        engine_cache_dir = _engine_cache_dir(config, root)
        if value("trt_cache_clear") and engine_cache_dir is None:
            raise pytest.UsageError(
                "pytest-trt: --trt-cache-clear empties the engine cache, but no engine cache is in "
                "use; add --trt-engine-cache[=DIR] (or set trt_engine_cache_dir or "
                "PYTEST_TRT_ENGINE_CACHE), or drop --trt-cache-clear"
            )
        threshold = read(config, "trt_regression_threshold")
        _warn_of_a_percentage_threshold(config, threshold)
        try:
            measure = MeasureSettings(
                warmup_ms=value("trt_warmup_ms"),
                min_iterations=value("trt_min_iterations"),
                min_duration_ms=value("trt_min_duration_ms"),
                max_duration_ms=value("trt_max_duration_ms"),
                cuda_graph=value("trt_cuda_graph"),
                transfers=not value("trt_no_transfers"),
                sync=value("trt_sync"),
                host_probe=not value("trt_no_host_probe"),
            )
        except SpecError as exc:
            raise pytest.UsageError(f"pytest-trt: {exc}") from None
        return cls(
            backend=value("trt_backend"),
            require_gpu=value("trt_require_gpu"),
            perf=value("trt_perf"),
            collect_models=value("trt_collect_models"),
            seed=value("trt_seed"),
            measure=measure,
            runtime=value("trt_runtime"),
            cuda_api=value("trt_cuda_api"),
            gpus=value("trt_gpus"),
            engine_cache_dir=engine_cache_dir,
            rebuild=value("trt_rebuild"),
            cache_clear=value("trt_cache_clear"),
            cache_max_size=value("trt_cache_max_size"),
            lock_timeout_s=value("trt_lock_timeout"),
            max_input_bytes=size_bytes(value("trt_max_input_bytes")),
            baseline_dir=path("trt_baseline_dir") or root / "baselines",
            baseline_mode=value("trt_baseline"),
            update_baselines=value("trt_update_baselines"),
            replace_unreadable_baselines=value("trt_replace_unreadable_baselines"),
            prune_baselines=value("trt_prune_baselines"),
            baseline_history=value("trt_baseline_history"),
            regression_threshold=threshold.value,
            report_json=path("trt_report_json"),
            report_md=path("trt_report_md"),
            report_html=_plotting(config, path("trt_report_html")),
            save_failures=path("trt_save_failures"),
            profile_layers=value("trt_profile_layers"),
            diagnose_s=value("trt_diagnose_time") if value("trt_diagnose") == "on" else None,
            fresh_processes=value("trt_fresh_processes") == "on",
        )


# ---- the README table -----------------------------------------------------------------------------


def markdown_table() -> str:
    """Every ini key with its command-line twin, type, allowed values, default and meaning."""
    lines = [
        "| ini key | command line | type | allowed values | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        cells = (
            f"`{option.ini}`",
            f"`{option.shown_flag()}`",
            option.kind.value,
            option.allowed_text(),
            _markdown_default(option),
            option.help.replace("|", "\\|"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _markdown_default(option: Option) -> str:
    if option.default_text is not None:
        return option.default_text.replace("<", "&lt;").replace(">", "&gt;")
    return f"`{option.shown_default()}`"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_trt.run.options", description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="print the README's table of ini keys")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.print_help()
        return 2
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
