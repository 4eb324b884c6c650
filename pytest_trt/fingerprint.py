"""Facts about this machine and its software, shared by cache keys, baselines and reports.

GPU facts come from ``pytest_trt.cuda``; where it, its CUDA binding or a GPU is missing there are
simply no GPU facts, so collecting facts never fails a run.
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any


@functools.cache
def cpu_model() -> str:
    """The CPU's marketing name, e.g. ``AMD EPYC 7B13``; ``platform.processor()`` elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            # x86 says "model name"; some ARM kernels say only "Model" or "Hardware".
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def host_facts() -> dict[str, Any]:
    """CPU, OS and Python facts; stable for the life of the process."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 1,
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "onnxruntime": package_version("onnxruntime"),
    }


@functools.cache
def gpu_facts(index: int = 0) -> dict[str, Any] | None:
    """GPU ``index``'s name, compute capability, SM count, memory and driver, or None where there
    is no usable GPU (asked of the driver first: touching a GPU that is not there can crash)."""
    try:
        from . import cuda

        if not cuda.available().ok:
            return None
        return dict(cuda.device_properties(index))
    except Exception:  # no cuda module, binding or driver: all mean "no GPU facts"
        return None


def machine_fingerprint() -> dict[str, Any]:
    """Host facts plus the first GPU's facts (None without a GPU)."""
    return {**host_facts(), "gpu": gpu_facts()}
