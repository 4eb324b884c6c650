"""Every command-line option, its ini twin, and the Settings read from them once per session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .spec import MeasureSettings

# (flag, ini name, help, kwargs for addoption, ini type, ini default)
_OPTIONS: list[tuple[str, str, str, dict[str, Any], str, Any]] = [
    ("--trt-backend", "trt_backend",
     "backend that runs gated models: auto (TensorRT where it and a GPU are usable, else "
     "onnxruntime), tensorrt or onnxruntime. Default: auto.",
     {"choices": ("auto", "tensorrt", "onnxruntime")}, "string", "auto"),
    ("--trt-require-gpu", "trt_require_gpu",
     "fail the session instead of falling back when TensorRT or a GPU is not usable.",
     {"action": "store_true"}, "bool", False),
    ("--trt-perf", "trt_perf",
     "what to do with trt_perf budgets: enforce (fail the test), report (measure, never fail) "
     "or off (do not measure). Default: enforce.",
     {"choices": ("enforce", "report", "off")}, "string", "enforce"),
    ("--trt-seed", "trt_seed", "seed for generated inputs when a mark gives none. Default: 0.",
     {"type": int}, "string", "0"),
    ("--trt-warmup-ms", "trt_warmup_ms", "warm-up time before measuring. Default: 200.",
     {"type": float}, "string", "200"),
    ("--trt-min-iterations", "trt_min_iterations", "fewest timed iterations. Default: 50.",
     {"type": int}, "string", "50"),
    ("--trt-min-duration-ms", "trt_min_duration_ms", "shortest timed duration. Default: 1000.",
     {"type": float}, "string", "1000"),
    ("--trt-max-duration-ms", "trt_max_duration_ms",
     "longest timed duration (stops a slow model early). Default: 10000.",
     {"type": float}, "string", "10000"),
    ("--trt-cuda-graph", "trt_cuda_graph",
     "capture the enqueue in a CUDA graph (TensorRT backend). Default: off.",
     {"action": "store_true"}, "bool", False),
    ("--trt-no-transfers", "trt_no_transfers",
     "time GPU compute only, without H2D/D2H copies (TensorRT backend). Default: transfers on.",
     {"action": "store_true"}, "bool", False),
    ("--trt-no-host-probe", "trt_no_host_probe",
     "do not time the host-speed probe between host-clock iterations (its floor is divided out of "
     "baseline comparisons). Default: probe on.",
     {"action": "store_true"}, "bool", False),
    ("--trt-sync", "trt_sync",
     "how the host waits for the GPU: blocking or spin. Default: blocking.",
     {"choices": ("blocking", "spin")}, "string", "blocking"),
    ("--trt-runtime", "trt_runtime",
     "TensorRT runtime that deserializes engines: full, lean or dispatch. Default: full.",
     {"choices": ("full", "lean", "dispatch")}, "string", "full"),
    ("--trt-cuda-api", "trt_cuda_api",
     "CUDA binding for the TensorRT backend: cuda-python or pycuda. Default: the one installed.",
     {"choices": ("cuda-python", "pycuda")}, "string", ""),
    ("--trt-engine-cache", "trt_engine_cache_dir",
     "keep built engines across runs in DIR (default: under pytest's cache dir). Env: "
     "PYTEST_TRT_ENGINE_CACHE.",
     {"nargs": "?", "const": "", "default": None, "metavar": "DIR"}, "string", None),
    ("--trt-rebuild", "trt_rebuild", "rebuild and replace cache entries used by the selected tests.",
     {"action": "store_true"}, "bool", False),
    ("--trt-cache-clear", "trt_cache_clear", "empty the engine cache before the run.",
     {"action": "store_true"}, "bool", False),
    ("--trt-cache-max-size", "trt_cache_max_size",
     "evict least recently used entries beyond this size, e.g. 2GB or 500MB. Default: no limit.",
     {}, "string", None),
    ("--trt-lock-timeout", "trt_lock_timeout",
     "seconds to wait for another process's lock on an engine cache entry (it is building or "
     "reading it) before the test errors; who holds it is printed after a few seconds. Default: 600.",
     {"type": float, "metavar": "SECONDS"}, "string", "600"),
    ("--trt-baseline-dir", "trt_baseline_dir", "where baselines live. Default: <rootdir>/baselines.",
     {}, "string", None),
    ("--trt-baseline", "trt_baseline",
     "compare (default), strict (a missing or stale baseline fails) or off.",
     {"choices": ("compare", "strict", "off")}, "string", "compare"),
    ("--trt-update-baselines", "trt_update_baselines",
     "record or replace the baselines of the tests that ran.", {"action": "store_true"}, "bool", False),
    ("--trt-prune-baselines", "trt_prune_baselines",
     "remove baselines that no selected test uses any more.", {"action": "store_true"}, "bool", False),
    ("--trt-regression-threshold", "trt_regression_threshold",
     "slowdown vs baseline that fails a test, as a fraction. Default: 0.10.",
     {"type": float}, "string", "0.10"),
    ("--trt-report-json", "trt_report_json", "write every measured test as JSON to PATH.",
     {"metavar": "PATH"}, "string", None),
    ("--trt-report-md", "trt_report_md",
     "write a Markdown summary to PATH (and to $GITHUB_STEP_SUMMARY when set).",
     {"metavar": "PATH"}, "string", None),
    ("--trt-save-failures", "trt_save_failures",
     "on an accuracy failure, save inputs, outputs and reference as .npz under DIR.",
     {"metavar": "DIR"}, "string", None),
]


def register(parser: pytest.Parser) -> None:
    group = parser.getgroup("trt", "pytest-trt: TensorRT / onnxruntime accuracy and speed gates")
    for flag, ini, help_text, kwargs, ini_type, ini_default in _OPTIONS:
        kwargs = dict(kwargs)
        kwargs.setdefault("default", None)
        group.addoption(flag, dest=ini, help=help_text, **kwargs)
        parser.addini(ini, help=help_text, type=ini_type, default=ini_default)


def value(config: pytest.Config, name: str) -> Any:
    """The option if given on the command line, else its ini value."""
    given = config.getoption(name)
    if given is not None and given is not False:
        return given
    return config.getini(name)


@dataclass(frozen=True)
class Settings:
    backend: str
    require_gpu: bool
    perf: str
    seed: int
    measure: MeasureSettings
    runtime: str
    cuda_api: str
    engine_cache_dir: Path | None
    rebuild: bool
    cache_clear: bool
    cache_max_size: str | None
    lock_timeout_s: float
    baseline_dir: Path
    baseline_mode: str
    update_baselines: bool
    prune_baselines: bool
    regression_threshold: float
    report_json: Path | None
    report_md: Path | None
    save_failures: Path | None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        root = Path(config.rootpath)

        def path(name: str) -> Path | None:
            v = value(config, name)
            return (root / v) if v else None

        def number(name: str, kind: type) -> Any:
            raw = value(config, name)
            try:
                return kind(raw)
            except (TypeError, ValueError):
                raise pytest.UsageError(f"{name} must be {kind.__name__}, got {raw!r}") from None

        cache_dir = config.getoption("trt_engine_cache_dir")
        if cache_dir is None:
            cache_dir = config.getini("trt_engine_cache_dir") or os.environ.get("PYTEST_TRT_ENGINE_CACHE")
        if cache_dir == "":
            pytest_cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
            if pytest_cache is None:
                raise pytest.UsageError(
                    "pytest-trt: --trt-engine-cache without a DIR keeps engines in pytest's cache "
                    "folder, but pytest's cacheprovider plugin is disabled (-p no:cacheprovider); "
                    "give a folder (--trt-engine-cache=DIR) or enable the cacheprovider"
                )
            engine_cache_dir: Path | None = Path(pytest_cache.mkdir("trt-engines"))
        else:
            engine_cache_dir = (root / cache_dir) if cache_dir else None
        cache_clear = bool(value(config, "trt_cache_clear"))
        if cache_clear and engine_cache_dir is None:
            raise pytest.UsageError(
                "pytest-trt: --trt-cache-clear empties the engine cache, but no engine cache is in "
                "use; add --trt-engine-cache[=DIR] (or set trt_engine_cache_dir or "
                "PYTEST_TRT_ENGINE_CACHE), or drop --trt-cache-clear"
            )
        lock_timeout_s = number("trt_lock_timeout", float)
        if not 0 < lock_timeout_s < float("inf"):
            raise pytest.UsageError(
                f"pytest-trt: --trt-lock-timeout must be a positive number of seconds, got {lock_timeout_s:g}"
            )
        try:
            measure = MeasureSettings(
                warmup_ms=number("trt_warmup_ms", float),
                min_iterations=number("trt_min_iterations", int),
                min_duration_ms=number("trt_min_duration_ms", float),
                max_duration_ms=number("trt_max_duration_ms", float),
                cuda_graph=bool(value(config, "trt_cuda_graph")),
                transfers=not value(config, "trt_no_transfers"),
                sync=value(config, "trt_sync"),
                host_probe=not value(config, "trt_no_host_probe"),
            )
        except ValueError as exc:
            raise pytest.UsageError(f"pytest-trt: {exc}") from None
        return cls(
            backend=value(config, "trt_backend"),
            require_gpu=bool(value(config, "trt_require_gpu")),
            perf=value(config, "trt_perf"),
            seed=number("trt_seed", int),
            measure=measure,
            runtime=value(config, "trt_runtime"),
            cuda_api=value(config, "trt_cuda_api") or "",
            engine_cache_dir=engine_cache_dir,
            rebuild=bool(value(config, "trt_rebuild")),
            cache_clear=cache_clear,
            cache_max_size=value(config, "trt_cache_max_size"),
            lock_timeout_s=lock_timeout_s,
            baseline_dir=path("trt_baseline_dir") or root / "baselines",
            baseline_mode=value(config, "trt_baseline"),
            update_baselines=bool(value(config, "trt_update_baselines")),
            prune_baselines=bool(value(config, "trt_prune_baselines")),
            regression_threshold=number("trt_regression_threshold", float),
            report_json=path("trt_report_json"),
            report_md=path("trt_report_md"),
            save_failures=path("trt_save_failures"),
        )
