"""--trt-gpus on a real GPU: the CUDA layer on a chosen device, and two xdist workers pinned to
the one GPU of a one-GPU host (``-n 2 --trt-gpus=all``): both on GPU 0, their timed windows
taking turns on its measurement lock, and the same results as a run of one process.

Runs on the first GPU backend usable here (tensorrt, onnxruntime-tensorrt, onnxruntime-cuda);
skips with the reasons where none is. On a host of several GPUs, ``--trt-gpus=1`` keeps both
workers on GPU 0 (the spread over many GPUs is bench/multi_gpu.py's).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_trt import backends, fingerprint
from pytest_trt.cuda import runtime as cuda
from pytest_trt.errors import CudaError

pytestmark = pytest.mark.needs_gpu

# Wraps the measurement lock so each window's holder, device and times are logged.
WINDOW_LOG_CONFTEST = '''
import contextlib
import json
import os
import time

from pytest_trt.timing import lock

LOG = os.environ["LOCK_WINDOW_LOG"]
_measuring = lock.measuring


@contextlib.contextmanager
def logged(device, *args, **kwargs):
    with _measuring(device, *args, **kwargs) as held:
        opened = time.monotonic()
        yield held
        closed = time.monotonic()
    name = f"{os.getpid()}-{opened}.json"
    with open(os.path.join(LOG, name), "w") as f:
        json.dump({"pid": os.getpid(), "device": device, "opened": opened, "closed": closed}, f)


lock.measuring = logged
'''

TESTS = '''
import pytest

@pytest.mark.trt_model("{model}", batch_size=4)
@pytest.mark.trt_accuracy(rtol=1e-2, atol=1e-3)
@pytest.mark.trt_perf(max_latency_ms=1e6, min_duration_ms=200)
@pytest.mark.parametrize("i", range(3))
def test_model(trt_engine, i):
    pass
'''


def gpu_backend() -> str:
    reasons = []
    for name in ("tensorrt", "onnxruntime-tensorrt", "onnxruntime-cuda"):
        status = backends.create(name).availability()
        if status.ok:
            return name
        reasons.append(f"{name}: {status.reason}")
    pytest.skip("no GPU backend is usable here: " + "; ".join(reasons))


def test_the_cuda_layer_works_on_the_device_it_is_given() -> None:
    count = cuda.device_count()
    assert count >= 1 and fingerprint.gpu_count() == count
    api = cuda.get_cuda_api("", device=count - 1)
    api.use_device()
    memory, stream = api.device_alloc(1024), api.create_stream()
    stream.synchronize()
    stream.close()
    memory.free()
    assert api.device_properties(count - 1)["uuid"] == fingerprint.gpu_facts(count - 1)["uuid"]  # type: ignore[index]


def test_a_device_that_is_not_there_is_a_cuda_error_naming_it() -> None:
    api = cuda.get_cuda_api("", device=cuda.device_count() + 3)
    with pytest.raises(CudaError, match="cudaSetDevice failed: cudaErrorInvalidDevice"):
        api.device_alloc(16)


def _run(pytester: Any, report: str, *args: str) -> dict[str, Any]:
    result = pytester.run_subprocess("--trt-baseline=off", f"--trt-report-json={report}", *args)
    result.assert_outcomes(passed=9)
    data: dict[str, Any] = json.loads((pytester.path / report).read_text())
    return data


def test_two_workers_on_one_gpu_take_turns_and_measure_as_one_process_does(
    trt_pytester: Any, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    backend = gpu_backend()
    log = tmp_path_factory.mktemp("windows")
    monkeypatch.setenv("LOCK_WINDOW_LOG", str(log))
    monkeypatch.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmp")))  # locks of this test's own
    trt_pytester.pytester.makeconftest(WINDOW_LOG_CONFTEST)
    for model in ("mlp", "cnn", "encoder"):
        (Path(trt_pytester.path) / f"test_{model}.py").write_text(TESTS.format(model=f"{model}.onnx"))
    gpus = "all" if cuda.device_count() == 1 else "1"
    # One engine cache for both runs: the workers load the engines the first run built, so both
    # runs measure the same engines.
    cache = tmp_path_factory.mktemp("engines")
    args = (f"--trt-backend={backend}", f"--trt-engine-cache={cache}", "--trt-warmup-ms=200", "--trt-min-iterations=50")

    alone = _run(trt_pytester, "alone.json", *args)
    windows_alone = len(list(log.iterdir()))
    shared = _run(trt_pytester, "shared.json", "-n", "2", f"--trt-gpus={gpus}", *args)

    placed = {(t["gpu"]["index"], t["gpu"]["worker"]) for t in shared["tests"]}
    assert placed == {(0, "gw0"), (0, "gw1")}, placed
    assert [(w["worker"], w["index"]) for w in shared["meta"]["gpus"]] == [("gw0", 0), ("gw1", 0)]
    windows = sorted((json.loads(p.read_text()) for p in log.iterdir()), key=lambda w: w["opened"])[windows_alone:]
    windows = [w for w in windows if w["device"] == "cuda:0"]
    assert len({w["pid"] for w in windows}) == 2  # both workers measured on GPU 0
    for before, after in itertools.pairwise(windows):
        assert after["opened"] >= before["closed"], f"windows overlap: {before} and {after}"

    # The same results: every test passed in both runs, its engine's outputs as far from the
    # reference; the medians are printed side by side (speed is bench/multi_gpu.py's to judge).
    by_id = {t["nodeid"]: t for t in alone["tests"]}
    for test in shared["tests"]:
        before = by_id[test["nodeid"]]
        assert test["accuracy"]["passed"] and before["accuracy"]["passed"]
        for now, then in zip(test["accuracy"]["outputs"], before["accuracy"]["outputs"], strict=True):
            assert now["stats"]["max_abs"] == pytest.approx(then["stats"]["max_abs"], rel=1e-3, abs=1e-6)
        print(f"{test['nodeid']}: p50 {before['perf']['latency']['median']:.4f} ms alone, "
              f"{test['perf']['latency']['median']:.4f} ms on {test['gpu']['worker']}")
