"""Accuracy and perf gates as users meet them: real test files run through pytester."""

from __future__ import annotations

import re

import numpy as np


def test_the_issue_example_passes_and_prints_a_summary_row(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", shapes={"x": (32, 256)})
        @pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
        @pytest.mark.trt_perf(max_latency_ms=1e6, percentile=99, backend="onnxruntime")
        def test_mlp(trt_engine):
            out = trt_engine.infer(trt_engine.sample_inputs())
            assert out["y"].shape == (32, 10)
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*= pytest-trt summary =*",
        "test*backend*acc*p50 ms*p99 ms*qps*budget*status",
        "test_user.py",
        "  test_mlp*onnxruntime*ok*p99 <= 1000000* ms*ok",
    ])


def test_accuracy_failure_says_what_by_how_much_and_where(trt_pytester):
    # An honest mismatch: the backend runs an fp16 conversion, the reference the fp32 original.
    trt_pytester.pytester.makepyfile(
        test_fp16="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", shapes={"x": (4, 256)}, precision="fp16")
        @pytest.mark.trt_accuracy(rtol=0, atol=0)
        def test_exact(trt_engine):
            pass

        @pytest.mark.trt_model("mlp.onnx", shapes={"x": (4, 256)}, precision="fp16")
        @pytest.mark.trt_accuracy(rtol=0, atol=0, outputs={"y": {"atol": 0.05}})
        def test_per_output_override(trt_engine):
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*_ test_exact _*",
        "pytest-trt gates failed (backend onnxruntime):",
        "accuracy: output 'y': 40 of 40 elements outside rtol=0 atol=0; worst |d|=* at [[]*, *[]] (out=*, ref=*)",
        "*(numpy rule |out-ref| <= atol + rtol*|ref|)",
    ])
    assert "test_per_output_override" not in "\n".join(line for line in result.outlines if line.startswith("FAILED"))


def test_a_failing_body_is_reported_as_is_and_skips_the_gates(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_body="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=2)
        @pytest.mark.trt_perf(max_latency_ms=1e-6, backend="onnxruntime")
        def test_body(trt_engine):
            assert trt_engine.infer(trt_engine.sample_inputs())["y"].shape == (3, 10)
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    assert "pytest-trt gates failed" not in result.stdout.str()
    assert not any(line.split()[:2] == ["test", "backend"] for line in result.outlines if line.strip())


def test_gates_run_without_the_fixture_in_the_signature(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_nofixture="""
        import pytest

        @pytest.mark.trt_model("cnn.onnx", batch_size=2)
        @pytest.mark.trt_perf(max_latency_ms=1e-6, backend="onnxruntime")
        def test_cnn():
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["perf (onnxruntime): p50 latency * ms > budget 0.000001 ms (n=*, cv *%)"])


def test_latency_and_throughput_budgets_fail_with_numbers(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_budgets="""
        import pytest

        pytestmark = pytest.mark.trt_model("mlp.onnx", batch_size=8)

        @pytest.mark.trt_perf(max_latency_ms=1e6, percentile=99, min_throughput=1e-3, backend="onnxruntime")
        def test_generous():
            pass

        @pytest.mark.trt_perf(max_latency_ms=1e-6, percentile=99, min_throughput=1e12, backend="onnxruntime")
        def test_absurd():
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "pytest-trt gates failed (backend onnxruntime):",
        "perf (onnxruntime): p99 latency * ms > budget 0.000001 ms (n=*, cv *%)",
        "perf (onnxruntime): throughput * qps < budget 1000000000000 qps (n=*)",
    ])
    result.stdout.fnmatch_lines(["  test_absurd*onnxruntime*FAIL", "  test_generous*onnxruntime*ok"])


def test_budgets_for_another_backend_are_measured_and_reported_not_enforced(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_gpu="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=8)
        @pytest.mark.trt_perf(max_latency_ms=1e-6, percentile=99, backend="tensorrt")
        @pytest.mark.trt_perf(max_latency_ms=1e6, backend="onnxruntime")
        def test_gpu_budget():
            pass
        """
    )
    result = trt_pytester.run("--trt-backend=onnxruntime")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "  test_gpu_budget*onnxruntime*p50 <= 1000000* ms*ok",
        "*tensorrt*p99 <= 0.000001 ms*not enforced",
        "note: tensorrt budgets are reported, not enforced, while onnxruntime runs the models",
    ])


def test_perf_report_mode_measures_but_never_fails(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_user_report="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=8)
        @pytest.mark.trt_perf(max_latency_ms=1e-6, backend="onnxruntime")
        def test_slow():
            pass
        """
    )
    result = trt_pytester.run("--trt-perf=report")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["  test_slow*onnxruntime*-*p50 <= 0.000001 ms*over (report only)"])
    off = trt_pytester.run("--trt-perf=off")
    off.assert_outcomes(passed=1)
    off.stdout.fnmatch_lines(["  test_slow*onnxruntime*p50 <= 0.000001 ms*not measured"])


def test_ini_options_set_perf_mode_and_measurement(trt_pytester):
    trt_pytester.pytester.makeini(
        """
        [pytest]
        trt_perf = enforce
        trt_warmup_ms = 0
        trt_min_iterations = 7
        trt_min_duration_ms = 0
        """
    )
    trt_pytester.pytester.makepyfile(
        test_ini="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=2)
        @pytest.mark.trt_perf(max_latency_ms=1e-6, backend="onnxruntime")
        def test_ini_defaults():
            pass

        @pytest.mark.trt_model("mlp.onnx", batch_size=2)
        @pytest.mark.trt_perf(max_latency_ms=1e-6, backend="onnxruntime", min_iterations=11)
        def test_mark_overrides():
            pass
        """
    )
    result = trt_pytester.run(fast=False)
    result.assert_outcomes(failed=2)
    # Only the failure reports: with CI set, pytest also prints whole messages in the short summary.
    failures = result.stdout.str().split("short test summary info")[0]
    counts = [int(n) for n in re.findall(r"\(n=(\d+),", failures)]
    assert len(counts) == 2 and counts[0] >= 7 and counts[1] >= 11
    (trt_pytester.path / "tox.ini").unlink(missing_ok=True)
    trt_pytester.pytester.makeini("[pytest]\ntrt_perf = report\n")
    report = trt_pytester.run()
    report.assert_outcomes(passed=2)


def test_seed_option_and_mark_seed_choose_the_inputs(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_seed="""
        import numpy as np
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=2)
        def test_dump(trt_engine, request):
            x = trt_engine.sample_inputs()["x"]
            np.save(request.config.rootpath / "x.npy", x)
        """
    )
    trt_pytester.run("--trt-seed=1").assert_outcomes(passed=1)
    first = np.load(trt_pytester.path / "x.npy")
    trt_pytester.run("--trt-seed=1").assert_outcomes(passed=1)
    assert np.array_equal(np.load(trt_pytester.path / "x.npy"), first)
    trt_pytester.run("--trt-seed=2").assert_outcomes(passed=1)
    assert not np.array_equal(np.load(trt_pytester.path / "x.npy"), first)


def test_npz_inputs_feed_the_gates_and_failures_can_be_saved(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_npz="""
        import numpy as np
        import pytest

        @pytest.mark.trt_model("mlp.onnx", inputs="mlp_inputs.npz", precision="fp16")
        @pytest.mark.trt_accuracy(rtol=0, atol=0)
        def test_recorded(trt_engine):
            with np.load("mlp_inputs.npz") as data:
                assert np.array_equal(trt_engine.sample_inputs()["x"], data["x"])
        """
    )
    result = trt_pytester.run("--trt-save-failures=failures")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*inputs, outputs and reference saved to *failures*"])
    (saved,) = (trt_pytester.path / "failures").glob("*.npz")
    with np.load(saved) as data:
        assert {"input:x", "output:y", "reference:y"} <= set(data.files)
        with np.load(trt_pytester.path / "mlp_inputs.npz") as recorded:
            assert np.array_equal(data["input:x"], recorded["x"])
