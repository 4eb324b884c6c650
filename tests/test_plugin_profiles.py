"""``profile=`` on ``trt_model`` as users meet it on onnxruntime's CPU backend: one engine serves
every shape inside its profiles, a shape outside is an error naming the input, the shape and the
bounds, and bad profiles are collection errors naming the test and the argument."""

from __future__ import annotations

import pytest


def test_one_engine_runs_every_shape_inside_the_profile(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_profile="""
        import numpy as np
        import pytest

        @pytest.mark.trt_model("mlp.onnx", profile={"x": ((1, 256), (8, 256), (64, 256))})
        def test_shapes(trt_engine):
            assert trt_engine.shapes == {"x": (8, 256)}  # the profile's opt shape
            for rows in (1, 8, 33, 64):
                assert trt_engine.infer({"x": np.ones((rows, 256), np.float32)})["y"].shape == (rows, 10)
            assert trt_engine.build.profiles[0].opt_shapes == {"x": (8, 256)}
        """
    )
    trt_pytester.run("--trt-backend=onnxruntime").assert_outcomes(passed=1)


def test_a_shape_outside_the_profile_is_an_error_naming_the_input_shape_and_bounds(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_outside="""
        import numpy as np
        import pytest
        from pytest_trt.errors import ShapeError

        @pytest.mark.trt_model("mlp.onnx", profile={"x": ((1, 256), (8, 256), (64, 256))})
        def test_too_big(trt_engine):
            trt_engine.infer({"x": np.ones((65, 256), np.float32)})

        @pytest.mark.trt_model("mlp.onnx", profile=[{"x": ((1, 256), (2, 256), (4, 256))},
                                                    {"x": ((16, 256), (16, 256), (32, 256))}])
        def test_between_two_profiles(trt_engine):
            assert trt_engine.infer({"x": np.ones((20, 256), np.float32)})["y"].shape == (20, 10)
            with pytest.raises(ShapeError, match="fit no optimization profile: profile 0: .* profile 1: "):
                trt_engine.infer({"x": np.ones((8, 256), np.float32)})
        """
    )
    result = trt_pytester.run("--trt-backend=onnxruntime")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*ShapeError: input 'x': shape (65, 256) is outside the optimization profile (min (1, 256), max (64, 256))*"]
    )


def test_a_shapes_argument_outside_the_profile_fails_before_the_engine_is_built(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_outside_shapes="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", shapes={"x": (128, 256)}, profile={"x": ((1, 256), (8, 256), (64, 256))})
        def test_it(trt_engine):
            pass
        """
    )
    result = trt_pytester.run("--trt-backend=onnxruntime")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*input 'x': shape (128, 256) is outside the optimization profile*"])


def test_a_profile_naming_no_input_of_the_model_is_an_error_naming_the_model(trt_pytester):
    trt_pytester.pytester.makepyfile(
        test_unknown="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", profile={"tokens": ((1, 16), (8, 16), (64, 16))})
        def test_it(trt_engine):
            pass
        """
    )
    result = trt_pytester.run("--trt-backend=onnxruntime")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*profile names [[]'tokens'[]], which are not inputs of *mlp.onnx (inputs: x)*"])


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ('{"x": ((8, 256), (1, 256), (64, 256))}', "trt_model: profile[[]'x'[]]: needs min <= opt <= max on axis 0*"),
        ('{"x": ((1, 256), (8, 256))}', "trt_model: profile[[]'x'[]] must be (min, opt, max) shapes*"),
        ('{"x": ((1, 256), (8,), (64, 256))}', "trt_model: profile[[]'x'[]]: min, opt and max must have the same rank*"),
        ('{"x": ((0, 256), (8, 256), (64, 256))}', "trt_model: profile[[]'x'[]] must be a tuple of positive ints*"),
        ("[{}]", "trt_model: profile[[]0[]] names no input*"),
        ('"x:1x256"', "trt_model: profile must be a dict of input name -> (min, opt, max) shapes*"),
    ],
)
def test_bad_profiles_are_collection_errors_naming_test_and_argument(trt_pytester, profile, message):
    trt_pytester.pytester.makepyfile(
        test_bad=f"import pytest\n\n@pytest.mark.trt_model('mlp.onnx', profile={profile})\ndef test_it():\n    pass\n"
    )
    result = trt_pytester.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*test_bad.py::test_it: {message}"])
