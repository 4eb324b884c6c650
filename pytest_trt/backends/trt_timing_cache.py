"""Where TensorRT's timing cache lives between builds: in the engine cache, per TensorRT version
and GPU. Plain Python: the builder (tensorrt.py) loads it and hands back what it built with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pytest_trt.types import BytesStore


class TimingCacheStore(Protocol):
    """Where the timing cache lives between builds (the engine cache provides one)."""

    def load(self) -> bytes | None: ...

    def merge(self, data: bytes) -> None: ...


class EngineCacheTimingStore:
    """TensorRT's timing cache, kept in the engine cache per TensorRT version and GPU. A build
    loads it and hands back the cache it built with (old timings included), which replaces the
    stored one under the key's lock; two builds racing can lose each other's new timings, which
    costs build time only, never correctness. ``cache`` is an ``EngineCache``."""

    KIND = "timing-cache"

    def __init__(self, engine_cache: BytesStore, parts: Callable[[], dict[str, Any]]) -> None:
        self._engine_cache = engine_cache
        self._parts = parts

    def load(self) -> bytes | None:
        return self._engine_cache.get_bytes(self.KIND, self._parts())

    def merge(self, data: bytes) -> None:
        self._engine_cache.update_bytes(self.KIND, self._parts(), lambda _old: data)
