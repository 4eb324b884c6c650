"""Output comparison: tolerance rules, check modes, non-finite policies, report, failure files."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx_builders import onnx_model

from pytest_trt.judge.accuracy import RULE_NOTE, check_batch_consistency, compare_outputs, load_failure, save_failure
from pytest_trt.specs import AccuracySpec, OutputTolerance, make_accuracy_spec

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"


def _reference(shape: tuple[int, ...] = (8, 1000), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _with_ratio(ref: np.ndarray, ratios: np.ndarray, rtol: float = 1e-3, atol: float = 1e-5) -> np.ndarray:
    """An output whose error ratio |out-ref|/(atol+rtol*|ref|) is ``ratios`` element by element."""
    return (ref.astype(np.float64) + ratios * (atol + rtol * np.abs(ref.astype(np.float64)))).astype(np.float64)


def test_headline_names_count_rule_and_worst_element():
    ref = np.zeros((8, 1000), np.float32)
    out = ref.copy()
    flat = out.reshape(-1)
    flat[np.arange(100, 136)] = 0.01  # 36 small misses
    ref[3, 517], out[3, 517] = 2.52, 2.93  # and the worst one
    result = compare_outputs({"logits": out}, {"logits": ref}, make_accuracy_spec(rtol=1e-3, atol=1e-5))
    assert not result.passed
    assert result.failure_message().splitlines()[0] == (
        "output 'logits': 37 of 8000 elements outside rtol=1e-3 atol=1e-5; "
        "worst |d|=0.41 at [3, 517] (out=2.93, ref=2.52)"
    )
    report = result.outputs[0]
    assert report.worst_index == [3, 517]
    assert report.stats.n_bad == 37 and report.stats.frac_bad == pytest.approx(37 / 8000)
    assert report.stats.max_abs == pytest.approx(0.41, rel=1e-5)


def test_report_has_statistics_histogram_suggestion_and_rule_once():
    ref = _reference()
    out = ref + np.random.default_rng(1).normal(scale=1e-2, size=ref.shape).astype(np.float32)
    message = compare_outputs({"y": out}, {"y": ref}, AccuracySpec()).failure_message()
    for expected in ("abs error: max=", "rel error: max=", "median=", "p99=", "worst relative |d|/|ref|=",
                     "histogram of |out-ref|:", "smallest tolerance that would pass"):
        assert expected in message
    assert message.count(RULE_NOTE) == 1


def test_identical_outputs_pass_with_empty_messages():
    ref = _reference()
    result = compare_outputs({"y": ref.copy()}, {"y": ref}, AccuracySpec())
    assert result.passed and result.failure_message() == "" and result.outputs[0].message == ""
    assert result.outputs[0].stats.max_abs == 0.0


@pytest.mark.parametrize(
    ("check", "q", "passes"),
    [("elementwise", None, False), ("max", None, False), ("mean", None, True),
     ("median", None, True), ("quantile", 0.9, True), ("quantile", 0.99, False)],
)
def test_check_modes_judge_a_statistic_of_the_error_ratio(check, q, passes):
    # 97% of elements use half their tolerance, 3% use five times it: mean ratio 0.635.
    ref = _reference((10000,))
    ratios = np.full(ref.shape, 0.5)
    ratios[::33] = 5.0
    out = _with_ratio(ref, ratios)
    result = compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(check=check, q=q))
    assert result.passed is passes
    if not passes:
        assert result.failure_message().startswith("output 'y': ")


def test_statistic_check_failure_states_the_statistic():
    ref = _reference((1000,))
    out = _with_ratio(ref, np.full(ref.shape, 2.0))
    message = compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(check="median")).failure_message()
    assert message.startswith("output 'y': check='median': median of |out-ref|/(atol+rtol*|ref|) is 2 > 1")


def test_max_mismatch_allows_a_fraction_of_elements():
    ref = _reference()
    ratios = np.zeros(ref.size)
    ratios[:37] = 3.0
    out = _with_ratio(ref, ratios.reshape(ref.shape))
    strict = compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(max_mismatch=0.001))
    assert not strict.passed and "allowed 8 (max_mismatch=0.001)" in strict.failure_message()
    assert compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(max_mismatch=0.005)).passed


def test_tolerance_is_set_per_output():
    ref = _reference()
    out = ref * np.float32(1.01)
    spec = make_accuracy_spec(rtol=1e-3, outputs={"loose": {"rtol": 2e-2}})
    result = compare_outputs({"loose": out, "tight": out}, {"loose": ref, "tight": ref}, spec)
    verdicts = {report.name: report.passed for report in result.outputs}
    assert verdicts == {"loose": True, "tight": False}
    assert result.failure_message().startswith("output 'tight'")


def test_integer_and_bool_outputs_are_exact_across_widths():
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    spec = make_accuracy_spec(rtol=1.0, atol=10.0)  # must not loosen an exact comparison
    assert compare_outputs({"ids": ids.astype(np.int32)}, {"ids": ids}, spec).passed
    changed = ids.copy()
    changed[1, 2] = 7
    result = compare_outputs({"ids": changed, "mask": np.array([True, False])},
                             {"ids": ids, "mask": np.array([True, True])}, spec)
    lines = result.failure_message().splitlines()
    assert lines[0] == ("output 'ids': 1 of 6 elements differ (int64 output, compared exactly); "
                        "worst |d|=1 at [1, 2] (out=7, ref=6)")
    assert lines[1].startswith("output 'mask': 1 of 2 elements differ (bool output")


def test_shape_and_dtype_kind_mismatches_show_both_sides():
    ref = _reference((4, 10))
    result = compare_outputs({"y": ref[:, :9], "ids": ref}, {"y": ref, "ids": ref.astype(np.int64)}, AccuracySpec())
    message = result.failure_message()
    assert "output 'y': shape (4, 9) differs from the reference's shape (4, 10)" in message
    assert "output 'ids': dtype float32 (float) differs in kind from the reference's int64 (integer)" in message
    assert "out (4, 10), ref (4, 10)" in message


def test_missing_outputs_on_either_side_are_named():
    ref = _reference((3,))
    result = compare_outputs({"a": ref, "extra": ref}, {"a": ref, "b": ref}, AccuracySpec())
    assert not result.passed
    assert result.problems == [
        "output 'b' is missing from the backend's outputs (it produced: 'a', 'extra')",
        "output 'extra' has no reference output (the reference produced: 'a', 'b')",
    ]


def test_non_finite_output_where_reference_is_finite_fails_under_any_policy():
    ref = _reference((4, 5))
    out = ref.copy()
    out[2, 3] = np.inf
    for nan in ("fail", "equal"):
        result = compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(nan=nan, inf_equal=True, rtol=1.0))
        assert not result.passed
        assert "worst |d|=inf at [2, 3] (out=inf" in result.failure_message().splitlines()[0]
        assert "no tolerance would pass" in result.failure_message()


def test_nan_equal_policy():
    ref = _reference((4, 5))
    ref[1, 1] = np.nan
    out = ref.copy()
    assert not compare_outputs({"y": out}, {"y": ref}, AccuracySpec()).passed
    assert compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(nan="equal")).passed
    out[1, 1] = 0.0  # a number where the reference has NaN is never equal
    assert not compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(nan="equal")).passed


def test_infinities_match_only_with_inf_equal_and_same_sign():
    ref = np.array([1.0, np.inf, -np.inf], np.float32)
    assert not compare_outputs({"y": ref.copy()}, {"y": ref}, AccuracySpec()).passed
    assert compare_outputs({"y": ref.copy()}, {"y": ref}, make_accuracy_spec(inf_equal=True)).passed
    flipped = np.array([1.0, -np.inf, -np.inf], np.float32)
    assert not compare_outputs({"y": flipped}, {"y": ref}, make_accuracy_spec(inf_equal=True)).passed


def test_cosine_similarity_is_an_extra_gate():
    ref = _reference((64, 100))
    out = ref + np.random.default_rng(2).normal(scale=0.1, size=ref.shape).astype(np.float32)
    loose = {"rtol": 10.0, "atol": 1.0}  # elementwise passes; only cosine decides
    passing = compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(min_cosine=0.99, **loose))
    assert passing.passed and 0.99 < passing.outputs[0].stats.cosine < 0.999
    failing = compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(min_cosine=0.999, **loose))
    assert failing.failure_message().startswith("output 'y': cosine similarity 0.99")


def test_a_cosine_close_to_one_is_printed_with_the_digits_that_tell_it_from_min_cosine():
    ref = _reference((64, 100))
    out = ref + np.random.default_rng(2).normal(scale=0.01, size=ref.shape).astype(np.float32)
    loose = {"rtol": 10.0, "atol": 1.0}
    result = compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(min_cosine=0.99999, **loose))
    assert 0.99994 < result.outputs[0].stats.cosine < 0.99995
    lines = result.failure_message().splitlines()
    # Three significant digits of 1 - cosine; not "cosine similarity 1 < min_cosine=0.99999".
    assert re.match(r"output 'y': cosine similarity 0\.99994\d\d < min_cosine=0\.99999;", lines[0])
    assert any(re.fullmatch(r"  cosine similarity 0\.99994\d\d < min_cosine=0\.99999", line) for line in lines)


def _int8_like(batch: int = 16, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Logits and a copy with quantization-sized noise that flips the top class of one row."""
    ref = _reference((batch, classes), seed=4)
    out = ref + np.random.default_rng(5).normal(scale=0.02, size=ref.shape).astype(np.float32)
    top = int(np.argmax(ref[3]))
    out[3, top] = ref[3].min() - 1.0
    return out, ref


def test_a_quantized_failure_shows_cosine_and_top1_agreement_without_gating_on_them():
    out, ref = _int8_like()
    spec = make_accuracy_spec(rtol=1e-3, atol=1e-5)
    plain = compare_outputs({"logits": out}, {"logits": ref}, spec)
    quantized = compare_outputs({"logits": out}, {"logits": ref}, spec, quantized=True)
    assert not plain.passed and not quantized.passed
    assert "cosine" not in plain.failure_message() and "top-1" not in plain.failure_message()
    stats = quantized.outputs[0].stats
    message = quantized.failure_message()
    assert message.splitlines()[0] == plain.failure_message().splitlines()[0]  # the same headline
    assert f"  cosine similarity {stats.cosine:.{2 - int(np.floor(np.log10(1 - stats.cosine)))}f} " \
        "(reported, not gated: min_cosine= gates on it)" in message
    assert stats.top1_agreement == pytest.approx(15 / 16)
    assert (
        "  top-1 agreement 93.8% of 16 rows along axis -1 (reported, not gated: topk= gates on it); "
        "top-1 along axis -1: 15 of 16 rows agree; first disagreeing row [3]"
    ) in message


def test_quantized_reporting_changes_no_verdict_and_leaves_gates_to_their_options():
    out, ref = _int8_like()
    loose = {"rtol": 10.0, "atol": 1.0}
    passing = compare_outputs({"logits": out}, {"logits": ref}, make_accuracy_spec(**loose), quantized=True)
    assert passing.passed  # top-1 disagrees in one row, but topk was not asked for
    assert passing.outputs[0].stats.top1_agreement == pytest.approx(15 / 16)
    assert 0.9 < passing.outputs[0].stats.cosine < 1.0
    gated = compare_outputs(
        {"logits": out}, {"logits": ref}, make_accuracy_spec(topk=1, min_cosine=0.5, **loose), quantized=True
    )
    assert not gated.passed and gated.outputs[0].stats.top1_agreement is None
    assert "cosine similarity" in gated.failure_message() and "min_cosine=0.5" in gated.failure_message()
    assert "reported, not gated" not in gated.failure_message()
    scalar = compare_outputs({"s": np.float32(1.0)}, {"s": np.float32(2.0)}, AccuracySpec(), quantized=True)
    assert not scalar.passed and scalar.outputs[0].stats.top1_agreement is None


def test_topk_agreement_along_an_axis_ignores_reference_ties():
    ref = np.tile(np.arange(10, dtype=np.float32), (4, 1))
    out = ref.copy()
    out[2, [6, 7]] = out[2, [7, 6]]  # swaps ranks 3 and 4: top-3 of row 2 changes
    loose = {"rtol": 10.0, "atol": 10.0}
    assert compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(topk=2, **loose)).passed
    result = compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(topk=3, **loose))
    assert result.outputs[0].stats.topk_agreement == pytest.approx(0.75)
    assert "first disagreeing row [2]: out top-3 [9, 8, 6] vs ref [9, 8, 7]" in result.failure_message()
    tied = ref.copy()
    tied[:, 6] = 7.0  # reference ties 6 and 7 for third place
    assert compare_outputs({"y": out}, {"y": tied}, make_accuracy_spec(topk=3, **loose)).passed
    by_column = compare_outputs({"y": out.T}, {"y": ref.T}, make_accuracy_spec(topk=3, topk_axis=0, **loose))
    assert by_column.outputs[0].stats.topk_agreement == pytest.approx(0.75)


@pytest.mark.parametrize("check", ["elementwise", "mean", "median"])
def test_suggested_tolerances_are_the_smallest_that_pass(check):
    ref = _reference((2000,))
    out = ref + np.random.default_rng(3).normal(scale=1e-2, size=ref.shape).astype(np.float32)
    spec = make_accuracy_spec(check=check, max_mismatch=0.01 if check == "elementwise" else 0.0)
    report = compare_outputs({"y": out}, {"y": ref}, spec).outputs[0]
    assert not report.passed
    tol = spec.default
    for which in ("rtol", "atol"):
        smallest = getattr(report.stats, f"min_{which}")
        for factor, passes in ((1.001, True), (0.99, False)):
            changed = AccuracySpec(default=dataclasses.replace(tol, **{which: smallest * factor}))
            assert compare_outputs({"y": out}, {"y": ref}, changed).passed is passes


def test_result_as_dict_is_strict_json():
    ref = _reference((4, 5))
    out = ref.copy()
    out[0, 0] = np.nan
    data = compare_outputs({"y": out}, {"y": ref}, make_accuracy_spec(min_cosine=0.5)).as_dict()
    decoded = json.loads(json.dumps(data, allow_nan=False))
    assert decoded["passed"] is False
    assert decoded["outputs"][0]["stats"]["min_rtol"] is None  # no tolerance passes a NaN
    assert decoded["outputs"][0]["worst_index"] == [0, 0]


def _row_mixing_model() -> onnx.ModelProto:
    """y = cumsum(x) over the batch axis: each row depends on the rows before it."""
    graph = helper.make_graph(
        [helper.make_node("CumSum", ["x", "axis"], ["y"])],
        "mix_rows",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor("axis", TensorProto.INT64, [], [0])],
    )
    return onnx_model(graph)


def _infer(model: onnx.ModelProto | Path):
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])

    def infer(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feed), strict=True))

    return infer


def test_batch_consistency_catches_a_model_that_mixes_rows():
    feed = {"x": _reference((5, 4))}
    problems = check_batch_consistency(_infer(_row_mixing_model()), feed)
    assert len(problems) == 1
    assert problems[0].startswith(
        "batch consistency: output 'y' differs across 5 copies of the same sample: "
        "4 rows differ from row 0 (exactly); worst row 4"
    )


def test_batch_consistency_passes_a_row_wise_model():
    feed = {"x": _reference((6, 256))}
    assert check_batch_consistency(_infer(MODELS / "mlp.onnx"), feed, tolerance=OutputTolerance()) == []


def test_batch_consistency_needs_more_than_one_row():
    problems = check_batch_consistency(_infer(MODELS / "mlp.onnx"), {"x": _reference((1, 256))})
    assert problems == [
        "batch consistency: input 'x' of shape (1, 256) has no batch axis 0 with more than one row; "
        "run it with a batch size of 2 or more"
    ]


def test_saved_failure_reloads_and_reproduces(tmp_path):
    infer = _infer(MODELS / "mlp.onnx")
    inputs = {"x": _reference((4, 256))}
    reference = infer(inputs)
    outputs = {"y": reference["y"] + np.float32(0.05)}
    spec = AccuracySpec()
    original = compare_outputs(outputs, reference, spec)
    test_id = "tests/test_models.py::test_mlp[fp16/batch 4]"
    path = save_failure(tmp_path / "failures", test_id, inputs, outputs, reference)
    assert path.parent == tmp_path / "failures" and path.suffix == ".npz"
    assert path.name.startswith("tests_test_models.py_test_mlp_fp16_batch_4-")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    saved_inputs, saved_outputs, saved_reference = load_failure(path)
    assert np.array_equal(infer(saved_inputs)["y"], saved_reference["y"])  # inputs replay the reference
    replay = compare_outputs(saved_outputs, saved_reference, spec)
    assert replay.failure_message() == original.failure_message() != ""


def test_test_ids_that_sanitize_alike_get_distinct_files(tmp_path):
    arrays = {"a": np.zeros(2)}
    first = save_failure(tmp_path, "t.py::test[a/b]", arrays, arrays, arrays)
    second = save_failure(tmp_path, "t.py::test[a:b]", arrays, arrays, arrays)
    assert first != second
    assert save_failure(tmp_path, "plain_id", arrays, arrays, arrays).name == "plain_id.npz"


def test_object_arrays_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"save_failure\('t'\): output 'y' is an object array"):
        save_failure(tmp_path, "t", {}, {"y": np.array([{}], dtype=object)}, {})
    assert list(tmp_path.iterdir()) == []


def test_load_failure_rejects_foreign_files(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"other\.npz: key 'weights' is not input:<name>"):
        load_failure(path)


def test_failure_message_reads_in_a_pytest_run(pytester):
    pytester.makepyfile(
        """
        import numpy as np
        from pytest_trt.judge.accuracy import compare_outputs
        from pytest_trt.specs import make_accuracy_spec

        def test_model_output():
            ref = np.linspace(1.0, 2.0, 100, dtype=np.float32).reshape(10, 10)
            out = ref.copy()
            out[4, 7] += np.float32(0.5)
            result = compare_outputs({"logits": out}, {"logits": ref}, make_accuracy_spec(rtol=1e-2))
            assert result.passed, result.failure_message()
        """
    )
    run = pytester.runpytest("-p", "no:cacheprovider")
    run.assert_outcomes(failed=1)
    assert (
        "AssertionError: output 'logits': 1 of 100 elements outside rtol=1e-2 atol=1e-5; "
        "worst |d|=0.5 at [4, 7] (out=1.97, ref=1.47)"
    ) in run.stdout.str()
