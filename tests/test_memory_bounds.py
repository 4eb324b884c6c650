"""Sizes known before reading are checked against memory first: calibration batch counts, the
arrays of an .npz (from the members' headers), generated inputs and cache entries. Each too-large
one is a clear error naming the file or argument and the limit (an entry: damage, rebuilt), never
a MemoryError, an abort or a run that grows until the machine swaps."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from onnx_builders import overflowing_model

from pytest_trt.store import memory

REPO = Path(__file__).resolve().parent.parent
MiB = 2**20


def _memory(monkeypatch: pytest.MonkeyPatch, available: int) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: available)


def _claiming_npz(path: Path, name: str, shape: tuple[int, ...]) -> Path:
    """An .npz of a few hundred bytes whose member's header claims an array of ``shape``: what a
    zip bomb looks like to a reader that trusts the header."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.npy", header.getvalue())  # the header, and none of the data
    return path


def test_available_memory_is_read_on_linux() -> None:
    if not Path("/proc/meminfo").is_file():
        pytest.skip("reads /proc/meminfo")
    available = memory.available_bytes()
    assert available is not None and available > 0


def test_the_limit_is_half_the_available_memory(monkeypatch) -> None:
    _memory(monkeypatch, 64 * MiB)
    assert memory.limit_bytes() == 32 * MiB
    assert memory.describe_limit(32 * MiB) == "the memory limit of 32.0 MiB (half the memory available now)"


def test_the_address_space_limit_bounds_available_memory() -> None:
    code = (
        "import resource; from pytest_trt.store import memory; "
        "used = memory._address_space_room(); assert used is None; "
        "resource.setrlimit(resource.RLIMIT_AS, (2**40, resource.RLIM_INFINITY)); "
        "print(memory._address_space_room())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert 0 < int(done.stdout) < 2**40


def test_npz_sizes_come_from_the_headers_without_reading_the_data(tmp_path: Path) -> None:
    bomb = _claiming_npz(tmp_path / "bomb.npz", "x", (2**40, 8))
    assert bomb.stat().st_size < 1024
    from pytest_trt.prepare.inputs import npz_array_bytes

    assert npz_array_bytes(bomb) == {"x.npy": 2**40 * 8 * 4}
    np.savez(tmp_path / "real.npz", x=np.zeros((3, 4), np.float32), ids=np.zeros(5, np.int64))
    assert npz_array_bytes(tmp_path / "real.npz") == {"x.npy": 48, "ids.npy": 40}
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert npz_array_bytes(tmp_path / "junk.npz") == {}


CALIBRATED = """
import pytest

@pytest.mark.trt_model("overflow.onnx", precision="int8", shapes={{"x": (1, 8)}}, calibration={calibration})
def test_int8(trt_engine):
    pass
"""


def test_a_calibration_count_larger_than_memory_allows_is_refused_before_drawing(trt_pytester, monkeypatch) -> None:
    overflowing_model(trt_pytester.path / "overflow.onnx")
    trt_pytester.pytester.makepyfile(test_count=CALIBRATED.format(calibration=10**9))
    _memory(monkeypatch, 64 * MiB)
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*test_int8*calibration=1000000000: 1000000000 seeded batches of 1.0 KiB each take *, over the memory "
        "limit of 32.0 MiB (half the memory available now); give at most 31775 batches*",
    ])


def test_a_calibration_npz_whose_headers_claim_more_than_memory_is_refused_before_reading(trt_pytester) -> None:
    overflowing_model(trt_pytester.path / "overflow.onnx")
    _claiming_npz(trt_pytester.path / "bomb.npz", "x", (2**40, 1, 8))
    trt_pytester.pytester.makepyfile(test_bomb=CALIBRATED.format(calibration='"bomb.npz"'))
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*test_int8*calibration file '*bomb.npz': its arrays take 32.0 TiB (35184372088832 bytes) once read "
        "(their headers say so), over the memory limit of * (half the memory available now)*",
    ])


def test_an_inputs_npz_whose_headers_claim_more_than_memory_is_refused_before_reading(trt_pytester) -> None:
    _claiming_npz(trt_pytester.path / "bomb.npz", "x", (2**40, 256))
    trt_pytester.pytester.makepyfile(test_bomb_inputs="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", inputs="bomb.npz")
        def test_mlp(trt_engine):
            pass
        """)
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bomb.npz: its arrays take * once read (their headers say so), over the memory limit*"])


def test_generated_inputs_larger_than_memory_allows_are_refused_before_allocating(trt_pytester, monkeypatch) -> None:
    trt_pytester.pytester.makepyfile(test_big="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=100_000)
        def test_mlp(trt_engine):
            pass
        """)
    _memory(monkeypatch, 64 * MiB)
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*mlp.onnx: generating input 'x' of shape [[]100000, 256[]] and dtype float32 takes 97.7 MiB (102400000 "
        "bytes), over the memory limit of 32.0 MiB (half the memory available now). Give smaller shapes= or "
        "batch_size=*",
    ])
    assert "MemoryError" not in result.stdout.str()


HUGE_ENTRY = """
import json, resource, sys
from pathlib import Path
from pytest_trt.store.cache import EngineCache
from pytest_trt.types import Artifact

root, kind = Path(sys.argv[1]), sys.argv[2]
statm = int(Path("/proc/self/statm").read_text().split()[0]) * 4096
resource.setrlimit(resource.RLIMIT_AS, (statm + 2**30, resource.RLIM_INFINITY))  # 1 GiB of room
warned = []
cache = EngineCache(root, warn=warned.append)
value, event = cache.get_or_build(kind, {"m": 1}, lambda: Artifact(b"rebuilt"), lambda a: a.data)
print(json.dumps({"value": value.decode(), "outcome": str(event.outcome), "warned": warned}))
"""


@pytest.mark.skipif(not Path("/proc/self/statm").is_file(), reason="an address-space limit as Linux has it")
@pytest.mark.parametrize("kind", ["engine", "reference", "converted-model", "torch-export", "quantized-model"])
@pytest.mark.parametrize("size", [3 * 2**30, 50 * 2**30], ids=["3GiB", "50GiB"])
def test_an_entry_larger_than_memory_is_damage_dropped_and_rebuilt(tmp_path: Path, kind: str, size: int) -> None:
    from pytest_trt.store.cache import EngineCache
    from pytest_trt.types import Artifact

    root = tmp_path / "cache"
    cache = EngineCache(root)
    cache.get_or_build(kind, {"m": 1}, lambda: Artifact(b"built"), lambda a: a.data)
    (entry,) = {p.parent for p in (root / kind).glob("*/*/artifact.bin")}
    record = json.loads((entry / "record.json").read_text())
    (entry / "record.json").write_text(json.dumps({**record, "size_bytes": size}))
    os.truncate(entry / "artifact.bin", size)  # sparse: no disk space taken
    outside = tmp_path / "decoy.bin"
    outside.write_bytes(b"not the cache's")

    done = subprocess.run([sys.executable, "-c", HUGE_ENTRY, str(root), kind], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["value"] == "rebuilt" and result["outcome"] == "rebuilt"
    (warning,) = result["warned"]
    assert f"artifact.bin is recorded as {size} bytes, more than the " in warning
    assert "of memory available now); removed, rebuilding" in warning
    assert (entry / "artifact.bin").stat().st_size == len(b"rebuilt")
    assert outside.read_bytes() == b"not the cache's"
