"""The engine cache as users meet it: pytest runs with --trt-engine-cache, cold and warm,
--trt-rebuild, --trt-cache-clear, a damaged entry, an unwritable directory, and pytest-xdist."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

SUITE = """
import pytest

@pytest.mark.trt_model("mlp.onnx", shapes={"x": (4, 256)})
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-4)
def test_mlp(trt_engine):
    assert trt_engine is not None

@pytest.mark.trt_model("cnn.onnx", batch_size=2)
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-4)
def test_cnn(trt_engine):
    assert trt_engine is not None
"""

# Logs every onnxruntime session the run opens with its graph optimization level (a warm run
# must open sessions with optimizations off only: no graph optimization, no reference build),
# and the outcome of every engine request the plugin makes of the cache.
LOGGING_CONFTEST = """
import os
import onnxruntime
from pytest_trt.store.cache import EngineCache

def log(line):
    with open(os.environ["TRT_SESSION_LOG"], "a") as f:
        f.write(f"{os.getpid()} {line}\\n")

class LoggedSession(onnxruntime.InferenceSession):
    def __init__(self, path_or_bytes, sess_options=None, *args, **kwargs):
        log(sess_options.graph_optimization_level.name if sess_options is not None else "default")
        super().__init__(path_or_bytes, sess_options, *args, **kwargs)

onnxruntime.InferenceSession = LoggedSession
get_or_build = EngineCache.get_or_build

def logged_get_or_build(self, kind, parts, build, load):
    value, event = get_or_build(self, kind, parts, build, load)
    log(f"{kind}:{event.outcome}")
    return value, event

EngineCache.get_or_build = logged_get_or_build
"""

SUMMARY = re.compile(
    r"engine cache (?P<root>\S+): (?P<hits>\d+) hits?, (?P<misses>\d+) miss(?:es)? "
    r"\((?P<builds>\d+) builds?, [\d.]+ s\), (?P<corrupt>\d+) corrupt"
)


class Suite:
    """A pytester project holding the example models, a small gated suite and a session log."""

    def __init__(self, trt_pytester: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        # trt_pytester: tests/conftest.py's fixture (pytester with the example models and the plugin).
        self.trt_pytester = trt_pytester
        trt_pytester.pytester.makepyfile(test_models=SUITE)
        trt_pytester.pytester.makeconftest(LOGGING_CONFTEST)
        self.cache = trt_pytester.path / "engine-cache"
        self.log = trt_pytester.path / "sessions.log"
        monkeypatch.setenv("TRT_SESSION_LOG", str(self.log))
        monkeypatch.setenv("PYTHONPATH", str(REPO))
        monkeypatch.delenv("PYTEST_TRT_ENGINE_CACHE", raising=False)

    def run(self, *args: str, passed: int = 2) -> tuple[pytest.RunResult, dict[str, int], list[str]]:
        """Run in a fresh process; returns the result, the cache summary counts and the log lines
        (session optimization levels, "kind:outcome" of engine requests) without pids."""
        self.log.unlink(missing_ok=True)
        result = self.trt_pytester.run_subprocess(f"--trt-engine-cache={self.cache}", *args)
        result.assert_outcomes(passed=passed)
        match = SUMMARY.search(result.stdout.str())
        assert match is not None, result.stdout.str()
        counts = {k: int(v) for k, v in match.groupdict().items() if k != "root"}
        sessions = self.log.read_text().split("\n") if self.log.exists() else []
        return result, counts, [line.split()[1] for line in sessions if line]

    def entries(self, kind: str) -> list[Path]:
        return sorted((self.cache / kind).glob("*/*"))


@pytest.fixture
def suite(trt_pytester: Any, monkeypatch: pytest.MonkeyPatch) -> Suite:
    return Suite(trt_pytester, monkeypatch)


def test_warm_run_loads_everything_and_recomputes_nothing(suite: Suite) -> None:
    _, cold, cold_sessions = suite.run()
    # Two engines (optimized onnxruntime models) and two reference outputs.
    assert cold == {"hits": 0, "misses": 4, "builds": 4, "corrupt": 0}
    assert "ORT_ENABLE_ALL" in cold_sessions
    assert sorted(line for line in cold_sessions if ":" in line) == ["onnxruntime:miss"] * 2 + ["reference:miss"] * 2
    assert len(suite.entries("onnxruntime")) == 2 and len(suite.entries("reference")) == 2

    result, warm, warm_sessions = suite.run()
    assert warm == {"hits": 4, "misses": 0, "builds": 0, "corrupt": 0}
    # No graph optimization and no reference inference: only loads.
    assert set(warm_sessions) == {"ORT_DISABLE_ALL", "onnxruntime:hit", "reference:hit"}
    assert re.search(r"saved ~[\d.]+ s", result.stdout.str())


def test_rebuild_replaces_the_entries_of_the_selected_tests(suite: Suite) -> None:
    suite.run()
    before = {p: json.loads((p / "record.json").read_text())["created"] for p in suite.entries("onnxruntime")}

    _, counts, sessions = suite.run("--trt-rebuild", "-k", "mlp", passed=1)
    assert counts == {"hits": 0, "misses": 2, "builds": 2, "corrupt": 0}
    assert "onnxruntime:replaced" in sessions
    after = {p: json.loads((p / "record.json").read_text())["created"] for p in suite.entries("onnxruntime")}
    assert after.keys() == before.keys()
    assert sum(after[p] != before[p] for p in after) == 1  # the cnn engine was not selected, so kept

    _, counts, _ = suite.run()
    assert counts["hits"] == 4 and counts["builds"] == 0


def test_cache_clear_empties_the_cache_before_the_run(suite: Suite) -> None:
    suite.run()
    _, counts, _ = suite.run("--trt-cache-clear")
    assert counts == {"hits": 0, "misses": 4, "builds": 4, "corrupt": 0}


def test_damaged_entry_warns_and_the_test_still_passes(suite: Suite) -> None:
    suite.run()
    artifact = suite.entries("onnxruntime")[0] / "artifact.bin"
    artifact.write_bytes(artifact.read_bytes()[:100])

    result, counts, _ = suite.run()
    assert counts == {"hits": 3, "misses": 1, "builds": 1, "corrupt": 1}
    result.stdout.fnmatch_lines(["*corrupt cache entry*artifact.bin has 100 bytes*removed, rebuilding*"])


def test_unwritable_cache_directory_warns_once_and_tests_pass(suite: Suite) -> None:
    blocker = suite.trt_pytester.path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    result = suite.trt_pytester.run_subprocess(f"--trt-engine-cache={blocker / 'cache'}")
    result.assert_outcomes(passed=2)
    output = result.stdout.str() + result.stderr.str()
    assert output.count("turned off for this session") == 1, output
    assert "Not a directory" in output
    assert "engine cache off" in result.stdout.str()


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed")
def test_xdist_workers_build_each_artifact_once(suite: Suite) -> None:
    # --dist each runs every test on both workers at once: both ask for every artifact together.
    _, _, log = suite.run("-n", "2", "--dist", "each", passed=4)
    # Per engine and per reference: one worker builds it, the other waits for the lock and loads it.
    assert sorted(line for line in log if ":" in line) == sorted(
        ["onnxruntime:hit", "onnxruntime:miss", "reference:hit", "reference:miss"] * 2
    )
    assert len(suite.entries("onnxruntime")) == 2

    _, counts, log = suite.run("-n", "2", passed=2)
    assert counts["builds"] == 0 and counts["misses"] == 0
    assert set(log) == {"ORT_DISABLE_ALL", "onnxruntime:hit", "reference:hit"}
