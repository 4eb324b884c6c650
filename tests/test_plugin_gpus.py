"""--trt-gpus as users meet it, on a host whose GPUs are faked: an installed backend module
replaces the device count and the GPUs' facts (fingerprint.gpu_count, fingerprint.gpu_facts)
and registers a GPU backend (entry point) that runs onnxruntime on the CPU but times "on" the GPU
its session hands it."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from pytest_trt import fingerprint

GPU_BACKEND = '''
import json
import os
import time

from pytest_trt import backends, fingerprint
from pytest_trt.backends.base import IterationTimes
from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend
from pytest_trt.errors import CudaError

COUNT = int(os.environ["FAKE_GPU_COUNT"])
FAILING = os.environ.get("FAKE_GPU_FAILING", "")
LOG = os.environ.get("MEASURE_WINDOW_LOG", "")


def facts(index=0):
    if index >= COUNT:
        return None
    return {"gpu_name": f"Fake GPU {index}", "compute_capability": "9.0", "sm_count": 132,
            "total_memory_gb": 80.0, "driver_version": "13.0", "cuda_runtime_version": "13.0",
            "uuid": f"{index + 1:032x}"}


fingerprint.gpu_count = lambda: COUNT
fingerprint.gpu_facts = facts


class Window:
    clock = "host"

    def __init__(self, gpu):
        self.mode, self.warnings, self.gpu = {"clock": "host"}, [], gpu
        self.opened = time.monotonic()

    def run(self, iterations):
        time.sleep(0.02 * iterations)
        return IterationTimes(latency=[20.0] * iterations, span_ms=20.0 * iterations)

    def close(self):
        if LOG:
            name = f"{os.getpid()}-{len(os.listdir(LOG))}-{self.opened}.json"
            with open(os.path.join(LOG, name), "w") as f:
                json.dump({"gpu": self.gpu, "opened": self.opened, "closed": time.monotonic()}, f)


class FakeGpuBackend(OnnxRuntimeBackend):
    name = "fake-gpu"

    def __init__(self, gpu):
        self.gpu = gpu

    def load(self, artifact, model, build):
        runner = super().load(artifact, model, build)
        gpu = self.gpu
        runner.backend, runner.device = "fake-gpu", f"cuda:{gpu}"
        runner.timed_session = lambda feed, settings: Window(gpu)
        if str(gpu) == FAILING:
            def lost(feed):
                raise CudaError("cudaMemcpyAsync", "cudaErrorECCUncorrectable", "uncorrectable ECC error")
            runner.infer = lost
        return runner


INFO = backends.BackendInfo("fake-gpu", lambda context: FakeGpuBackend(context.gpu), device=backends.DeviceKind.GPU)
'''
ENTRY_POINTS = "[pytest_trt.backends]\nfake-gpu = fake_gpu_backend:INFO\n"

TESTS = '''
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=2)
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
@pytest.mark.trt_perf(max_latency_ms=1e6)
@pytest.mark.parametrize("i", range(8))
def test_model(trt_engine, i):
    pass
'''


@pytest.fixture
def fake_gpus(trt_pytester: Any, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("xdist")
    monkeypatch.setenv("FAKE_GPU_COUNT", "2")
    # A temp dir of this test's own: its measurement locks are not shared with other runs on the host.
    monkeypatch.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmp")))
    path = trt_pytester.path
    (path / "fake_gpu_backend.py").write_text(GPU_BACKEND)
    dist = path / "fake_gpu_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-gpu-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    trt_pytester.pytester.makeconftest("import fake_gpu_backend  # noqa: F401  (the GPUs are faked from the start)\n")
    trt_pytester.pytester.makepyfile(test_zoo=TESTS)
    return trt_pytester


def report(trt_pytester: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((trt_pytester.path / "report.json").read_text())
    return data


def test_four_workers_on_two_gpus_take_them_round_robin(
    fake_gpus: Any, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path_factory.mktemp("windows")
    monkeypatch.setenv("MEASURE_WINDOW_LOG", str(log))
    result = fake_gpus.run_subprocess(
        "-n", "4", "--trt-gpus=all", "--trt-backend=fake-gpu", "--trt-baseline=off", "--trt-report-json=report.json"
    )
    result.assert_outcomes(passed=8)
    data = report(fake_gpus)
    placed = {(t["gpu"]["worker"], t["gpu"]["index"], t["gpu"]["name"], t["gpu"]["uuid"]) for t in data["tests"]}
    assert placed == {
        ("gw0", 0, "Fake GPU 0", f"{1:032x}"), ("gw2", 0, "Fake GPU 0", f"{1:032x}"),
        ("gw1", 1, "Fake GPU 1", f"{2:032x}"), ("gw3", 1, "Fake GPU 1", f"{2:032x}"),
    }
    workers = [(w["worker"], w["index"]) for w in data["meta"]["gpus"]]
    assert workers == [("gw0", 0), ("gw2", 0), ("gw1", 1), ("gw3", 1)]
    assert sum(w["tests"] for w in data["meta"]["gpus"]) == 8
    assert all(w["lock_wait_s"] >= 0 for w in data["meta"]["gpus"])
    result.stdout.fnmatch_lines([
        "GPU 0 (Fake GPU 0): 2 workers (* tests); waited for its measurement lock: gw0 * s, gw2 * s",
        "GPU 1 (Fake GPU 1): 2 workers (* tests); waited for its measurement lock: gw1 * s, gw3 * s",
    ])
    # Two workers on one GPU take turns: their timed windows never overlap.
    windows = [json.loads(p.read_text()) for p in log.iterdir()]
    assert len(windows) == 8
    for index in (0, 1):
        on_gpu = sorted((w for w in windows if w["gpu"] == index), key=lambda w: w["opened"])
        assert len(on_gpu) == 4
        for before, after in itertools.pairwise(on_gpu):
            assert after["opened"] >= before["closed"], f"windows on GPU {index} overlap: {before} and {after}"


def test_a_gpu_that_fails_fails_its_workers_tests_naming_the_cuda_error(
    fake_gpus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GPU_FAILING", "1")
    result = fake_gpus.run_subprocess(
        "-n", "2", "--trt-gpus=all", "--trt-backend=fake-gpu", "--trt-baseline=off", "--trt-report-json=report.json"
    )
    tests = report(fake_gpus)["tests"]
    assert len(tests) == 8  # the run went on to the end
    on_failed = [t for t in tests if t["gpu"]["index"] == 1]
    on_good = [t for t in tests if t["gpu"]["index"] == 0]
    assert on_failed and on_good
    assert all(t["status"] == "passed" for t in on_good)
    assert all(t["status"] == "error" for t in on_failed)
    assert all("cudaMemcpyAsync failed: cudaErrorECCUncorrectable" in t["failures"][0] for t in on_failed)
    result.assert_outcomes(passed=len(on_good), failed=len(on_failed))
    result.stdout.fnmatch_lines(["*cudaMemcpyAsync failed: cudaErrorECCUncorrectable (uncorrectable ECC error)*"])


def test_without_xdist_the_first_gpu_of_the_list_runs_every_test(fake_gpus: Any) -> None:
    result = fake_gpus.run_subprocess(
        "--trt-gpus=1,0", "--trt-backend=fake-gpu", "--trt-baseline=off", "--trt-report-json=report.json"
    )
    result.assert_outcomes(passed=8)
    data = report(fake_gpus)
    assert {(t["gpu"]["index"], t["gpu"]["worker"]) for t in data["tests"]} == {(1, "")}
    assert data["meta"]["machine"]["gpu"]["gpu_name"] == "Fake GPU 1"
    assert "waited for its measurement lock" not in result.stdout.str()  # one process, one GPU: nothing to say


def test_a_cpu_backend_names_no_gpu(fake_gpus: Any) -> None:
    result = fake_gpus.run_subprocess(
        "--trt-gpus=all", "--trt-backend=onnxruntime", "--trt-baseline=off", "--trt-report-json=report.json", "-k", "0"
    )
    result.assert_outcomes(passed=1)
    assert [t["gpu"] for t in report(fake_gpus)["tests"]] == [None]


# -- bad values stop the run, naming the option and the value ----------------------------------


PASSING = "def test_ok():\n    pass\n"


@pytest.mark.parametrize(("value", "words"), [
    ("x", "invalid GPU selection 'x'"),
    ("0", "invalid GPU selection '0'"),
    ("0,0", "'0,0' names GPU 0 more than once"),
    ("1,-1", "invalid GPU index list '1,-1'"),
])
def test_a_malformed_value_is_a_usage_error(trt_pytester: Any, value: str, words: str) -> None:
    trt_pytester.pytester.makepyfile(test_nothing=PASSING)
    result = trt_pytester.run(f"--trt-gpus={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*argument --trt-gpus: {words}*"])


def test_a_malformed_ini_value_is_a_usage_error_naming_the_key(trt_pytester: Any) -> None:
    trt_pytester.pytester.makeini("[pytest]\ntrt_gpus = 0,x\n")
    trt_pytester.pytester.makepyfile(test_nothing=PASSING)
    result = trt_pytester.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-trt: ini option trt_gpus: invalid GPU index list '0,x'*"])


@pytest.mark.parametrize(("value", "count", "words"), [
    ("0,5", 2, "'0,5' names GPU 5, but this host has 2 GPUs (indices 0-1)"),
    ("3", 2, "'3' asks for the first 3 GPUs, but this host has 2 GPUs (indices 0-1)"),
    ("all", 0, "'all' names GPUs, but no CUDA device is visible here"),
])
def test_gpus_the_host_does_not_have_are_a_usage_error_naming_them(
    trt_pytester: Any, monkeypatch: pytest.MonkeyPatch, value: str, count: int, words: str
) -> None:
    monkeypatch.setattr(fingerprint, "gpu_count", lambda: count)
    trt_pytester.pytester.makepyfile(test_nothing=PASSING)
    result = trt_pytester.run(f"--trt-gpus={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-trt: --trt-gpus: {words}"])


def test_the_ini_value_is_checked_against_the_host_as_well(trt_pytester: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint, "gpu_count", lambda: 1)
    trt_pytester.pytester.makeini("[pytest]\ntrt_gpus = 0,1\n")
    trt_pytester.pytester.makepyfile(test_nothing=PASSING)
    result = trt_pytester.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-trt: ini option trt_gpus: '0,1' names GPU 1, but this host has 1 GPU (indices 0-0)"])


def test_without_the_option_the_device_count_is_never_asked(trt_pytester: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def never() -> int:
        raise AssertionError("the device count was asked for")

    monkeypatch.setattr(fingerprint, "gpu_count", never)
    trt_pytester.pytester.makepyfile(test_nothing=PASSING)
    trt_pytester.run().assert_outcomes(passed=1)


def test_baselines_are_recorded_under_the_class_of_the_gpu_that_measured_them(fake_gpus: Any) -> None:
    # The two fake GPUs are two models (their names differ): two hardware classes on one host.
    result = fake_gpus.run_subprocess(
        "-n", "2", "--trt-gpus=all", "--trt-backend=fake-gpu", "--trt-update-baselines", "--trt-report-json=report.json"
    )
    result.assert_outcomes(passed=8)
    ran_on = {t["nodeid"]: t["gpu"]["index"] for t in report(fake_gpus)["tests"]}
    assert set(ran_on.values()) == {0, 1}
    recorded: dict[str, set[str]] = {}
    for path in (fake_gpus.path / "baselines").glob("*/test_zoo.json"):
        recorded[path.parent.name] = set(json.loads(path.read_text())["tests"])
    assert sorted(recorded) == ["fake-gpu-0-80gb-cc9.0-132sm-drv13.0", "fake-gpu-1-80gb-cc9.0-132sm-drv13.0"]
    for index in (0, 1):
        assert recorded[f"fake-gpu-{index}-80gb-cc9.0-132sm-drv13.0"] == {n for n, i in ran_on.items() if i == index}
