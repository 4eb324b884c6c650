"""No gate passes unseen: a GPU budget (``trt_perf`` without ``backend=``) is enforced on whichever
GPU backend runs and said to be unenforced on a CPU one; misspelt output names and ini keys are
errors naming the closest valid name."""

from __future__ import annotations

import textwrap

import pytest

GPU_BUDGET = """
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=2)
@pytest.mark.trt_perf(max_latency_ms=0.000001)
def test_gpu_budget(trt_engine):
    pass
"""

# onnxruntime under another name, registered as a GPU backend: the budget's rule reads the
# registry's device kind, so this stands for TensorRT or onnxruntime's GPU providers.
FAKE_GPU = '''
from pytest_trt.backends import BackendInfo, DeviceKind
from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend


class FakeGpuBackend(OnnxRuntimeBackend):
    name = "fake-gpu"

    def load(self, artifact, model, build):
        runner = super().load(artifact, model, build)
        runner.backend = self.name
        return runner


def _factory(context):
    return FakeGpuBackend()


INFO = BackendInfo("fake-gpu", _factory, device=DeviceKind.GPU)
'''


@pytest.fixture
def fake_gpu(trt_pytester):
    """The backend registered through the entry point group, as an installed package would."""
    path = trt_pytester.path
    (path / "fake_gpu_backend.py").write_text(FAKE_GPU)
    dist = path / "fake_gpu_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-gpu-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pytest_trt.backends]\nfake-gpu = fake_gpu_backend:INFO\n")
    return trt_pytester


def test_a_gpu_budget_on_a_cpu_backend_is_said_to_be_unenforced(trt_pytester):
    trt_pytester.pytester.makepyfile(test_gpu=GPU_BUDGET)
    result = trt_pytester.run("--trt-backend=onnxruntime")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "  test_gpu_budget*onnxruntime*-*ok",
        "*gpu*p50 <= 0.000001 ms*not enforced",
        "note: GPU budgets (trt_perf without backend=) are reported, not enforced, while onnxruntime runs the "
        "models on the CPU; a GPU backend enforces them (--trt-require-gpu fails a run without one)",
        "pytest-trt: onnxruntime: 1 gated test, 0 failed, 0 regressed, 1 GPU budget not enforced (no GPU backend runs)",
    ])


def test_a_gpu_budget_is_enforced_on_whichever_gpu_backend_runs(fake_gpu):
    fake_gpu.pytester.makepyfile(test_gpu=GPU_BUDGET)
    result = fake_gpu.run_subprocess("--trt-backend=fake-gpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*perf (fake-gpu): p50 latency * ms > budget 0.000001 ms*",
        "  test_gpu_budget*fake-gpu*p50 <= 0.000001 ms*FAIL",
        "pytest-trt: fake-gpu: 1 gated test, 1 failed, 0 regressed",
    ])
    assert "not enforced" not in result.stdout.str()


def test_a_budget_naming_a_backend_stays_that_backends(fake_gpu):
    fake_gpu.pytester.makepyfile(test_named=GPU_BUDGET.replace("0.000001)", '0.000001, backend="tensorrt")'))
    result = fake_gpu.run_subprocess("--trt-backend=fake-gpu")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pytest-trt: fake-gpu: 1 gated test, 0 failed, 0 regressed, 1 tensorrt budget not enforced"])


def test_two_gpu_budgets_on_one_test_are_a_collection_error(trt_pytester):
    trt_pytester.pytester.makepyfile(test_two=GPU_BUDGET.replace(
        "@pytest.mark.trt_perf(max_latency_ms=0.000001)",
        "@pytest.mark.trt_perf(max_latency_ms=1)\n@pytest.mark.trt_perf(max_latency_ms=2)",
    ))
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_gpu_budget: trt_perf: two marks without backend= (GPU budgets); keep one per backend"])


@pytest.mark.parametrize(("written", "closest"), [
    ("trt_pref = report", "trt_pref (did you mean trt_perf?)"),
    ("trt_regresion_threshold = 0.1", "trt_regresion_threshold (did you mean trt_regression_threshold?)"),
    ("trt_baselines = compare", "trt_baselines (did you mean trt_baseline?)"),
])
def test_an_unknown_trt_ini_key_is_a_usage_error_naming_the_closest(trt_pytester, written, closest):
    trt_pytester.pytester.makeini(f"[pytest]\n{written}\n")
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    result = trt_pytester.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-trt: unknown ini option in *tox.ini: {closest}"])


def test_ini_keys_of_other_plugins_are_left_to_pytest(trt_pytester):
    trt_pytester.pytester.makeini("[pytest]\ntrt_perf = report\nxfail_strict = true\n")
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    trt_pytester.run().assert_outcomes(passed=1)


def test_an_unknown_output_name_is_a_collection_error_naming_the_closest(trt_pytester):
    trt_pytester.pytester.makepyfile(test_outputs="""
        import pytest

        @pytest.mark.trt_model("cnn.onnx", batch_size=1)
        @pytest.mark.trt_accuracy(outputs={"logit": {"atol": 1e-3}})
        def test_cnn(trt_engine):
            pass
    """)
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*test_outputs.py::test_cnn: trt_accuracy: outputs[[]'logit']: the model has no output 'logit' "
        "(did you mean 'logits'? its outputs: logits)"
    ])


@pytest.mark.needs_torch
def test_an_unknown_output_of_a_torch_model_is_an_error_of_the_test(trt_pytester):
    trt_pytester.pytester.makepyfile(test_torch_outputs=textwrap.dedent("""
        import pytest
        import torch

        def make_net():
            torch.manual_seed(0)
            return torch.nn.Linear(4, 2)

        @pytest.mark.trt_model(torch=make_net, example_inputs={"input": (2, 4)})
        @pytest.mark.trt_accuracy(outputs={"outptu": {"atol": 1e-3}})
        def test_net(trt_engine):
            pass
    """))
    result = trt_pytester.run_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*test_torch_outputs.py::test_net: trt_accuracy: outputs[[]'outptu']: the model has no output 'outptu' "
        "(did you mean 'output'? its outputs: output)"
    ])
