"""``trt_accuracy`` naming only similarity checks (``min_cosine``, ``topk``) is judged by them alone:
the default elementwise tolerance applies only where a tolerance argument is named too."""

from __future__ import annotations

import pytest

# A backend whose outputs differ from the reference as an INT8 engine's do: every element off by
# 10%, up and down in turn, so the cosine similarity stays near 0.995 while nearly every element
# is outside the default rtol=1e-3.
PERTURBED = '''
import numpy as np

from pytest_trt.backends import BackendInfo
from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend


class PerturbedBackend(OnnxRuntimeBackend):
    name = "perturbed"

    def load(self, artifact, model, build):
        runner = super().load(artifact, model, build)
        runner.backend = self.name
        exact = runner.infer

        def infer(feed):
            outputs = exact(feed)
            return {
                name: out * (1 + 0.1 * np.where(np.arange(out.size) % 2 == 0, 1, -1).reshape(out.shape)).astype(out.dtype)
                for name, out in outputs.items()
            }

        runner.infer = infer
        return runner


def _factory(context):
    return PerturbedBackend()


INFO = BackendInfo("perturbed", _factory)
'''

TEST = """
import pytest

@pytest.mark.trt_model("mlp.onnx", batch_size=16)
@pytest.mark.trt_accuracy({accuracy})
def test_int8_like(trt_engine):
    pass
"""


@pytest.fixture
def perturbed(trt_pytester):
    path = trt_pytester.path
    (path / "perturbed_backend.py").write_text(PERTURBED)
    dist = path / "perturbed_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: perturbed-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pytest_trt.backends]\nperturbed = perturbed_backend:INFO\n")
    return trt_pytester


@pytest.mark.parametrize(("accuracy", "outcome"), [
    ("min_cosine=0.99", {"passed": 1}),
    ("outputs={'y': {'min_cosine': 0.99}}", {"passed": 1}),
    ("min_cosine=0.999", {"failed": 1}),  # the similarity check still gates
    ("min_cosine=0.99, rtol=1e-3", {"failed": 1}),  # a tolerance named with it applies
    ("", {"failed": 1}),  # no similarity check: the default tolerance
])
def test_similarity_checks_named_alone_gate_alone(perturbed, accuracy, outcome):
    perturbed.pytester.makepyfile(test_similar=TEST.format(accuracy=accuracy))
    result = perturbed.run_subprocess("--trt-backend=perturbed")
    result.assert_outcomes(**outcome)
    if accuracy == "":
        result.stdout.fnmatch_lines(["*accuracy: output 'y': * of 160 elements outside rtol=1e-3 atol=1e-5*"])
