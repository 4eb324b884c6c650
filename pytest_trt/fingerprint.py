"""Facts about this machine and its software, shared by cache keys, baselines and reports.

GPU facts come from ``pytest_trt.cuda.runtime``; where it, its CUDA binding or a GPU is missing there are
simply no GPU facts, so collecting facts never fails a run.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

X86_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "hygon", "CentaurHauls": "centaur"}
# /proc/cpuinfo "CPU implementer" of ARM cores, and the parts worth a name (others keep their number).
ARM_IMPLEMENTERS = {
    0x41: "arm", 0x42: "broadcom", 0x43: "cavium", 0x46: "fujitsu", 0x48: "hisilicon", 0x4E: "nvidia",
    0x50: "apm", 0x51: "qualcomm", 0x61: "apple", 0x69: "intel", 0x6D: "microsoft", 0xC0: "ampere",
}
ARM_PARTS = {
    (0x41, 0xD03): "Cortex-A53", (0x41, 0xD05): "Cortex-A55", (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD0B): "Cortex-A76", (0x41, 0xD0C): "Neoverse-N1", (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD49): "Neoverse-N2", (0x41, 0xD4F): "Neoverse-V2", (0x41, 0xD84): "Neoverse-V3",
    (0x41, 0xD8E): "Neoverse-N3", (0xC0, 0xAC3): "AmpereOne", (0x48, 0xD01): "Kunpeng-920",
}


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


def _fields(text: str) -> dict[str, str]:
    """``key: value`` lines of /proc/cpuinfo, the first of each key (the first CPU's)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and value.strip():
            found.setdefault(key.strip(), value.strip())
    return found


def _number(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The CPU's identity from /proc/cpuinfo: ``vendor`` (short, lower case), ``name`` (the
    marketing name, "" where the kernel gives none) and ``signature``, what tells one generation
    from another when the name does not: family.model.stepping on x86 (``25.1.1``), the
    revision on ARM (``r3p1``, the part is in the name). {} when the text says none of it."""
    fields = _fields(text)
    if "vendor_id" in fields or "cpu family" in fields:
        vendor_id = fields.get("vendor_id", "")
        numbers = [fields.get(k, "") for k in ("cpu family", "model", "stepping")]
        return {
            "vendor": X86_VENDORS.get(vendor_id, vendor_id.lower()),
            "name": fields.get("model name", ""),
            "signature": ".".join(n for n in numbers if n),
            "family": fields.get("cpu family", ""), "model": fields.get("model", ""),
            "stepping": fields.get("stepping", ""),
        }
    implementer, part = _number(fields.get("CPU implementer", "")), _number(fields.get("CPU part", ""))
    if implementer is not None and part is not None:
        variant, revision = _number(fields.get("CPU variant", "0")) or 0, _number(fields.get("CPU revision", "0")) or 0
        return {
            "vendor": ARM_IMPLEMENTERS.get(implementer, f"{implementer:#x}"),
            "name": fields.get("model name") or ARM_PARTS.get((implementer, part), f"{part:#x}"),
            "signature": f"r{variant}p{revision}",
            "implementer": f"{implementer:#x}", "part": f"{part:#x}",
        }
    name = fields.get("model name") or fields.get("Model") or fields.get("Hardware")
    return {"vendor": "", "name": name, "signature": ""} if name else {}


def parse_windows_processor(text: str, name: str = "") -> dict[str, Any]:
    """The identity from Windows' ``platform.processor()``, e.g. ``Intel64 Family 6 Model 158
    Stepping 10, GenuineIntel`` (``name`` from the registry where it was read)."""
    match = re.search(r"Family (\d+) Model (\d+) Stepping (\d+), (\w+)", text)
    if not match:
        return {"vendor": "", "name": name or text, "signature": ""} if (name or text) else {}
    family, model, stepping, vendor_id = match.groups()
    return {
        "vendor": X86_VENDORS.get(vendor_id, vendor_id.lower()), "name": name,
        "signature": f"{family}.{model}.{stepping}", "family": family, "model": model, "stepping": stepping,
    }


def parse_sysctl(read: Callable[[str], str]) -> dict[str, Any]:
    """The identity on macOS from ``read(sysctl name)`` ("" where it has none): the brand string,
    and family.model.stepping on Intel Macs."""
    name = read("machdep.cpu.brand_string")
    vendor_id = read("machdep.cpu.vendor")
    numbers = [read(f"machdep.cpu.{k}") for k in ("family", "model", "stepping")]
    vendor = X86_VENDORS.get(vendor_id, vendor_id.lower()) or ("apple" if name.startswith("Apple") else "")
    return {"vendor": vendor, "name": name, "signature": ".".join(numbers) if all(numbers) else ""}


def _sysctl(key: str) -> str:
    try:
        done = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _windows_cpu_name() -> str:
    if sys.platform != "win32":  # winreg exists on Windows only
        return ""
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as key:
            return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
    except (ImportError, OSError):
        return ""


@functools.cache
def cpu_identity() -> dict[str, Any]:
    """This CPU's ``vendor``, ``name`` and ``signature`` (see ``parse_cpuinfo``): from
    /proc/cpuinfo on Linux, the registry and ``platform.processor()`` on Windows, sysctl on macOS."""
    cpuinfo = Path("/proc/cpuinfo")
    found: dict[str, Any] = {}
    if cpuinfo.is_file():
        try:
            found = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
        except OSError:
            found = {}
    elif sys.platform == "win32":
        found = parse_windows_processor(platform.processor(), _windows_cpu_name())
    elif sys.platform == "darwin":
        found = parse_sysctl(_sysctl)
    return found or {"vendor": "", "name": platform.processor() or platform.machine() or "unknown", "signature": ""}


def usable_cpus() -> int:
    """The CPUs this process may run on (``taskset``, cgroup cpusets), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return len(os.sched_getaffinity(0)) or os.cpu_count() or 1
        except OSError:
            pass
    return os.cpu_count() or 1


_NOISE = re.compile(
    r"\([^)]*\)|@\s*[\d.]+\s*[gm]hz|\b\d+-core\b|\bcpu\b|\bprocessor\b|\bwith radeon.*$", re.IGNORECASE
)


def cpu_class_name(identity: Mapping[str, Any]) -> str:
    """A short, readable name of the CPU for a folder: vendor and marketing name without
    trademarks, clock and core count, then the signature: ``amd-epyc-7b13-25.1.0``,
    ``intel-xeon-6.167.1``, ``arm-neoverse-n1-r3p1``."""
    vendor = str(identity.get("vendor") or "")
    name = re.sub(r"[^a-z0-9.]+", "-", _NOISE.sub(" ", str(identity.get("name") or "")).lower()).strip("-.")
    if vendor and not name.startswith(vendor):
        name = f"{vendor}-{name}" if name else vendor
    return "-".join(p for p in (name, str(identity.get("signature") or "")) if p) or "unknown"


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
        "cpu": cpu_identity(),
        "cpu_usable": usable_cpus(),
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
        from pytest_trt.cuda import runtime as cuda

        if not cuda.available().ok:
            return None
        return dict(cuda.device_properties(index))
    except Exception:  # no cuda module, binding or driver: all mean "no GPU facts"
        return None


def gpu_count() -> int:
    """How many GPUs this process can use (the CUDA driver's count, so ``CUDA_VISIBLE_DEVICES``
    applies); 0 without a usable driver, CUDA binding or GPU. The one source of the count
    (``--trt-gpus``): tests replace it."""
    try:
        from pytest_trt.cuda import runtime as cuda

        if not cuda.available().ok:
            return 0
        return cuda.device_count()
    except Exception:  # no cuda module, binding or driver: no GPU to count
        return 0


def machine_fingerprint(gpu: int = 0) -> dict[str, Any]:
    """Host facts plus the facts of GPU ``gpu`` (the one this process runs on; None without a GPU)."""
    return {**host_facts(), "gpu": gpu_facts(gpu)}
