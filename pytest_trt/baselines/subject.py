"""What ran for one test: the identity baselines are keyed and compared by, and reports show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TestSubject:
    """What ran for one test: the identity baselines key and compare by."""

    __test__ = False

    nodeid: str
    module: str  # test file relative to the rootdir, with forward slashes
    backend: str
    runtime_version: str
    model: dict[str, Any]  # path, content_hash
    build: dict[str, Any]  # BuildSpec.as_dict()
    workload: dict[str, Any]  # input shapes/dtypes, batch, precision, output signature
    engine: dict[str, Any] = field(default_factory=dict)  # how obtained: built/loaded, seconds
    feed: dict[str, Any] = field(default_factory=dict)  # per input: where its values came from, min, max
