"""The hardware class (baseline folder name) from CPU and GPU facts, and the note on folders
recorded under the older scheme."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_trt import fingerprint
from pytest_trt.baselines.folders import unread_folder_notes
from pytest_trt.baselines.hardware import hardware_class, hardware_for
from pytest_trt.fingerprint import cpu_class_name, parse_cpuinfo, parse_sysctl, parse_windows_processor

AMD_EPYC_KVM = """\
processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 1
model name	: AMD EPYC
stepping	: 1
microcode	: 0x1000065
cpu MHz		: 2449.998
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov hypervisor

processor	: 1
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 1
model name	: AMD EPYC
stepping	: 1
"""

INTEL_XEON = """\
processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 106
model name	: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
stepping	: 6
cpu MHz		: 2899.968
"""

GRAVITON2 = """\
processor	: 0
BogoMIPS	: 243.75
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1

processor	: 1
BogoMIPS	: 243.75
CPU implementer	: 0x41
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1
"""


def host(cpuinfo: str, cores: int, model: str = "") -> dict[str, Any]:
    """Host facts as fingerprint.host_facts gives them, for one /proc/cpuinfo text."""
    return {"cpu_model": model or "unknown", "cpu_count": 64, "cpu": parse_cpuinfo(cpuinfo), "cpu_usable": cores}


def test_amd_epyc_on_kvm_is_told_apart_by_family_model_stepping() -> None:
    assert parse_cpuinfo(AMD_EPYC_KVM) == {
        "vendor": "amd", "name": "AMD EPYC", "signature": "25.1.1", "family": "25", "model": "1", "stepping": "1",
    }
    assert hardware_class(host(AMD_EPYC_KVM, 2, "AMD EPYC")) == "cpu-amd-epyc-25.1.1-2c"
    rome = AMD_EPYC_KVM.replace("cpu family\t: 25", "cpu family\t: 23").replace("model\t\t: 1", "model\t\t: 49")
    assert hardware_class(host(rome, 2, "AMD EPYC")) == "cpu-amd-epyc-23.49.1-2c"
    # Under the older scheme both were one folder.
    assert hardware_class(host(rome, 2, "AMD EPYC"), older_scheme=True) == "cpu-amd-epyc-64c"


def test_intel_xeon_names_lose_trademarks_and_clock() -> None:
    assert hardware_class(host(INTEL_XEON, 8)) == "cpu-intel-xeon-platinum-8375c-6.106.6-8c"
    plain = INTEL_XEON.replace("Platinum 8375C CPU @ 2.90GHz", "Processor")
    assert hardware_class(host(plain, 2)) == "cpu-intel-xeon-6.106.6-2c"


def test_an_aarch64_cpu_without_a_model_name_is_named_by_its_part() -> None:
    assert parse_cpuinfo(GRAVITON2) == {
        "vendor": "arm", "name": "Neoverse-N1", "signature": "r3p1", "implementer": "0x41", "part": "0xd0c",
    }
    assert hardware_class(host(GRAVITON2, 4)) == "cpu-arm-neoverse-n1-r3p1-4c"
    unknown = GRAVITON2.replace("0xd0c", "0xd99")
    assert hardware_class(host(unknown, 4)) == "cpu-arm-0xd99-r3p1-4c"


def test_other_kernels_and_systems() -> None:
    assert parse_cpuinfo("Hardware\t: BCM2835\n") == {"vendor": "", "name": "BCM2835", "signature": ""}
    assert parse_cpuinfo("") == {}
    windows = parse_windows_processor("Intel64 Family 6 Model 158 Stepping 10, GenuineIntel", "Intel(R) Core(TM) i7-8700")
    assert cpu_class_name(windows) == "intel-core-i7-8700-6.158.10"
    assert parse_windows_processor("", "") == {}
    mac = {"machdep.cpu.brand_string": "Apple M2 Pro"}
    assert cpu_class_name(parse_sysctl(lambda key: mac.get(key, ""))) == "apple-m2-pro"
    intel_mac = {"machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz", "machdep.cpu.vendor":
                 "GenuineIntel", "machdep.cpu.family": "6", "machdep.cpu.model": "158", "machdep.cpu.stepping": "13"}
    assert cpu_class_name(parse_sysctl(lambda key: intel_mac.get(key, ""))) == "intel-core-i9-9880h-6.158.13"


def test_this_machine_has_a_short_readable_class() -> None:
    facts = fingerprint.host_facts()
    name = hardware_class(facts)
    assert name.startswith("cpu-") and name.endswith(f"-{facts['cpu_usable']}c") and len(name) <= 60
    assert hardware_for(False, fingerprint.machine_fingerprint())[0] == name


GPU = {"gpu_name": "NVIDIA H100 80GB HBM3", "total_memory_gb": 79.6, "compute_capability": "9.0", "sm_count": 132,
       "driver_version": "12.8", "cuda_runtime_version": "12.8", "uuid": "abc"}


def test_the_gpu_class_names_the_drivers_branch() -> None:
    assert hardware_class(GPU) == "nvidia-h100-80gb-hbm3-80gb-cc9.0-132sm-drv12.8"
    assert hardware_class(GPU, older_scheme=True) == "nvidia-h100-80gb-hbm3-80gb-cc9.0-132sm"
    # The runtime, the UUID (which card of a kind) and clocks are not in it.
    assert hardware_class({**GPU, "cuda_runtime_version": "13.0", "uuid": "def"}) == hardware_class(GPU)
    name, software = hardware_for(True, {"gpu": GPU, **host(INTEL_XEON, 8)})
    assert name == hardware_class(GPU) and software == {"driver": "12.8", "cuda": "12.8"}


def test_a_folder_of_the_older_scheme_gets_a_note(tmp_path: Path) -> None:
    facts = host(AMD_EPYC_KVM, 2, "AMD EPYC")
    facts["cpu_count"] = 2
    root = tmp_path / "baselines"
    assert unread_folder_notes(root, False, facts, "cpu-amd-epyc-25.1.1-2c") == []
    (root / "cpu-amd-epyc-2c").mkdir(parents=True)
    assert unread_folder_notes(root, False, facts, "cpu-amd-epyc-25.1.1-2c") == [
        "baseline: baselines/cpu-amd-epyc-2c was recorded under the older hardware-class scheme (this machine's "
        "class is now cpu-amd-epyc-25.1.1-2c); re-record with --trt-update-baselines"
    ]
    (root / "cpu-amd-epyc-25.1.1-2c").mkdir()
    assert "it can be removed" in unread_folder_notes(root, False, facts, "cpu-amd-epyc-25.1.1-2c")[0]


def test_this_gpus_folder_under_another_driver_gets_a_note(tmp_path: Path) -> None:
    facts = {"gpu": GPU, **host(INTEL_XEON, 8)}
    (tmp_path / "nvidia-h100-80gb-hbm3-80gb-cc9.0-132sm-drv12.6").mkdir()
    (tmp_path / "nvidia-a100-40gb-cc8.0-108sm-drv12.6").mkdir()
    notes = unread_folder_notes(tmp_path, True, facts, hardware_class(GPU))
    assert notes == [
        f"baseline: no baselines for {hardware_class(GPU)} yet; {tmp_path.name}/nvidia-h100-80gb-hbm3-80gb-cc9.0-"
        "132sm-drv12.6 hold this GPU's under another driver; re-record with --trt-update-baselines to compare on this one"
    ]


TESTS = '''
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=2, intra_op_threads=1)
@pytest.mark.trt_perf(backend="onnxruntime")
def test_a(trt_engine):
    pass
'''


def test_a_run_names_the_older_folder_in_its_summary(trt_pytester: Any) -> None:
    older, _ = hardware_for(False, fingerprint.machine_fingerprint(), older_scheme=True)
    current, _ = hardware_for(False, fingerprint.machine_fingerprint())
    if older == current:
        pytest.skip("this machine's class reads the same under both schemes")
    (trt_pytester.path / "baselines" / older).mkdir(parents=True)
    trt_pytester.pytester.makepyfile(test_a=TESTS)
    result = trt_pytester.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        f"baseline: baselines/{older} was recorded under the older hardware-class scheme (this machine's class "
        f"is now {current}); re-record with --trt-update-baselines"
    ])
