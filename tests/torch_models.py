"""Small torch models for the export and reference tests (importable as "torch_models:NAME":
tests/ is on sys.path). Importing this module imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch

NOT_CALLABLE = 42


class SmallNet(torch.nn.Module):
    """Conv + ReLU + global average pool + Linear on (batch, 3, 16, 16) images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.norm = torch.nn.BatchNorm2d(8)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.norm(self.conv(image)))
        return self.head(features.mean(dim=(2, 3)))


def make_small_net() -> SmallNet:
    torch.manual_seed(0)  # the same weights in every process
    return SmallNet().eval()


class FlagNet(torch.nn.Module):
    """forward reads a Python flag: the export freezes the branch taken at export time."""

    def __init__(self, double: bool = True) -> None:
        super().__init__()
        self.double = double

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 if self.double else x * 3.0


@dataclass(frozen=True)
class ScaleConfig:
    factor: float = 2.0
    mode: str = "mul"


class ConfigNet(torch.nn.Module):
    """Settings in a config object, not in weights."""

    def __init__(self, config: ScaleConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.config.factor


class SignNet(torch.nn.Module):
    """A branch on the data: torch.export refuses it, the TorchScript tracer keeps one side."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2.0
        return x * 3.0


class TwoHeads(torch.nn.Module):
    """Two inputs, one with a default, and a dict of outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        y = self.proj(x)
        if scale is not None:
            y = y * scale
        return {"logits": y, "probs": torch.softmax(y, dim=-1)}


def make_two_heads() -> TwoHeads:
    torch.manual_seed(1)
    return TwoHeads().eval()


def make_nothing() -> int:
    return 3


class Mode(Enum):
    FAST = "fast"
    EXACT = "exact"


class SettingsNet(torch.nn.Module):
    """Plain attributes of every kind the export key reads: 1, 1.0 and True must key apart."""

    def __init__(self, count: object = 1) -> None:
        super().__init__()
        self.count = count
        self.scale = 0.1
        self.name = "net"
        self.missing = None
        self.sizes = [1, 2.0, True]
        self.pair = (3, "x")
        self.table = {"a": 1, "b": [None, 2.5]}
        self.mode = Mode.EXACT
        self.config = ScaleConfig(factor=3.0)
        self.opaque = object()  # not a plain value: not part of the key
        self.child = FlagNet(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.child(x) * self.scale


class _Holder:
    """A plain object holding a tensor, as a helper class might."""

    def __init__(self, value: float) -> None:
        self.table = torch.tensor([value, 1.0])


class HeldStateNet(torch.nn.Module):
    """State held outside parameters and buffers: a plain tensor attribute, a numpy array,
    tensors in a list, a tuple and a dict, a child module's plain tensor, an object holding one and
    a module kept in a plain list. Each changes what forward computes, so each must key the export."""

    def __init__(self) -> None:
        import numpy as np

        super().__init__()
        self.scale = torch.tensor(2.0)
        self.offsets = np.array([0.5, -0.5], np.float32)
        self.steps = [torch.tensor(1.0), torch.tensor(2.0)]
        self.pair = (torch.tensor(3.0), 4)
        self.named = {"bias": torch.tensor(0.25)}
        self.child = FlagNet(True)
        self.child.gain = torch.tensor(1.5)
        self.holder = _Holder(0.5)
        linear = torch.nn.Linear(2, 2)
        torch.nn.init.constant_(linear.weight, 0.1)
        torch.nn.init.zeros_(linear.bias)
        self.unregistered = [linear]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.child(x) * self.scale * self.child.gain + torch.from_numpy(self.offsets).sum()
        y = y + sum(self.steps) + self.pair[0] + self.named["bias"] + self.holder.table.sum()
        return y + self.unregistered[0].bias.sum()
