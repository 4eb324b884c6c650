"""The interleaved A/B on a real GPU: fresh onnxruntime-cuda sessions of the baseline's model and
of the new one, timed in turns (timing/rotation.py) on the GPU's own clock, and a changed model in
git judged that way through a real run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_throughput_gpu import _skip_unless_available

from pytest_trt import backends
from pytest_trt.model import load_model
from pytest_trt.specs import BuildSpec, MeasureSettings
from pytest_trt.timing.rotation import measure_rotation
from pytest_trt.types import BackendContext

pytestmark = pytest.mark.needs_gpu
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
SHAPE = (8, 3, 32, 32)


def test_sessions_of_two_models_take_turns_on_the_gpu(tmp_path):
    _skip_unless_available("onnxruntime-cuda")
    copy = onnx.load(str(EXAMPLES / "cnn.onnx"))
    copy.doc_string = "the same work in other bytes"
    onnx.save(copy, str(tmp_path / "copy.onnx"))
    backend = backends.create("onnxruntime-cuda", BackendContext())
    build = BuildSpec(shapes=(("image", SHAPE),))
    sides = []
    for path in (EXAMPLES / "cnn.onnx", tmp_path / "copy.onnx"):
        model = load_model(path)
        sides.append((backend.build(model, build), model))
    runners = [backend.load(*sides[i], build) for i in (1, 0, 0, 1)]
    feed = {runners[0].inputs[0].name: np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)}
    try:
        session = runners[0].timed_session(feed, MeasureSettings())
        assert session.clock == "cuda-events"  # the GPU's own clock, as the A/B times it there
        session.close()
        timed = measure_rotation(runners, feed, MeasureSettings())
    finally:
        for runner in runners:
            runner.close()
    floors = [t.floor_ms for t in timed]
    print(f"\nfloors of B A A B, timed in turns on the GPU (ms): {floors}")
    assert all(len(t.samples_ms) >= 20 for t in timed)
    assert max(floors) / min(floors) < 1.5, floors  # the same work on one GPU, timed in the same window


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)


TEST = """
import pytest

@pytest.mark.trt_model("cnn.onnx", shapes={"image": (8, 3, 32, 32)})
@pytest.mark.trt_perf(backend="onnxruntime-cuda")
def test_cnn(trt_engine):
    pass
"""


def test_a_changed_model_in_git_is_timed_beside_the_baseline_s_on_the_gpu(trt_pytester):
    _skip_unless_available("onnxruntime-cuda")
    if shutil.which("git") is None:
        pytest.skip("needs git on PATH: the baseline's model is read back from git")
    root = trt_pytester.path
    shutil.copy(EXAMPLES / "cnn.onnx", root / "cnn.onnx")
    trt_pytester.pytester.makepyfile(test_cnn=TEST)
    for args in (("init", "-q"), ("config", "user.email", "ci@example.com"), ("config", "user.name", "ci"),
                 ("add", "cnn.onnx", "test_cnn.py"), ("commit", "-q", "-m", "model")):
        _git(root, *args)
    # The default measurement (the suite's fast one takes 5 iterations, too few for any comparison),
    # with a threshold no shared GPU's noise reaches.
    run = ("--trt-backend=onnxruntime-cuda", "--trt-regression-threshold=0.9")
    trt_pytester.run(*run, "--trt-update-baselines", fast=False).assert_outcomes(passed=1)
    copy = onnx.load(str(root / "cnn.onnx"))
    copy.doc_string = "re-exported"  # the same work: the A/B must read it unchanged
    onnx.save(copy, str(root / "cnn.onnx"))
    path = root / "trt.json"
    trt_pytester.run(*run, f"--trt-report-json={path}", fast=False).assert_outcomes(passed=1)
    (test,) = json.loads(path.read_text())["tests"]
    verdict = test["regression"]
    print(f"\nA/B on the GPU: {verdict['message']}")
    assert verdict["status"] == "unchanged" and len(verdict["baseline_model_floors_ms"]) == 3
    assert "3 sessions of each, timed in turns in this process" in verdict["message"]
