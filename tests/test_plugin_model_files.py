"""ONNX files collected as tests with --trt-collect-models: a model's TOML settings (a sidecar
``<name>.trt.toml`` or a section of its folder's ``trt.toml``) carry what the marks take, and the
items are gated, recorded and reported like any test (run/model_files.py)."""

from __future__ import annotations

import json
import textwrap

import pytest

from pytest_trt.run.model_settings import key_line

PASSING = "max_latency_ms = 1e6"
FAILING = "max_latency_ms = 1e-6"


def _models(trt_pytester, *names: str) -> None:
    for name in names:
        trt_pytester.copy_model(f"{name}.onnx", f"models/{name}.onnx")


def _write(trt_pytester, path: str, text: str) -> None:
    target = trt_pytester.path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(text).lstrip())


def _node_ids(result: pytest.RunResult) -> list[str]:
    return sorted(line for line in result.outlines if "::" in line and not line.startswith(("ERROR", "FAILED")))


def test_two_models_with_sidecars_are_collected_and_their_gates_run(trt_pytester):
    _models(trt_pytester, "mlp", "cnn")
    _write(trt_pytester, "models/mlp.trt.toml", f"""
        [model]
        shapes = {{ x = [4, 256] }}
        intra_op_threads = 1

        [accuracy]
        rtol = 1e-3
        atol = 1e-5

        [perf.onnxruntime]
        {PASSING}
        percentile = 99
    """)
    _write(trt_pytester, "models/cnn.trt.toml", f"""
        [model]
        batch_size = 2

        [perf.onnxruntime]
        {FAILING}
    """)
    collected = trt_pytester.run("--trt-collect-models", "--collect-only", "-q", "models")
    assert _node_ids(collected) == ["models/cnn.onnx::default", "models/mlp.onnx::default"]

    result = trt_pytester.run("--trt-collect-models", "--trt-report-json=report.json", "models")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*_ default _*",
        "pytest-trt gates failed (backend onnxruntime):",
        "perf (onnxruntime): p50 latency * ms > budget 0.000001 ms*",
    ])
    result.stdout.fnmatch_lines(["*= pytest-trt summary =*", "models/mlp.onnx", "  default*onnxruntime*ok*p99 <= 1000000* ms*ok"])
    tests = {test["nodeid"]: test for test in json.loads((trt_pytester.path / "report.json").read_text())["tests"]}
    assert set(tests) == {"models/cnn.onnx::default", "models/mlp.onnx::default"}
    assert tests["models/mlp.onnx::default"]["accuracy"]["passed"] is True
    assert tests["models/mlp.onnx::default"]["build"]["shapes"] == {"x": [4, 256]}


def test_a_failing_accuracy_gate_fails_the_model_test(trt_pytester):
    _models(trt_pytester, "mlp")
    _write(trt_pytester, "models/mlp.trt.toml", """
        [model]
        shapes = { x = [4, 256] }
        precision = "fp16"

        [accuracy]
        rtol = 0
        atol = 0
    """)
    result = trt_pytester.run("--trt-collect-models", "models")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["accuracy: output 'y': * elements outside rtol=0 atol=0*"])


def test_a_folder_trt_toml_has_a_table_per_model_and_variants_make_named_tests(trt_pytester):
    _models(trt_pytester, "mlp", "cnn")
    _write(trt_pytester, "models/trt.toml", f"""
        [mlp.model]
        shapes = {{ x = [4, 256] }}

        [mlp.accuracy]
        rtol = 1e-3
        atol = 1e-5

        [mlp.perf.onnxruntime]
        {PASSING}

        [mlp.variant.fp32]

        [mlp.variant.fp16.model]
        precision = "fp16"

        [mlp.variant.fp16.accuracy]
        rtol = 1e-2
        atol = 1e-2

        [cnn.model]
        batch_size = 2

        [cnn.accuracy]
    """)
    collected = trt_pytester.run("--trt-collect-models", "--collect-only", "-q", "models")
    assert _node_ids(collected) == ["models/cnn.onnx::default", "models/mlp.onnx::fp16", "models/mlp.onnx::fp32"]
    result = trt_pytester.run("--trt-collect-models", "--trt-report-json=report.json", "models")
    result.assert_outcomes(passed=3)
    tests = {test["nodeid"]: test for test in json.loads((trt_pytester.path / "report.json").read_text())["tests"]}
    # The variant replaces the shared keys it names and keeps the others.
    assert tests["models/mlp.onnx::fp16"]["build"]["precision"] == "fp16"
    assert tests["models/mlp.onnx::fp16"]["build"]["shapes"] == {"x": [4, 256]}
    assert tests["models/mlp.onnx::fp32"]["build"]["precision"] == "fp32"


def test_k_selects_model_tests_by_model_and_variant(trt_pytester):
    _models(trt_pytester, "mlp", "cnn")
    _write(trt_pytester, "models/mlp.trt.toml", """
        [model]
        shapes = { x = [4, 256] }
        [accuracy]
        [variant.fp32]
        [variant.fp16.model]
        precision = "fp16"
        [variant.fp16.accuracy]
        rtol = 1e-2
        atol = 1e-2
    """)
    _write(trt_pytester, "models/cnn.trt.toml", "[model]\nbatch_size = 2\n[accuracy]\n")
    result = trt_pytester.run("--trt-collect-models", "-v", "models", "-k", "mlp and fp16")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(["models/mlp.onnx::fp16 PASSED*"])
    assert trt_pytester.run("--trt-collect-models", "models", "-k", "cnn").parseoutcomes() == {"passed": 1, "deselected": 2}


def test_models_are_collected_only_with_the_option_and_only_with_settings(trt_pytester):
    _models(trt_pytester, "mlp", "cnn")
    _write(trt_pytester, "models/mlp.trt.toml", "[model]\nshapes = { x = [2, 256] }\n")
    # No option: nothing; the sidecar of an uncollected model is not read either.
    assert trt_pytester.run("models").ret == pytest.ExitCode.NO_TESTS_COLLECTED
    # cnn.onnx has no settings: not collected. mlp has [model] only: it must build and run.
    result = trt_pytester.run("--trt-collect-models", "-v", "models")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["models/mlp.onnx::default PASSED*"])
    assert "cnn.onnx" not in result.stdout.str()
    # The ini twin.
    trt_pytester.pytester.makeini("[pytest]\ntrt_collect_models = true\n")
    trt_pytester.run("models").assert_outcomes(passed=1)


def test_a_model_whose_engine_cannot_be_made_is_an_error_naming_the_test(trt_pytester):
    _models(trt_pytester, "mlp")
    _write(trt_pytester, "models/mlp.trt.toml", "[model]\nshapes = { nope = [2, 256] }\n[accuracy]\n")
    result = trt_pytester.run("--trt-collect-models", "models")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*models/mlp.onnx::default: *nope*"])


@pytest.mark.parametrize(
    ("sidecar", "where", "message"),
    [
        ('[model]\nbatch_size = 2\nprecison = "fp16"\n', "3: model.precison",
         "trt_model: unknown argument 'precison'*"),
        ('[model]\nprecision = "fp64"\n', "2: model.precision", "trt_model: precision must be one of *; got 'fp64'"),
        ('[model]\nshapes = { x = [0, 256] }\n', "2: model.shapes", "trt_model: shapes[[]'x'[]] must be a tuple of positive ints*"),
        ("[model]\n\n[accuracy]\nrtol = 1e-3\natol = \"tiny\"\n", "5: accuracy.atol", "trt_accuracy: atol must be a number, got 'tiny'"),
        ("[accuracy.outputs.z]\natol = 0.1\n", "1: accuracy.outputs",
         "trt_accuracy: outputs[[]'z'[]]: the model has no output 'z'*"),
        ("[perf.onnxruntime]\npercentil = 99\n", "2: perf.onnxruntime.percentil", "trt_perf: unknown argument 'percentil'*"),
        ("[perf.cuda]\nmax_latency_ms = 1\n", "1: perf.cuda", "trt_perf: backend must be one of *; got 'cuda'"),
        ('[perf]\nbackend = "onnxruntime"\n', "2: perf.backend", "name the backend by the table: *"),
        ("[modle]\nbatch_size = 2\n", "1: modle", "unknown key (did you mean 'model'? known here: model, accuracy, perf, variant)"),
        ('[model]\npath = "other.onnx"\n', "2: model.path", "the model is the .onnx file these settings are for*"),
        ('model = "fp16"\n', "1: model", "must be a table ([[]model[]]), got 'fp16'"),
        ('[variant."fp 16".model]\nprecision = "fp16"\n', '1: variant.fp 16', "a variant's name is its test's name*"),
        ('[model]\nbatch_size = 2\n\n[variant.fp16.model]\nprecision = "fp17"\n', "5: variant.fp16.model.precision",
         "trt_model: precision must be one of *; got 'fp17'"),
        # A variant inherits a bad shared key: the shared key's line.
        ('[model]\nprecision = "fp64"\n\n[variant.fp32]\n', "2: model.precision", "trt_model: precision must be one of *"),
    ],
)
def test_a_bad_sidecar_is_a_collection_error_naming_file_line_and_key(trt_pytester, sidecar, where, message):
    _models(trt_pytester, "mlp")
    (trt_pytester.path / "models" / "mlp.trt.toml").write_text(sidecar)
    result = trt_pytester.run("--trt-collect-models", "models")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting models/mlp.onnx*", f"models/mlp.trt.toml:{where}: {message}"])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[model]\nbatch_size = 2\n\n[accuracy]\nrtol = = 1e-3\n", "5: not valid TOML: Invalid value"),
        ("[model]\nbatch_size = 2\nbatch_size = 3\n", "3: not valid TOML: Cannot overwrite a value"),
        # The parser stops at the end of the file: its last line.
        ('[model]\nprecision = "fp16', "2: not valid TOML: Unterminated string"),
    ],
)
def test_a_toml_syntax_error_names_the_file_and_line(trt_pytester, text, error):
    _models(trt_pytester, "mlp")
    (trt_pytester.path / "models" / "mlp.trt.toml").write_text(text)
    result = trt_pytester.run("--trt-collect-models", "models")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting models/mlp.onnx*", f"models/mlp.trt.toml:{error}"])


def test_a_bad_key_in_a_folder_trt_toml_names_its_line_and_model_table(trt_pytester):
    _models(trt_pytester, "mlp", "cnn")
    _write(trt_pytester, "models/trt.toml", """
        [cnn.model]
        batch_size = 2

        [mlp.model]
        batch_size = 2

        [mlp.perf.onnxruntime]
        max_latency = 5
    """)
    result = trt_pytester.run("--trt-collect-models", "models")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["models/trt.toml:8: mlp.perf.onnxruntime.max_latency: trt_perf: unknown argument 'max_latency'*"])


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"models/trt.toml": "[mlp.model]\nbatch_size = 2\n\n[resnet.model]\nbatch_size = 2\n"},
         "models/trt.toml:4: resnet: no model resnet.onnx in this folder (*models here: mlp.onnx)"),
        ({"models/resnet.trt.toml": "[model]\nbatch_size = 2\n"}, "models/resnet.trt.toml: no model resnet.onnx beside it"),
        ({"models/mlp.trt.toml": "[model]\nbatch_size = 2\n", "models/trt.toml": "[mlp.model]\nbatch_size = 4\n"},
         "models/mlp.trt.toml: mlp.onnx also has a [[]mlp[]] table in models/trt.toml:1; keep one"),
    ],
)
def test_settings_that_no_model_or_two_files_describe_are_errors(trt_pytester, files, error):
    _models(trt_pytester, "mlp")
    for path, text in files.items():
        _write(trt_pytester, path, text)
    result = trt_pytester.run("--trt-collect-models", "models")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([error])


def test_model_tests_record_baselines_and_run_under_xdist(trt_pytester):
    _models(trt_pytester, "mlp", "cnn")
    for name, model in (("mlp", "shapes = { x = [2, 256] }"), ("cnn", "batch_size = 2")):
        _write(trt_pytester, f"models/{name}.trt.toml", f"[model]\n{model}\n[perf.onnxruntime]\n{PASSING}\n")
    result = trt_pytester.run_subprocess(
        "--trt-collect-models", "-n", "2", "--trt-update-baselines", "--trt-report-json=report.json", "models"
    )
    result.assert_outcomes(passed=2)
    files = sorted(path.name for path in (trt_pytester.path / "baselines").glob("*/*.json"))
    assert files == ["models__cnn.onnx.json", "models__mlp.onnx.json"]
    mlp = next((trt_pytester.path / "baselines").glob("*/models__mlp.onnx.json"))
    assert list(json.loads(mlp.read_text())["tests"]) == ["models/mlp.onnx::default"]
    tests = json.loads((trt_pytester.path / "report.json").read_text())["tests"]
    assert sorted(test["nodeid"] for test in tests) == ["models/cnn.onnx::default", "models/mlp.onnx::default"]


@pytest.mark.parametrize(
    ("key", "line"),
    [
        (("model", "precision"), 3),
        (("model", "shapes", "x"), 2),  # inside an inline table: the line that holds it
        (("variant", "fp16", "model", "precision"), 9),
        (("variant", "fp16"), 8),  # a table written only through a table under it
        (("perf", "a.b"), 11),  # quoted keys
        (("model", "nowhere"), 1),  # not written: the table it would be in
        (("model", "hidden"), 1),  # in a multi-line string, which is no key
        (("accuracy", "rtol"), None),
    ],
)
def test_key_line_finds_where_a_key_is_written(key, line):
    text = textwrap.dedent('''
        [model]
        shapes = { x = [1, 2] }
        precision = "fp32"
        note = """
        hidden = "fp16"
        """

        [variant.fp16.model]
        precision = "fp16"
        [perf]
        "a.b" = 1
    ''').lstrip()
    assert key_line(text, key) == line


def test_a_perf_table_of_its_own_is_a_gpu_budget_not_enforced_on_cpu(trt_pytester):
    _models(trt_pytester, "mlp")
    _write(trt_pytester, "models/mlp.trt.toml", f"""
        [model]
        shapes = {{ x = [2, 256] }}

        [perf]
        {FAILING}

        [perf.onnxruntime]
        {PASSING}
    """)
    result = trt_pytester.run("--trt-collect-models", "--trt-backend=onnxruntime", "models")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["  default*onnxruntime*ok", "*gpu*p50 <= 0.000001 ms*not enforced"])
