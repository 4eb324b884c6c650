"""Special files planted in a shared cache: a FIFO would block ``open`` forever, a link to
``/dev/zero`` would read until memory runs out. Each case runs in a child process bounded in time
and memory; each must come back as a damaged entry (counted corrupt, rebuilt), never hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 60
MEMORY_LIMIT = 4 * 1024**3

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero (POSIX)")

# argv: cache root, damage, outside folder. Builds an entry, damages it, asks for it again.
CHILD = r'''
import json, os, sys
from pathlib import Path
from pytest_trt.backends.base import Artifact
from pytest_trt.store.cache import EngineCache

root, damage, outside = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
parts = {"model_hash": "ab" * 32}
cache = EngineCache(root)
cache.get_or_build("engine", parts, lambda: Artifact(b"stored engine"), lambda a: a.data)
entry = cache.entry_dir("engine", cache.key("engine", parts))
name, how = damage.split(":")
target = entry / name
target.unlink()
if how == "fifo":
    os.mkfifo(target)
elif how == "dev-zero":
    target.symlink_to("/dev/zero")
elif how == "outside-file":
    (outside / "user-file").write_bytes(b"stored engine")  # even the right bytes are not read through a link
    target.symlink_to(outside / "user-file")
elif how == "grown":
    target.write_bytes(b"stored engine" + b"\0" * 1000)

warned = []
cache = EngineCache(root, warn=warned.append)
value, event = cache.get_or_build("engine", parts, lambda: Artifact(b"rebuilt engine"), lambda a: a.data)
again = EngineCache(root).get_or_build("engine", parts, lambda: Artifact(b"third"), lambda a: a.data)
print(json.dumps({"value": value.decode(), "outcome": event.outcome, "corrupt": cache.stats.corrupt,
                  "warned": warned, "again": [again[0].decode(), again[1].outcome]}))
'''


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_child(tmp_path: Path, damage: str) -> dict:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    outside = tmp_path / "outside"
    outside.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "cache"), damage, str(outside)],
            capture_output=True, text=True, timeout=TIMEOUT_S, env=env, preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading an entry with {damage} hung for {TIMEOUT_S} s")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("record.json:fifo", "record.json is not a regular file but a FIFO (named pipe)"),
        ("artifact.bin:fifo", "artifact.bin is not a regular file but a FIFO (named pipe)"),
        ("record.json:dev-zero", "record.json is not a regular file but a symbolic link"),
        ("artifact.bin:dev-zero", "artifact.bin is not a regular file but a symbolic link"),
        ("artifact.bin:outside-file", "artifact.bin is not a regular file but a symbolic link"),
        ("artifact.bin:grown", "artifact.bin is larger than the 13 bytes the record says"),
    ],
)
def test_a_special_file_in_an_entry_is_a_damaged_entry_not_a_hang(tmp_path: Path, damage: str, reason: str) -> None:
    result = run_child(tmp_path, damage)
    assert (result["value"], result["outcome"], result["corrupt"]) == ("rebuilt engine", "rebuilt", 1)
    assert len(result["warned"]) == 1 and reason in result["warned"][0], result["warned"]
    assert result["again"] == ["rebuilt engine", "hit"]  # the rebuilt entry is whole
    if damage.endswith("outside-file"):
        assert (tmp_path / "outside" / "user-file").read_bytes() == b"stored engine"  # link removed, not its target
