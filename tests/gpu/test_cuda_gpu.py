"""The CUDA layer on a real GPU: copies, events against torch's, graphs, error mapping."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_trt.cuda.runtime import CudaError, CudaPython, EventTimedLoop

pytestmark = pytest.mark.needs_gpu


@pytest.fixture(scope="module")
def api() -> CudaPython:
    return CudaPython()


@pytest.fixture
def stream(api: CudaPython):
    s = api.create_stream()
    yield s
    s.close()


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.uint8])
def test_buffers_round_trip_through_the_device(api: CudaPython, stream, dtype) -> None:
    data = (np.arange(3 * 1000) % 251).astype(dtype).reshape(3, 1000)
    host_in, host_out = api.pinned_empty(data.shape, data.dtype), api.pinned_empty(data.shape, data.dtype)
    device = api.device_alloc(data.nbytes)
    try:
        host_in.array[...] = data
        api.copy_htod_async(device.ptr, host_in.array, stream)
        api.copy_dtoh_async(host_out.array, device.ptr, stream)
        stream.synchronize()
        np.testing.assert_array_equal(host_out.array, data)
    finally:
        device.free()
        host_in.free()
        host_out.free()


def test_device_properties_describe_the_gpu(api: CudaPython) -> None:
    props = api.device_properties(0)
    assert props["sm_count"] > 0
    assert props["compute_capability"].count(".") == 1
    assert len(props["uuid"]) == 32 and props["uuid"] != "0" * 32
    assert props["gpu_name"]


def test_event_timer_agrees_with_torch_events_on_the_same_stream(api: CudaPython, stream) -> None:
    torch = pytest.importorskip("torch")
    ext = torch.cuda.ExternalStream(stream.handle)
    a = torch.randn(2048, 2048, device="cuda", dtype=torch.float16)
    start, end = api.create_event(), api.create_event()
    ratios = []
    with torch.cuda.stream(ext):
        for _ in range(20):
            t_start, t_end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t_start.record(ext)
            start.record(stream)
            for _ in range(4):
                a @ a
            end.record(stream)
            t_end.record(ext)
            end.synchronize()
            t_end.synchronize()
            ratios.append(api.elapsed_ms(start, end) / t_start.elapsed_time(t_end))
    # Ours sits inside torch's pair, so it can only be a little shorter; a wrong unit or wrong
    # event would be off by orders of magnitude.
    assert 0.8 < float(np.median(ratios)) <= 1.01


def test_graph_capture_replays_the_captured_work(api: CudaPython, stream) -> None:
    torch = pytest.importorskip("torch")
    ext = torch.cuda.ExternalStream(stream.handle)
    x = torch.zeros(1024, device="cuda")
    torch.cuda.synchronize()
    stream.begin_capture()
    with torch.cuda.stream(ext):
        x.add_(1.0)
    graph = stream.end_capture()
    try:
        stream.synchronize()
        assert float(x.sum()) == 0.0  # captured, not run
        for _ in range(5):
            graph.launch(stream)
        stream.synchronize()
        assert torch.all(x == 5.0)
    finally:
        graph.close()


def test_cuda_errors_name_the_call_and_the_error(api: CudaPython) -> None:
    with pytest.raises(CudaError) as excinfo:
        api.device_alloc(1 << 50)
    assert excinfo.value.call == "cudaMalloc"
    assert excinfo.value.error == "cudaErrorMemoryAllocation"
    never_recorded = api.create_event(), api.create_event()
    with pytest.raises(CudaError, match="cudaEventElapsedTime failed: cudaError"):
        api.elapsed_ms(*never_recorded)


@pytest.mark.parametrize("cuda_graph", [False, True])
@pytest.mark.parametrize("sync", ["blocking", "spin"])
def test_event_timed_loop_times_each_phase(api: CudaPython, stream, cuda_graph: bool, sync: str) -> None:
    torch = pytest.importorskip("torch")
    ext = torch.cuda.ExternalStream(stream.handle)
    x = torch.zeros(1 << 20, device="cuda")
    host_in, host_out = api.pinned_empty((1 << 20,), np.float32), api.pinned_empty((1 << 20,), np.float32)
    host_in.array[...] = 2.0

    def enqueue() -> bool:
        with torch.cuda.stream(ext):
            x.mul_(0.5)
        return True

    loop = EventTimedLoop(
        api, stream, enqueue,
        inputs=[(x.data_ptr(), host_in.array)], outputs=[(host_out.array, x.data_ptr())],
        transfers=True, sync=sync, cuda_graph=cuda_graph,
    )
    try:
        times = loop.run(30)
        assert loop.mode["cuda_graph"] is cuda_graph and loop.warnings == []
        assert len(times.latency) == len(times.compute) == len(times.h2d) == len(times.d2h) == 30
        for lat, a, b, c in zip(times.latency, times.h2d, times.compute, times.d2h, strict=True):
            assert lat == pytest.approx(a + b + c) and min(a, b, c) > 0
        assert times.span_ms >= sum(times.latency) * 0.99  # one stream: iterations do not overlap
        np.testing.assert_array_equal(host_out.array, 1.0)  # H2D 2.0, halved, D2H
    finally:
        loop.close()
        host_in.free()
        host_out.free()
