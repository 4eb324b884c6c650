"""A PyTorch model in: exported to ONNX by the plugin (once, then from the engine cache), built,
and compared with the torch module itself. Skipped where PyTorch is not installed."""

import pytest

torch = pytest.importorskip("torch", reason="the torch example needs PyTorch: pip install 'pytest-trt[torch]'")


class TinyNet(torch.nn.Module):
    """Two conv blocks and a linear head on 32x32 RGB images."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, kernel_size=3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, kernel_size=3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
        )
        self.head = torch.nn.Linear(16, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image).flatten(1))


def make_model() -> TinyNet:
    torch.manual_seed(0)  # the same weights every run: the export is cached by them
    return TinyNet().eval()


# Exported at batch 2 with a dynamic batch axis, gated at batch 8; reference="torch" compares the
# engine with the module, so a wrong export fails here (and the failure says which step diverged).
@pytest.mark.trt_model(
    torch=make_model,
    example_inputs={"image": (2, 3, 32, 32)},
    dynamic={"image": {0: "batch"}},
    batch_size=8,
    reference="torch",
    intra_op_threads=1,
)
@pytest.mark.trt_accuracy(rtol=1e-3, atol=1e-5)
@pytest.mark.trt_perf(max_latency_ms=100, percentile=99, backend="onnxruntime")
@pytest.mark.trt_perf(max_latency_ms=0.3, percentile=99, backend="tensorrt")
def test_tinynet(trt_engine):
    out = trt_engine.infer(trt_engine.sample_inputs())
    assert out["output"].shape == (8, 10)
