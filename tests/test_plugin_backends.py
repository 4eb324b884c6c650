"""A backend added by registration, as a plugin author would add one: through the
``pytest_trt.backends`` entry point group of an installed distribution."""

from __future__ import annotations

import textwrap

import pytest

BACKEND_MODULE = '''
"""A third-party backend: onnxruntime under another name, with a build option of its own."""

from pytest_trt.backends import BackendInfo, DeviceKind
from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend
from pytest_trt.errors import CudaError


class EchoBackend(OnnxRuntimeBackend):
    name = "echo"

    def runtime_version(self):
        return "echo 0.1"

    def load(self, artifact, model, build):
        runner = super().load(artifact, model, build)
        runner.backend = self.name
        if build.option_map.get("echo_cuda_fault"):
            def infer(feed):
                raise CudaError("cudaMemcpyAsync", "cudaErrorIllegalAddress")
            runner.infer = infer
        return runner


def _factory(context):
    return EchoBackend()


INFO = BackendInfo(
    "echo", _factory, title="Echo", build_options={"echo_cuda_fault": bool}, device=DeviceKind.CPU
)
'''

ENTRY_POINTS = """
[pytest_trt.backends]
echo = echo_backend:INFO
"""

TESTS = """
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=2)
@pytest.mark.trt_accuracy()
@pytest.mark.trt_perf(max_latency_ms=60000, backend="echo")
@pytest.mark.trt_perf(max_latency_ms=60000, backend="onnxruntime")
def test_gated(trt_engine):
    assert trt_engine.backend == "echo"

@pytest.mark.trt_model("mlp.onnx", batch_size=2, echo_cuda_fault=True)
@pytest.mark.trt_accuracy()
def test_cuda_fault(trt_engine):
    pass
"""


@pytest.fixture
def echo_installed(trt_pytester):
    """The backend's module and its distribution's metadata, importable from the test folder."""
    path = trt_pytester.path
    (path / "echo_backend.py").write_text(textwrap.dedent(BACKEND_MODULE))
    dist = path / "echo_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return trt_pytester


def test_a_registered_backend_is_chosen_gated_and_reported(echo_installed):
    echo_installed.pytester.makepyfile(test_echo=TESTS)
    result = echo_installed.run_subprocess("--trt-backend=echo", "-k", "gated")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "pytest-trt: backend echo (--trt-backend=echo)",
        "*= pytest-trt summary =*",
        "  test_gated*echo*ok*p50 <= 60000.00 ms*ok",
        "*onnxruntime*p50 <= 60000.00 ms*not enforced",
    ])


def test_a_registered_backend_declares_its_own_build_options(echo_installed):
    echo_installed.pytester.makepyfile(test_typo="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", echo_cuda_falt=True)
        @pytest.mark.trt_accuracy()
        def test_typo():
            pass
    """)
    result = echo_installed.run_subprocess("--trt-backend=echo")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*trt_model: unknown argument 'echo_cuda_falt' (build options: *echo_cuda_fault*"])


def test_a_cuda_failure_is_an_error_naming_the_call_not_a_traceback(echo_installed):
    echo_installed.pytester.makepyfile(test_echo=TESTS)
    result = echo_installed.run_subprocess("--trt-backend=echo", "-k", "cuda_fault")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pytest-trt: cudaMemcpyAsync failed: cudaErrorIllegalAddress"])
    assert "Traceback" not in result.stdout.str() and "pytest_trt/" not in result.stdout.str()


def test_an_unknown_backend_name_lists_the_registered_ones(echo_installed):
    echo_installed.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    result = echo_installed.run_subprocess("--trt-backend=echoo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-backend*'echoo'*auto, tensorrt, onnxruntime-tensorrt, onnxruntime-cuda, onnxruntime-trt-rtx, onnxruntime, echo*"])
