"""The interleaved A/B: where a model changed since its baseline and git holds the model the
baseline was recorded from, the two are timed side by side in one process (baselines/interleaved.py)."""

from __future__ import annotations

import shutil
import subprocess

import onnx
import pytest
from test_baseline_plugin import MEASURE, report, slower_mlp, stored, write_tests

from pytest_trt.baselines.interleaved import ORDER, SideBySide, decide_interleaved, judge
from pytest_trt.baselines.regression import Doubt, Measurement, Verdict


def floors(*values: float) -> list[float]:
    return list(values)


def test_the_two_fastest_sessions_of_each_beyond_the_threshold_are_a_regression():
    verdict = judge(floors(1.10, 1.09, 1.30), floors(1.00, 1.01, 1.20), 0.03, baseline_model="m.onnx at abc")
    assert verdict.status is Verdict.REGRESSED and verdict.baseline_ms == 1.00
    assert verdict.baseline_model_floors_ms == [1.00, 1.01, 1.20]
    # The readings: fastest against fastest, second-fastest against second-fastest; a slow
    # session on either side (noise only slows) moves neither.
    assert verdict.sessions == pytest.approx([0.09, 1.10 / 1.01 - 1]) and verdict.change == pytest.approx(0.09)
    # The printed range is those two readings, both beyond the threshold.
    assert verdict.ci_low > 0.03 and verdict.ci_high == pytest.approx(max(verdict.sessions))
    assert "vs the baseline's model timed beside it (m.onnx at abc; threshold 3%)" in verdict.message
    assert verdict.message.endswith("the fastest of each read +9.0%, the second-fastest +8.9%, both beyond the threshold")


def test_fastest_sessions_that_disagree_are_inconclusive():
    # The fastest sessions read +1.0%, the second-fastest +5.0%.
    verdict = judge(floors(1.05, 1.00, 1.06), floors(1.00, 1.01, 0.99), 0.03, baseline_model="m")
    assert verdict.status is Verdict.INCONCLUSIVE and verdict.doubt is Doubt.SESSIONS_DISAGREE
    assert verdict.message.endswith(", and the two disagree")


def test_readings_within_the_threshold_are_unchanged_and_a_clear_drop_improved():
    assert judge(floors(1.02, 0.99, 1.04), floors(1.00, 1.01, 0.99), 0.03, baseline_model="m").status is Verdict.UNCHANGED
    assert judge(floors(0.90, 0.91, 0.92), floors(1.00, 1.01, 0.99), 0.03, baseline_model="m").status is Verdict.IMPROVED


def test_a_regression_timed_on_a_busy_host_is_inconclusive():
    verdict = judge(floors(1.10, 1.09, 1.12), floors(1.00, 1.01, 0.99), 0.03, baseline_model="m", busy=("psi 40%",))
    assert verdict.status is Verdict.INCONCLUSIVE and verdict.doubt is Doubt.BUSY and "psi 40%" in verdict.message


def test_the_sessions_of_a_rotation_are_read_by_the_side_they_were_opened_for():
    # Opened B A A B B A: the new model's floors 1.2, the baseline model's 1.0.
    timed = [Measurement([1.2 if side == "B" else 1.0] * 30) for side in ORDER]
    sides = SideBySide.in_order(timed)
    assert [min(m.samples_ms) for m in sides.new] == [1.2] * 3 and [min(m.samples_ms) for m in sides.old] == [1.0] * 3
    verdict = decide_interleaved(sides, 0.03, baseline_model="m")
    assert verdict.status is Verdict.REGRESSED and verdict.sessions == pytest.approx([0.2, 0.2]) and verdict.remeasured


def git(root, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repository(trt_pytester):
    """The test project as a git repository, its model and tests committed."""
    if shutil.which("git") is None:
        pytest.skip("needs git on PATH: the baseline's model is read back from git")
    root = trt_pytester.path
    git(root, "init", "-q")
    git(root, "config", "user.email", "ci@example.com")
    git(root, "config", "user.name", "ci")
    write_tests(trt_pytester)
    git(root, "add", "mlp.onnx", "test_perf.py")
    git(root, "commit", "-q", "-m", "model")
    return root


def test_a_changed_model_is_timed_beside_the_baseline_s_model_from_git(trt_pytester, repository, quiet_host):
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    entry = stored(repository)["tests"]["test_perf.py::test_a"]
    assert entry["model"]["source"] == "mlp.onnx" and entry["commit"] == git(repository, "rev-parse", "HEAD")
    (repository / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    result, tests = report(trt_pytester)
    result.assert_outcomes(failed=2)
    verdict = tests["test_perf.py::test_a"]["regression"]
    assert verdict["status"] == "regressed" and len(verdict["baseline_model_floors_ms"]) == 3
    assert len(verdict["sessions"]) == 2 and min(verdict["sessions"]) > 0.9
    result.stdout.re_match_lines([
        r"regression \(onnxruntime\): min \+\d+\.\d% vs the baseline's model timed beside it \(mlp\.onnx at commit "
        r"[0-9a-f]{12}; threshold 90%\): 3 sessions of each, timed in turns in this process, .*, both beyond the "
        r"threshold \(changed since the baseline: model [0-9a-f]{8}\.\. -> [0-9a-f]{8}\.\.\)$",
    ])


def test_a_baseline_recorded_from_an_uncommitted_model_is_not_timed_and_says_why(trt_pytester, repository, quiet_host):
    renamed = onnx.load(str(repository / "mlp.onnx"))
    renamed.doc_string = "retrained"  # the same work, other bytes than the committed file
    (repository / "mlp.onnx").write_bytes(renamed.SerializeToString())
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    assert stored(repository)["tests"]["test_perf.py::test_a"]["commit"].endswith("-dirty")
    (repository / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    result, tests = report(trt_pytester)
    result.assert_outcomes(failed=2)
    verdict = tests["test_perf.py::test_a"]["regression"]
    assert verdict["status"] == "regressed" and verdict["baseline_model_floors_ms"] == []
    assert verdict["message"].endswith(
        "; no A/B against the baseline's model: mlp.onnx at commit "
        f"{git(repository, 'rev-parse', 'HEAD')[:12]} is not the model the baseline was recorded from (recorded "
        "from uncommitted changes, or its weights are in external-data files)"
    )


def test_a_tree_with_other_uncommitted_changes_still_times_the_baseline_s_model(trt_pytester, repository, quiet_host):
    (repository / "notes.txt").write_text("untracked")
    git(repository, "add", "notes.txt")  # a staged change: the commit reads -dirty
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    assert stored(repository)["tests"]["test_perf.py::test_a"]["commit"].endswith("-dirty")
    (repository / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    _, tests = report(trt_pytester)
    assert len(tests["test_perf.py::test_a"]["regression"]["baseline_model_floors_ms"]) == 3


def test_a_model_outside_git_is_compared_with_its_stored_floor_without_a_word(trt_pytester, quiet_host):
    write_tests(trt_pytester)
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    assert "source" not in stored(trt_pytester.path)["tests"]["test_perf.py::test_a"]["model"]
    (trt_pytester.path / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    _, tests = report(trt_pytester)
    verdict = tests["test_perf.py::test_a"]["regression"]
    assert verdict["status"] == "regressed" and verdict["baseline_model_floors_ms"] == [] and "A/B" not in verdict["message"]


def test_a_changed_model_that_reads_unchanged_is_timed_beside_the_baseline_s_model_too(trt_pytester, repository, quiet_host):
    # Against a floor recorded while the host ran slow, a slower model reads unchanged at first.
    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    renamed = onnx.load(str(repository / "mlp.onnx"))
    renamed.doc_string = "re-exported"  # the same work
    (repository / "mlp.onnx").write_bytes(renamed.SerializeToString())
    result, tests = report(trt_pytester)
    result.assert_outcomes(passed=2)
    verdict = tests["test_perf.py::test_a"]["regression"]
    assert verdict["status"] == "unchanged" and len(verdict["baseline_model_floors_ms"]) == 3


def test_a_baseline_model_that_cannot_be_built_leaves_the_stored_floor_to_decide(
    trt_pytester, repository, quiet_host, monkeypatch
):
    from pytest_trt.errors import BackendError
    from pytest_trt.prepare.engines import EngineFactory

    build = EngineFactory.engine

    def failing(self, spec, backend_name):
        if spec.path is not None and "baseline-models" in spec.path.parts:
            raise BackendError("no room on the device")
        return build(self, spec, backend_name)

    trt_pytester.run(*MEASURE, "--trt-update-baselines").assert_outcomes(passed=2)
    monkeypatch.setattr(EngineFactory, "engine", failing)
    (repository / "mlp.onnx").write_bytes(slower_mlp().SerializeToString())
    result, tests = report(trt_pytester)
    result.assert_outcomes(failed=2)
    verdict = tests["test_perf.py::test_a"]["regression"]
    assert verdict["status"] == "regressed" and verdict["baseline_model_floors_ms"] == []
    assert "; no A/B against the baseline's model: the baseline's model could not be built: no room on the device" in (
        verdict["message"]
    )
