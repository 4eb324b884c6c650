"""Modes a mark names by a word are enums in the specs: they still compare, print and reach JSON
as the word, and a wrong word is refused with the message it always had."""

from __future__ import annotations

import json

import pytest

from pytest_trt.arguments import CalibrationMethod, Check, NanPolicy, Precision, SyncMode
from pytest_trt.errors import SpecError
from pytest_trt.prepare.engines import Provenance
from pytest_trt.prepare.model_steps import StepHow, StepProvenance
from pytest_trt.specs import BuildSpec, MeasureSettings, OutputTolerance, make_accuracy_spec, make_model_spec


def test_specs_hold_the_enum_of_the_word_they_were_given(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    spec = make_model_spec(model, precision="int8", calibration=4, calibration_method="entropy")
    assert spec.build.precision is Precision.INT8
    assert spec.calibration_method is CalibrationMethod.ENTROPY
    tolerance = make_accuracy_spec(check="quantile", q=0.9, nan="equal").default
    assert tolerance.check is Check.QUANTILE and tolerance.nan is NanPolicy.EQUAL
    assert MeasureSettings(sync="spin").sync is SyncMode.SPIN
    # Built from the word or the member, a spec is the same spec (engines are shared by it).
    assert BuildSpec(precision="fp16") == BuildSpec(precision=Precision.FP16)
    assert hash(OutputTolerance(check="max")) == hash(OutputTolerance(check=Check.MAX))


def test_a_mode_reads_as_its_word_everywhere():
    fp16 = Precision.FP16
    assert fp16 == "fp16" and fp16 in {"fp16"} and {"fp16": 1}[fp16] == 1
    assert (str(fp16), f"{fp16}", f"precision={fp16!r}") == ("fp16", "fp16", "precision='fp16'")
    assert json.dumps(BuildSpec(precision="bf16").as_dict()["precision"]) == '"bf16"'
    assert OutputTolerance(check="median").rule() == "rtol=1e-3 atol=1e-5"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: OutputTolerance(check="p99"), "check must be one of elementwise, max, mean, median, quantile; got 'p99'"),
        (lambda: OutputTolerance(nan="ignore"), "nan must be one of fail, equal; got 'ignore'"),
        (lambda: MeasureSettings(sync="poll"), "sync must be one of blocking, spin; got 'poll'"),
        (lambda: BuildSpec(precision="fp64"), "precision must be one of fp32, tf32, fp16, bf16, int8, fp8; got 'fp64'"),
        (lambda: OutputTolerance(check=["max"]), "check must be one of elementwise, max, mean, median, quantile; got ['max']"),
    ],
)
def test_a_wrong_word_is_refused_with_the_words_it_takes(make, message):
    with pytest.raises(SpecError) as raised:
        make()
    assert str(raised.value) == message


def test_provenance_says_how_as_one_enum_and_writes_the_word():
    step = StepProvenance(StepHow.LOADED, 0.5)
    engine = Provenance(StepHow.MEMORY, 0.0, export=step)
    assert engine.as_dict()["how"] == "memory" and engine.as_dict()["export"]["how"] == "loaded"
    assert f"{engine.how} in 0.000 s" == "memory in 0.000 s"  # as Engine's repr and -v print it
