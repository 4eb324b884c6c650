"""Where a test's baselines live: the hardware class (the folder) and the module's file name."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any


def slug(text: str) -> str:
    """``text`` as a safe, lower-case folder name."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "unknown"


def hardware_class(device: Mapping[str, Any], *, older_scheme: bool = False) -> str:
    """A stable, short folder name for the hardware a measurement belongs to.

    GPU: name, memory (whole GB), compute capability, SM count and the driver's CUDA version
    (``drv12.8``: it moves with the driver's major branch, which changes kernels' speed). CPU
    (host facts of ``fingerprint.host_facts``): vendor and model name, the signature that tells
    generations apart when the name does not (family.model.stepping on x86: every 2-vCPU EPYC
    of a cloud reads just "AMD EPYC"), and the CPUs the process may use. Clocks, serial numbers
    and the driver's minor updates are left out: they change without the hardware changing,
    and the comparison reports software changes instead of hiding the baseline.

    ``older_scheme`` gives the name the same hardware had before (GPU without the driver, CPU
    as model name and core count), so that folders recorded under it can be named in a note.
    """
    if device.get("gpu_name"):
        return _gpu_class(device, older_scheme)
    if device.get("cpu_model"):
        return _cpu_class(device, older_scheme)
    raise ValueError(
        "hardware_class: device fingerprint needs gpu_name (with total_memory_gb, compute_capability, "
        f"sm_count) or cpu_model (with cpu_count), got {dict(device)!r}"
    )


def _gpu_class(device: Mapping[str, Any], older_scheme: bool) -> str:
    missing = [k for k in ("total_memory_gb", "compute_capability", "sm_count") if device.get(k) is None]
    if missing:
        raise ValueError(f"hardware_class: GPU fingerprint lacks {', '.join(missing)} (got {dict(device)!r})")
    cc = device["compute_capability"]
    cc_text = ".".join(str(p) for p in cc) if isinstance(cc, (tuple, list)) else str(cc)
    memory = round(float(device["total_memory_gb"]))
    name = f"{device['gpu_name']}-{memory}gb-cc{cc_text}-{device['sm_count']}sm"
    if device.get("driver_version") and not older_scheme:
        name += f"-drv{device['driver_version']}"
    return slug(name)


def _cpu_class(device: Mapping[str, Any], older_scheme: bool) -> str:
    if not device.get("cpu_count"):
        raise ValueError(f"hardware_class: CPU fingerprint lacks cpu_count (got {dict(device)!r})")
    identity = device.get("cpu")
    if older_scheme or not isinstance(identity, Mapping):
        return slug(f"cpu-{device['cpu_model']}-{device['cpu_count']}c")
    from pytest_trt.fingerprint import cpu_class_name

    return slug(f"cpu-{cpu_class_name(identity)}-{device.get('cpu_usable') or device['cpu_count']}c")


def hardware_for(
    on_gpu: bool, fingerprint: Mapping[str, Any], *, older_scheme: bool = False
) -> tuple[str, dict[str, str]]:
    """(hardware class, software facts) for a run, from ``fingerprint.machine_fingerprint()``
    (``older_scheme``: the class under the older naming, see ``hardware_class``).

    A GPU backend's timings belong to the GPU; a CPU backend's to the CPU, even on a GPU host
    (``on_gpu``: the running backend is registered as a GPU backend).
    """
    gpu = fingerprint.get("gpu")
    if on_gpu and gpu:
        software = {"driver": gpu.get("driver_version"), "cuda": gpu.get("cuda_runtime_version")}
        return hardware_class(gpu, older_scheme=older_scheme), {k: str(v) for k, v in software.items() if v}
    return hardware_class(fingerprint, older_scheme=older_scheme), {}


def is_absolute_module(module: str) -> bool:
    """A test module path that is absolute on POSIX or Windows (``/x``, ``C:\\x``, ``\\\\host\\x``):
    pytest names a test file that way when it lies outside the rootdir."""
    return PurePosixPath(module).is_absolute() or PureWindowsPath(module).is_absolute()


# Most file systems take names of at most 255 bytes.
MAX_NAME_BYTES = 255
_DIGEST_CHARS = 16


def module_file_name(module: str) -> str:
    """``tests/perf/test_x.py`` -> ``tests__perf__test_x.json``. A name over ``MAX_NAME_BYTES``
    keeps its start and ends in a digest of the whole module path instead, the same on every
    run (``<start>-<sha256[:16]>.json``); shorter names are as they always were."""
    parts = module.replace("\\", "/").split("/")
    if not module or is_absolute_module(module) or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"baseline module must be a relative path inside the rootdir, got {module!r}")
    name = "__".join(parts).removesuffix(".py") + ".json"
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(module.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    room = MAX_NAME_BYTES - len(f"-{digest}.json")
    start = name.encode("utf-8")[:room].decode("utf-8", errors="ignore")  # whole characters only
    return f"{start}-{digest}.json"
