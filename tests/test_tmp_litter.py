"""Temporaries after kill -9: a backend's build folder lies in its process's work folder, and a
later run removes the work folders of dead processes, in the private temp parent and, where that
parent cannot be trusted, in the temp folder itself. Nothing this plugin did not write is touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pytest_trt.store import workdirs
from pytest_trt.store.cache import EngineCache
from pytest_trt.store.owners import ProcessOwner, write_owner_file

REPO = Path(__file__).resolve().parent.parent
MLP = REPO / "examples" / "models" / "mlp.onnx"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="kill -9 and pids as POSIX has them")

KILLED_MID_BUILD = """
import os, signal, sys
from pathlib import Path
from pytest_trt.backends import onnxruntime as ort_backend
from pytest_trt.model import load_model
from pytest_trt.specs import BuildSpec

def killed(*args, **kwargs):
    # The build's temporary folder exists now: say where, and die as kill -9 does.
    print(sorted(str(p) for p in Path(sys.argv[2]).rglob("pytest-trt-ort-*")), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

ort_backend._create_session = killed
ort_backend.OnnxRuntimeBackend().build(load_model(Path(sys.argv[1])), BuildSpec())
"""

KILLED_WITH_A_WORK_FOLDER = """
import os, signal
from pytest_trt.store import workdirs
from pytest_trt.store.cache import EngineCache

cache = EngineCache(None)
print(cache.work_dir(), flush=True)
with workdirs.scratch("pytest-trt-ort-") as tmp:
    print(tmp, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed(code: str, tmp: Path, *args: str) -> tuple[int, list[str]]:
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done.returncode, done.stdout.split("\n")


def _dead_owner_folder(path: Path, pid: int, mode: int = 0o700) -> Path:
    path.mkdir(mode=mode)
    path.chmod(mode)
    (path / "model.onnx").write_bytes(b"keep me")
    owner = ProcessOwner.current()
    write_owner_file(path / workdirs.OWNER_FILE, ProcessOwner(**{**owner.__dict__, "pid": pid}))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_a_build_killed_mid_way_leaves_a_folder_the_next_run_removes(tmp_path, monkeypatch) -> None:
    _, lines = _killed(KILLED_MID_BUILD, tmp_path, str(MLP), str(tmp_path))
    build_dirs = [Path(p) for p in json.loads(lines[0].replace("'", '"'))]
    parent = tmp_path / f"pytest-trt-work-{os.getuid()}"
    assert len(build_dirs) == 1 and build_dirs[0].is_dir() and build_dirs[0].parent.parent == parent
    assert not list(tmp_path.glob("pytest-trt-ort-*"))  # nothing loose in the temp folder
    decoy = tmp_path / "pytest-trt-ort-decoy"
    decoy.mkdir()
    no_record = parent / f"{_dead_pid()}-{'ab' * 8}"
    no_record.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    EngineCache(None)  # the next run
    assert not build_dirs[0].parent.exists()
    assert decoy.is_dir() and no_record.is_dir()


def test_work_folders_made_beside_an_untrusted_parent_are_removed_after_a_kill(tmp_path, monkeypatch) -> None:
    (tmp_path / f"pytest-trt-work-{os.getuid()}").mkdir(mode=0o777)
    (tmp_path / f"pytest-trt-work-{os.getuid()}").chmod(0o777)  # others could plant in it: not used
    _, lines = _killed(KILLED_WITH_A_WORK_FOLDER, tmp_path)
    work, build = Path(lines[0]), Path(lines[1])
    assert work.parent == tmp_path and work.name.startswith(f"pytest-trt-work-{_pid_of(work)}-")
    assert build.parent.parent == tmp_path and build.is_dir()

    pid = _dead_pid()
    decoys = [
        tmp_path / f"pytest-trt-work-{pid}-nore_cd1",  # no owner record
        _dead_owner_folder(tmp_path / f"pytest-trt-work-{pid}-shared01", pid, mode=0o777),  # others may write
        _dead_owner_folder(tmp_path / f"pytest-trt-work-{pid + 1}-wrongpid", pid),  # the name's pid differs
        _dead_owner_folder(tmp_path / f"pytest-trt-work-{os.getpid()}-alive001", os.getpid()),  # alive
        _dead_owner_folder(tmp_path / f"pytest-trt-work-{pid}-toolong99", pid),  # not mkdtemp's name
    ]
    decoys[0].mkdir()
    target = _dead_owner_folder(tmp_path / "elsewhere", pid)
    link = tmp_path / f"pytest-trt-work-{pid}-linked01"
    link.symlink_to(target, target_is_directory=True)
    (tmp_path / f"pytest-trt-work-{pid}-afile001").write_text("a file")
    if os.getuid() == 0:
        foreign = _dead_owner_folder(tmp_path / f"pytest-trt-work-{pid}-foreign1", pid)
        os.chown(foreign, 65534, 65534)
        decoys.append(foreign)

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    EngineCache(None)  # the next run
    assert not work.exists() and not build.parent.exists()
    for decoy in decoys:
        assert decoy.is_dir(), decoy
    assert (target / "model.onnx").read_bytes() == b"keep me" and link.is_symlink()
    assert (tmp_path / f"pytest-trt-work-{pid}-afile001").read_text() == "a file"


def _pid_of(folder: Path) -> int:
    return int(folder.name.split("-")[3])


def test_a_build_folder_is_removed_when_the_build_ends(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(workdirs, "_process_scratch", None)  # made in this temp folder
    with workdirs.scratch("pytest-trt-ort-") as folder:
        (folder / "optimized.onnx").write_bytes(b"x")
        assert folder.parent.parent == tmp_path / f"pytest-trt-work-{os.getuid()}"
    assert not folder.exists()
