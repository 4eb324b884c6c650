"""A measurement of an engine in a fresh Python process.

Sessions of one process share that process's speed: where a process runs a model a few percent
slower or faster than the next one (memory placement, the host's state while it started), its
sessions agree with each other and a recording or a confirmation made of them carries the
offset. The regression rule samples processes as well as sessions: the parent writes a
``ProcessJob`` (the artifact, the model, the build, the feed and the measurement settings) to a
private folder, ``python -m pytest_trt.timing.fresh_process JOB RESULT`` loads the engine from
the artifact, measures it as the parent would (the same device lock) and writes the
``PerfResult`` back. Both files are pickles that this process wrote for its own child.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_trt.errors import BackendError
from pytest_trt.store import workdirs

if TYPE_CHECKING:
    import numpy as np

    from pytest_trt.model import LoadedModel
    from pytest_trt.specs import BuildSpec, MeasureSettings
    from pytest_trt.timing.measure import PerfResult
    from pytest_trt.types import Artifact

# Beyond the measurement and the lock wait: interpreter start, imports, loading the engine.
START_ALLOWANCE_S = 120.0
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RuntimeSettings:
    """The session settings a backend reads (``types.BackendSettings``), as a child gets them."""

    runtime: str = "full"
    cuda_api: str = ""


@dataclass(frozen=True)
class ProcessPlace:
    """Where this run's fresh processes measure (--trt-fresh-processes): whether they do at all,
    the settings their backends read and the GPU they run on."""

    enabled: bool = False
    settings: RuntimeSettings = RuntimeSettings()
    gpu: int = 0


@dataclass(frozen=True)
class ProcessJob:
    """One measurement for a fresh process to make."""

    backend: str
    settings: RuntimeSettings
    gpu: int
    artifact: Artifact
    model: LoadedModel  # the model the artifact was built from
    build: BuildSpec
    feed: dict[str, np.ndarray]
    measure: MeasureSettings
    batch: int
    percentiles: tuple[float, ...]
    lock_timeout_s: float
    lock_notice_s: float


def measure_in_fresh_process(job: ProcessJob) -> PerfResult:
    """``job`` measured in a new interpreter; a BackendError with the child's words if it fails."""
    timeout = job.lock_timeout_s + (job.measure.warmup_ms + job.measure.max_duration_ms) / 1000 + START_ALLOWANCE_S
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    with workdirs.scratch("pytest-trt-process-") as folder:
        job_path, result_path = folder / "job.pickle", folder / "result.pickle"
        job_path.write_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        command = [sys.executable, "-m", "pytest_trt.timing.fresh_process", str(job_path), str(result_path)]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BackendError(f"a measurement in a fresh process took over {timeout:.0f} s") from None
        if done.returncode != 0 or not result_path.is_file():
            words = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise BackendError(f"a measurement in a fresh process failed (exit {done.returncode}): {' '.join(words)}")
        result: PerfResult = pickle.loads(result_path.read_bytes())
        return result


def _run(job: ProcessJob) -> PerfResult:
    from pytest_trt import backends
    from pytest_trt.backends.base import device_memory
    from pytest_trt.timing import measure
    from pytest_trt.timing.lock import LockWait
    from pytest_trt.types import BackendContext

    backend = backends.create(job.backend, BackendContext(settings=job.settings, gpu=job.gpu))
    runner = backend.load(job.artifact, job.model, job.build)
    try:
        wait = LockWait(timeout_s=job.lock_timeout_s, notice_s=job.lock_notice_s)
        result = measure.measure(runner, job.feed, job.measure, job.batch, percentiles=job.percentiles, lock_wait=wait)
        return dataclasses.replace(result, device_memory=device_memory(runner))
    finally:
        runner.close()


def main(argv: list[str]) -> int:
    job_path, result_path = (Path(a) for a in argv)
    job: ProcessJob = pickle.loads(job_path.read_bytes())
    result_path.write_bytes(pickle.dumps(_run(job), protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
