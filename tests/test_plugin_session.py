"""Session-wide behaviour: backend choice and its header, engines built once, the engine cache,
the trt_build factory and pytest-xdist."""

from __future__ import annotations

import pytest

from pytest_trt.backends.base import Availability
from pytest_trt.run.options import Settings
from pytest_trt.run.session import choose_backend

SAME_SPEC_TWICE = """
import pytest

spec = pytest.mark.trt_model("encoder.onnx", batch_size=2)

@spec
def test_first(trt_engine):
    print("PROVENANCE", trt_engine.provenance.how)

@spec
def test_second(trt_engine):
    print("PROVENANCE", trt_engine.provenance.how)
"""


def test_auto_falls_back_to_onnxruntime_and_says_why(trt_pytester, monkeypatch):
    monkeypatch.setattr("pytest_trt.run.session.availability_of", _unavailable)
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    short = trt_pytester.run()
    short.stdout.fnmatch_lines([
        "pytest-trt: backend onnxruntime (--trt-backend=auto)",
        "pytest-trt:   no GPU backend can run here (3 tried; -v says why)",
        "rootdir: *",
    ])
    result = trt_pytester.run("-v")
    result.stdout.fnmatch_lines([
        "pytest-trt: backend onnxruntime (--trt-backend=auto)",
        "pytest-trt:   TensorRT unavailable: no GPU in this test",
        "pytest-trt:   onnxruntime's TensorRT provider unavailable: no GPU in this test",
        "pytest-trt:   onnxruntime's CUDA provider unavailable: no GPU in this test",
    ])
    forced = trt_pytester.run("--trt-backend=onnxruntime")
    forced.stdout.fnmatch_lines(["pytest-trt: backend onnxruntime (--trt-backend=onnxruntime)"])


def _unavailable(info, settings, gpu=0):
    return Availability(True) if info.name == "onnxruntime" else Availability(False, "no GPU in this test")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--trt-require-gpu",),
            "pytest-trt: --trt-require-gpu, but TensorRT is unavailable: no GPU in this test; onnxruntime's "
            "TensorRT provider is unavailable: no GPU in this test; onnxruntime's CUDA provider is unavailable: "
            "no GPU in this test",
        ),
        (("--trt-backend=tensorrt",), "pytest-trt: --trt-backend=tensorrt, but TensorRT is unavailable: no GPU in this test"),
        (
            ("--trt-require-gpu", "--trt-backend=onnxruntime"),
            (
                "pytest-trt: --trt-require-gpu needs a GPU backend (onnxruntime-cuda, onnxruntime-tensorrt, "
                "onnxruntime-trt-rtx, tensorrt), but --trt-backend=onnxruntime was given"
            ),
        ),
    ],
)
def test_a_gpu_gate_fails_the_session_instead_of_falling_back(trt_pytester, monkeypatch, args, message):
    monkeypatch.setattr("pytest_trt.run.session.availability_of", _unavailable)
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    result = trt_pytester.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_ini_twin_of_require_gpu(trt_pytester, monkeypatch):
    monkeypatch.setattr("pytest_trt.run.session.availability_of", _unavailable)
    trt_pytester.pytester.makeini("[pytest]\ntrt_require_gpu = true\n")
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    assert trt_pytester.run().ret == pytest.ExitCode.USAGE_ERROR


def test_choose_backend_picks_tensorrt_when_available(trt_pytester, monkeypatch):
    monkeypatch.setattr("pytest_trt.run.session.availability_of", lambda info, settings, gpu=0: Availability(True))
    choice = choose_backend(Settings.from_config(trt_pytester.pytester.parseconfigure(*trt_pytester.args())))
    assert choice.name == "tensorrt"
    assert choice.header() == ["pytest-trt: backend tensorrt (--trt-backend=auto)"]


def test_an_engine_is_built_once_per_spec_per_session(trt_pytester):
    trt_pytester.pytester.makepyfile(test_memo=SAME_SPEC_TWICE)
    result = trt_pytester.run("-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*PROVENANCE built*", "*PROVENANCE memory*"])


def test_the_engine_cache_serves_the_next_session(trt_pytester):
    trt_pytester.pytester.makepyfile(test_memo=SAME_SPEC_TWICE)
    first = trt_pytester.run("-s", "--trt-engine-cache=engines")
    first.stdout.fnmatch_lines(["*PROVENANCE built*", "engine cache *engines: 0 hits, 1 miss (1 build*"])
    second = trt_pytester.run("-s", "--trt-engine-cache=engines")
    second.stdout.fnmatch_lines(["*PROVENANCE loaded*", "*PROVENANCE memory*", "engine cache *engines: 1 hit, 0 misses*"])
    rebuilt = trt_pytester.run("-s", "--trt-engine-cache=engines", "--trt-rebuild")
    rebuilt.stdout.fnmatch_lines(["*PROVENANCE built*"])


@pytest.mark.parametrize(
    ("args", "ini", "env", "message"),
    [
        (("--trt-engine-cache=afile",), "", None, "--trt-engine-cache: */afile is a file, not a folder"),
        ((), "trt_engine_cache_dir = afile", None, "ini option trt_engine_cache_dir: */afile is a file, not a folder"),
        ((), "", "afile", "environment variable PYTEST_TRT_ENGINE_CACHE: */afile is a file, not a folder"),
    ],
)
def test_an_engine_cache_that_is_a_file_is_a_usage_error(trt_pytester, monkeypatch, args, ini, env, message):
    (trt_pytester.path / "afile").write_text("not a folder")
    if env is not None:
        monkeypatch.setenv("PYTEST_TRT_ENGINE_CACHE", env)
    trt_pytester.pytester.makeini(f"[pytest]\n{ini}\n")
    trt_pytester.pytester.makepyfile(test_memo=SAME_SPEC_TWICE)
    result = trt_pytester.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-trt: {message}"])
    seen = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in seen and "CacheWarning" not in seen and "passed" not in seen
    assert (trt_pytester.path / "afile").read_text() == "not a folder"


def test_trt_build_makes_engines_from_explicit_specs(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_factory="""
        import numpy as np

        def test_two_batches(trt_build):
            one = trt_build("encoder.onnx", batch_size=1)
            four = trt_build("encoder.onnx", batch_size=4, seed=5)
            assert one.backend == "onnxruntime" and one.precision == "fp32"
            assert [s.name for s in one.inputs] == ["tokens"] and [s.name for s in one.outputs] == ["hidden"]
            tokens = four.sample_inputs()["tokens"]
            assert tokens.shape == (4, 16)
            np.testing.assert_allclose(
                four.infer({"tokens": tokens})["hidden"][:1], one.infer({"tokens": tokens[:1]})["hidden"], atol=1e-4
            )

        def test_bad_argument(trt_build):
            trt_build("mlp.onnx", batch_size=0)
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["trt_build: batch_size must be a positive int, got 0"])


def test_xdist_workers_send_their_records_to_the_summary(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_parallel="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=2)
        @pytest.mark.trt_accuracy()
        @pytest.mark.parametrize("n", range(4))
        def test_many(n):
            pass
        """
    )
    result = trt_pytester.run_subprocess("-n", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*= pytest-trt summary =*", "test_parallel.py", *[f"  test_many[[]{n}[]]*ok*" for n in range(4)]])
