"""A lock holder that stops (SIGSTOP, as Ctrl-Z does) or hangs: the run that waits names it after
a few seconds (pid, command, and that it is stopped) and gives up at the lock timeout, for each of
the three locks (the device's measurement lock, a cache entry's, the baseline store's). The wait
is never counted as measuring time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_trt.prepare.progress import Phase, Progress
from pytest_trt.store import owners
from pytest_trt.timing import lock as measure_lock

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")

REPO = Path(__file__).resolve().parents[1]


def _stopped(pid: int) -> bool:
    return owners.process_stopped(pid)


@pytest.fixture
def stopped_holder() -> Iterator:
    """Start ``python -c body``, wait for it to print "held", then stop it with SIGSTOP; it is
    resumed and killed at the end whatever happens."""
    started: list[subprocess.Popen] = []

    def start(body: str, *args: str) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(body), *args], stdout=subprocess.PIPE,
                                  text=True, env=env)
        started.append(holder)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while not _stopped(holder.pid):
            assert time.monotonic() < deadline, "the holder did not stop"
            time.sleep(0.01)
        return holder

    yield start
    for holder in started:
        os.kill(holder.pid, signal.SIGCONT)
        holder.kill()
        holder.wait(timeout=30)


def _assert_names_stopped_holder(text: str, holder: subprocess.Popen) -> None:
    assert f"pid {holder.pid}" in text, text
    assert "STOPPED" in text and f"kill -CONT {holder.pid}" in text, text
    assert "running `" in text and sys.executable in text, text  # its command


MEASURE_HOLDER = """
    import sys, tempfile, time
    tempfile.tempdir = sys.argv[1]
    from pytest_trt.timing.lock import measuring
    with measuring("cpu"):
        print("held", flush=True)
        time.sleep(300)
"""


def test_a_stopped_measurement_lock_holder_is_named_and_given_up_on(stopped_holder, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    holder = stopped_holder(MEASURE_HOLDER, str(tmp_path))
    notes: list[str] = []
    wait = measure_lock.LockWait(timeout_s=1.0, notice_s=0.2, notify=notes.append)
    with pytest.raises(measure_lock.MeasureLockTimeout) as caught, measure_lock.measuring("cpu", wait=wait):
        pass
    assert len(notes) == 1 and "waiting for the measurement lock of cpu" in notes[0]
    _assert_names_stopped_holder(notes[0], holder)
    message = str(caught.value)
    assert "gave up after 1 s" in message and "--trt-lock-timeout" in message
    _assert_names_stopped_holder(message, holder)


def test_a_stopped_cache_entry_lock_holder_is_named_and_given_up_on(stopped_holder, tmp_path):
    from pytest_trt.errors import CacheLockTimeout
    from pytest_trt.store.cache import EngineCache
    from pytest_trt.types import Artifact

    holder = stopped_holder("""
        import sys, time
        from pathlib import Path
        from pytest_trt.store.cache import EngineCache
        def build():
            print("held", flush=True)
            time.sleep(300)
        EngineCache(Path(sys.argv[1])).get_or_build("engine", {"m": 1}, build, lambda a: a)
    """, str(tmp_path / "cache"))
    notes: list[str] = []
    cache = EngineCache(tmp_path / "cache", notify=notes.append, lock_timeout_s=1.0, lock_notice_s=0.2)
    with pytest.raises(CacheLockTimeout) as caught:
        cache.get_or_build("engine", {"m": 1}, lambda: Artifact(b"x"), lambda a: a)
    assert len(notes) == 1 and "waiting for cache entry engine/" in notes[0]
    _assert_names_stopped_holder(notes[0], holder)
    _assert_names_stopped_holder(str(caught.value), holder)


def test_a_stopped_baseline_store_lock_holder_is_named_and_given_up_on(stopped_holder, tmp_path):
    from pytest_trt.baselines.store import BaselineStore
    from pytest_trt.errors import BaselineFileError

    holder = stopped_holder("""
        import sys, time
        from pathlib import Path
        from pytest_trt.baselines.store import BaselineStore
        with BaselineStore(Path(sys.argv[1]), "cpu-test-1c")._locked():
            print("held", flush=True)
            time.sleep(300)
    """, str(tmp_path / "baselines"))
    notes: list[str] = []
    store = BaselineStore(tmp_path / "baselines", "cpu-test-1c", lock_timeout_s=1.0, notify=notes.append)
    monkeypatch_notice = pytest.MonkeyPatch()
    monkeypatch_notice.setattr("pytest_trt.baselines.store.NOTICE_S", 0.2)
    try:
        with pytest.raises(BaselineFileError) as caught, store._locked():
            pass
    finally:
        monkeypatch_notice.undo()
    assert len(notes) == 1 and "waiting for the baseline store's lock" in notes[0]
    _assert_names_stopped_holder(notes[0], holder)
    assert "gave up after 1 s" in str(caught.value)
    _assert_names_stopped_holder(str(caught.value), holder)


def test_a_test_waiting_on_a_stopped_measurer_fails_at_the_lock_timeout_naming_it(
    stopped_holder, trt_pytester, tmp_path, monkeypatch
):
    # Before, only the 1800 s hard limit applied: the run waited silently for half an hour.
    locks = tmp_path / "locks-tmp"
    locks.mkdir()
    holder = stopped_holder(MEASURE_HOLDER, str(locks))
    monkeypatch.setenv("TMPDIR", str(locks))
    trt_pytester.pytester.makepyfile(test_perf="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", shapes={"x": (8, 256)}, intra_op_threads=1)
        @pytest.mark.trt_perf(backend="onnxruntime")
        def test_a(trt_engine):
            pass
    """)
    result = trt_pytester.run_subprocess("--trt-backend=onnxruntime", "--trt-lock-timeout=2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "waiting for the measurement lock of cpu" in output
    assert "gave up after 2 s waiting for the measurement lock of cpu" in output
    _assert_names_stopped_holder(output, holder)


def test_a_wait_for_the_device_is_not_counted_as_measuring_time() -> None:
    # The line once read "measured ... in 22.5 s" for a 0.5 s measurement queued 22 s.
    lines: list[str] = []
    ticks = iter([0.0, 22.5, 100.0, 123.0])
    progress = Progress(lines.append, threshold_s=1.0, clock=lambda: next(ticks))
    with progress.phase(Phase.MEASURE, "t on cpu") as step:
        step.waited_s = 22.0
    assert lines == []
    with progress.phase(Phase.MEASURE, "t on cpu") as step:
        step.waited_s = 20.0
    assert lines == ["measured t on cpu in 3.0 s"]
