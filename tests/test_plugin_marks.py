"""Marks are registered and validated: every bad input is an error naming the test and the
argument or file, at collection where the marks alone decide it, at setup where the model does."""

from __future__ import annotations

import pytest


def test_marks_are_registered_for_strict_markers(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_strict="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=2)
        @pytest.mark.trt_accuracy()
        @pytest.mark.trt_perf(max_latency_ms=1e6, backend="onnxruntime")
        def test_all_marks(trt_engine):
            pass
        """
    )
    trt_pytester.run("--strict-markers").assert_outcomes(passed=1)
    markers = trt_pytester.run("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.trt_model(path=None, *, torch=None, example_inputs=None, dynamic=None, reference='onnxruntime', precision='fp32'*", "@pytest.mark.trt_accuracy(*", "@pytest.mark.trt_perf(*"])


@pytest.mark.parametrize(
    ("marks", "message"),
    [
        ('@pytest.mark.trt_model("mlp.onnx", precison="fp16")', "trt_model: unknown argument 'precison'*"),
        ('@pytest.mark.trt_model("mlp.onnx", precision="fp64")', "trt_model: precision must be one of *; got 'fp64'"),
        ('@pytest.mark.trt_model("mlp.onnx", shapes={"x": (0, 256)})', "trt_model: shapes[[]'x'[]] must be a tuple of positive ints*"),
        ('@pytest.mark.trt_model("mlp.onnx", "extra")', "trt_model: takes at most 1 positional argument(s) (path), got 2"),
        ("@pytest.mark.trt_model()", "trt_model: missing the model: a path (first argument) or torch= (a factory returning a torch.nn.Module)"),
        ('@pytest.mark.trt_model("nothere.onnx")', "trt_model: path: file 'nothere.onnx' not found (looked in: *nothere.onnx)"),
        ('@pytest.mark.trt_model("mlp.onnx", inputs="nothere.npz")', "trt_model: inputs: file 'nothere.npz' not found*"),
        ('@pytest.mark.trt_model("mlp.onnx")\n@pytest.mark.trt_accuracy(rtoll=1)', "trt_accuracy: unknown argument 'rtoll'*"),
        ('@pytest.mark.trt_model("mlp.onnx")\n@pytest.mark.trt_accuracy(1e-3, rtol=1e-2)', "trt_accuracy: argument 'rtol' given both by position and by keyword"),
        ('@pytest.mark.trt_model("mlp.onnx")\n@pytest.mark.trt_perf(percentil=99)', "trt_perf: unknown argument 'percentil'*"),
        ('@pytest.mark.trt_model("mlp.onnx")\n@pytest.mark.trt_perf(backend="cuda")', "trt_perf: backend must be one of tensorrt, onnxruntime-tensorrt, onnxruntime-cuda, onnxruntime-trt-rtx, onnxruntime; got 'cuda'"),
        (
            '@pytest.mark.trt_model("mlp.onnx")\n@pytest.mark.trt_perf(max_latency_ms=1)\n@pytest.mark.trt_perf(max_latency_ms=2)',
            "trt_perf: two marks without backend= (GPU budgets); keep one per backend",
        ),
        (
            '@pytest.mark.trt_model("mlp.onnx", batch_size=2)\n@pytest.mark.trt_model("cnn.onnx", batch_size=1)',
            "trt_model: 2 marks on the test function ('mlp.onnx' and 'cnn.onnx'); keep one",
        ),
        (
            '@pytest.mark.trt_model("mlp.onnx", batch_size=2)\n@pytest.mark.trt_accuracy(rtol=1e-3)\n'
            "@pytest.mark.trt_accuracy(atol=0.1)",
            "trt_accuracy: 2 marks on the test function (trt_accuracy(rtol=0.001) and trt_accuracy(atol=0.1)); keep one",
        ),
        ("@pytest.mark.trt_accuracy()", "trt_accuracy needs a trt_model mark naming the model to gate"),
        ("@pytest.mark.trt_perf(max_latency_ms=1)", "trt_perf needs a trt_model mark naming the model to gate"),
    ],
)
def test_bad_marks_are_collection_errors_naming_test_and_argument(trt_pytester, marks, message):
    trt_pytester.pytester.makepyfile(test_bad=f"import pytest\n\n{marks}\ndef test_it():\n    pass\n")
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting test_bad.py*", f"test_bad.py::test_it: {message}"])


def test_a_module_budget_is_overridden_by_the_test_own_budget(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_override="""
        import pytest

        pytestmark = [
            pytest.mark.trt_model("mlp.onnx", batch_size=2),
            pytest.mark.trt_perf(max_latency_ms=1e-6, backend="onnxruntime"),
        ]

        @pytest.mark.trt_perf(max_latency_ms=1e6, backend="onnxruntime")
        def test_own_budget():
            pass

        def test_module_budget():
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_override.py::test_module_budget*"])


def test_a_function_mark_overrides_its_class_and_module_marks(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_layers="""
        import pytest

        pytestmark = [pytest.mark.trt_model("cnn.onnx", batch_size=1), pytest.mark.trt_accuracy(rtol=1)]

        @pytest.mark.trt_model("encoder.onnx", batch_size=1)
        @pytest.mark.trt_accuracy(rtol=0.5)
        class TestLayers:
            @pytest.mark.trt_model("mlp.onnx", batch_size=1)
            @pytest.mark.trt_accuracy(rtol=1e-3)
            def test_function_mark(self, trt_engine, request):
                assert trt_engine.model.path.name == "mlp.onnx"
                assert request.node.get_closest_marker("trt_accuracy").kwargs == {"rtol": 1e-3}

            def test_class_mark(self, trt_engine):
                assert trt_engine.model.path.name == "encoder.onnx"

        def test_module_mark(trt_engine):
            assert trt_engine.model.path.name == "cnn.onnx"
        """
    )
    trt_pytester.run().assert_outcomes(passed=3)


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ('trt_model("mlp.onnx")', "*mlp.onnx: input 'x' has dynamic dims [[]?, 256]; give shapes={'x': (...)} or batch_size"),
        ('trt_model("mlp.onnx", shapes={"y": (1, 256)})', "*mlp.onnx: shapes names input 'y', which the model does not have (inputs: x)"),
        ('trt_model("mlp.onnx", batch_size=2, input_ranges={"z": (0, 1)})', "*mlp.onnx: input_ranges names input 'z'*"),
        ('trt_model("encoder.onnx", inputs="mlp_inputs.npz")', "*mlp_inputs.npz: array 'x' is not an input of encoder.onnx (inputs: tokens)"),
        ('trt_model("garbage.onnx")', "*garbage.onnx: not a readable ONNX model*"),
        ('trt_model("mlp.onnx", batch_size=2, precision="int8")', "*mlp.onnx: precision='int8' needs a model with Q/DQ*"),
    ],
)
def test_model_problems_are_setup_errors_naming_test_and_file(trt_pytester, mark, message):
    (trt_pytester.path / "garbage.onnx").write_bytes(b"\x00not onnx")
    trt_pytester.pytester.makepyfile(
        test_user_model=f"""
        import pytest

        @pytest.mark.{mark}
        def test_it(trt_engine):
            pass
        """
    )
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_it*", f"test_user_model.py::test_it: {message}"])


def test_trt_engine_without_a_model_mark_says_so(trt_pytester):
    trt_pytester.pytester.makepyfile(test_nomark="def test_it(trt_engine):\n    pass\n")
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["test_nomark.py::test_it: trt_engine needs a @pytest.mark.trt_model(...) mark on the test"])


def test_model_path_is_relative_to_the_test_file_then_the_rootdir(trt_pytester):
    trt_pytester.copy_model("cnn.onnx", to="sub/models/cnn.onnx")
    (trt_pytester.path / "sub" / "test_paths.py").write_text(
        "import pytest\n\n"
        '@pytest.mark.trt_model("models/cnn.onnx", batch_size=1)\n'
        "def test_next_to_the_file(trt_engine):\n"
        "    assert trt_engine.model.path.parent.parent.name == 'sub'\n\n"
        '@pytest.mark.trt_model("mlp.onnx", batch_size=1)\n'
        "def test_from_the_rootdir(trt_engine):\n"
        "    assert trt_engine.model.path.parent.name != 'sub'\n"
    )
    trt_pytester.run().assert_outcomes(passed=2)
