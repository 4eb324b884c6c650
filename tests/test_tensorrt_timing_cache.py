"""The TensorRT timing cache store, kept in the engine cache."""

from __future__ import annotations

from pytest_trt.backends.trt_timing_cache import EngineCacheTimingStore as _TimingCache
from pytest_trt.store.cache import EngineCache


def test_timing_cache_round_trips_through_the_engine_cache(tmp_path) -> None:
    parts = {"runtime_version": "tensorrt 11.4.0.106", "device": {"gpu_name": "H100", "compute_capability": "9.0"}}
    store = _TimingCache(EngineCache(tmp_path), lambda: parts)
    assert store.load() is None
    store.merge(b"timings-1")
    store.merge(b"timings-1+2")
    # A new session (new cache object) reads what the last build stored.
    assert _TimingCache(EngineCache(tmp_path), lambda: parts).load() == b"timings-1+2"


def test_timing_cache_is_kept_per_tensorrt_version_and_gpu(tmp_path) -> None:
    cache = EngineCache(tmp_path)
    parts = {"runtime_version": "tensorrt 11.4.0.106", "device": {"gpu_name": "H100"}}
    _TimingCache(cache, lambda: parts).merge(b"h100")
    other_gpu = dict(parts, device={"gpu_name": "H200"})
    other_version = dict(parts, runtime_version="tensorrt 10.16.0.1")
    assert _TimingCache(cache, lambda: other_gpu).load() is None
    assert _TimingCache(cache, lambda: other_version).load() is None
