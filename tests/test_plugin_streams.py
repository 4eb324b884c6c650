"""``streams=`` on ``trt_perf`` as users meet it on onnxruntime's CPU backend: N sessions timed at
once from N threads, aggregate throughput, per-request latency, every stream's outputs checked."""

from __future__ import annotations

import json

import pytest

from pytest_trt.judge.records import TestRecord


def test_two_streams_report_aggregate_throughput_with_every_stream_checked(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_streams="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=4, intra_op_threads=1)
        @pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-4)
        @pytest.mark.trt_perf(streams=(1, 2), backend="onnxruntime", min_throughput=1)
        def test_two(trt_engine):
            pass
        """
    )
    path = trt_pytester.path / "trt.json"
    result = trt_pytester.run("--trt-backend=onnxruntime", f"--trt-report-json={path}")
    result.assert_outcomes(passed=1)
    (entry,) = json.loads(path.read_text())["tests"]
    assert [p["streams"] for p in entry["streams"]] == [1, 2]
    two = entry["streams"][1]
    assert len(two["per_stream"]) == 2 and all(n >= 5 for n in two["per_stream"])
    assert two["iterations"] == sum(two["per_stream"]) == two["latency"]["n"]
    # Aggregate throughput: every stream's queries over the wall time they ran together.
    assert two["throughput"] == pytest.approx(4 * two["iterations"] / two["duration_s"])
    assert two["accuracy_passed"] is True and two["budgets"][0]["description"] == "2 streams: >= 1 qps"
    assert TestRecord.from_dict(entry).streams[1].per_stream == tuple(two["per_stream"])
    result.stdout.re_match_lines([
        r"    1 stream +onnxruntime +ok +[\d.]+ +[\d.]+ +[\d,]+ +>= 1 qps +ok$",
        r"    2 streams +onnxruntime +ok +[\d.]+ +[\d.]+ +[\d,]+ +>= 1 qps +ok$",
    ])


def test_every_streams_outputs_are_checked_and_a_failure_names_the_stream(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_streams="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=4, precision="fp16")
        @pytest.mark.trt_accuracy(rtol=0, atol=0)
        @pytest.mark.trt_perf(streams=2, backend="onnxruntime")
        def test_two(trt_engine):
            pass
        """
    )
    result = trt_pytester.run("--trt-backend=onnxruntime")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*accuracy of stream 0 of 2: *", "*accuracy of stream 1 of 2: *"])


def test_a_missed_aggregate_budget_fails_naming_the_streams(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_streams="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=4)
        @pytest.mark.trt_perf(streams=2, backend="onnxruntime", min_throughput=1e15)
        def test_two(trt_engine):
            pass
        """
    )
    result = trt_pytester.run("--trt-backend=onnxruntime")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*perf (onnxruntime) with 2 streams: aggregate throughput * qps < budget 1e+15 qps*"])


@pytest.mark.parametrize(
    ("perf", "message"),
    [
        ("streams=0", "trt_perf: streams must be a positive int or a tuple of distinct positive ints, got 0"),
        ("streams=(2, 2)", "trt_perf: streams must be a positive int or a tuple of distinct positive ints, got (2, 2)"),
        ("streams='4'", "trt_perf: streams must be a positive int or a tuple of distinct positive ints, got '4'"),
        ("streams=2, batch_sizes=(1, 8)", "trt_perf: give batch_sizes= or streams=, not both (sweep one at a time)"),
    ],
)
def test_bad_streams_are_collection_errors_naming_test_and_argument(trt_pytester, perf, message):
    trt_pytester.pytester.makepyfile(
        test_bad=f"import pytest\n\n@pytest.mark.trt_model('mlp.onnx')\n@pytest.mark.trt_perf({perf})\ndef test_it():\n    pass\n"
    )
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*test_bad.py::test_it: {message}"])
