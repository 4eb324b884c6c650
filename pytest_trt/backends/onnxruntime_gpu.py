"""What onnxruntime's GPU execution providers share (CUDA, TensorRT, TensorRT-RTX).

- Availability, decided in a fixed order with each failure in its own words: onnxruntime is
  importable; it is a GPU build with the provider compiled in (not the CPU wheel); the CUDA
  driver sees a GPU (``cuda.runtime.available``); the provider really comes up on a one-node session,
  since onnxruntime drops a provider whose libraries fail to load with only a log line.
- Sessions that never fall back: a provider that fails is an error, not a silent CPU run.
- ``OrtGpuRunner``: ``infer`` through onnxruntime's own copies; ``timed_session`` binds device
  buffers by pointer (IOBinding), runs the provider on a CUDA stream the plugin owns
  (``user_compute_stream``) and times the runs with CUDA events on that stream
  (``cuda.runtime.EventTimedLoop``: H2D from pinned host buffers, compute, D2H), as TensorRT is timed.

The provider-option and run-option names passed here are checked against the strings of the
real provider libraries by tests/contract/test_ort_provider_contract.py.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import importlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pytest_trt.backends.base import Availability, BackendError, BackendUnavailable, IterationTimes, TensorSpec
from pytest_trt.backends.feeds import check_feed
from pytest_trt.backends.layer_profile import PROFILE_RUNS, LayerProfile, profile_ort_session
from pytest_trt.cuda import runtime as cuda_layer
from pytest_trt.cuda.runtime import CudaApi, DeviceMemory, EventTimedLoop, PinnedArray, Stream
from pytest_trt.store import workdirs

if TYPE_CHECKING:
    from pytest_trt.specs import BuildSpec, MeasureSettings
    from pytest_trt.types import BackendContext

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
GPU_WHEEL = "onnxruntime-gpu"
# Run option: Run() returns once the work is enqueued, instead of synchronizing the provider's
# stream; the events on that stream then bracket the GPU work, not a host wait.
NO_SYNC_RUN_OPTION = "disable_synchronize_execution_providers"
# onnxruntime's CUDA graph is captured on the third run of a session (two regular runs first).
GRAPH_CAPTURE_RUNS = 3
# The timed path must reproduce infer()'s outputs this closely (only kernel choice may differ
# between two sessions of one model); it exists to catch outputs never written.
CHECK_RTOL, CHECK_ATOL = 1e-2, 1e-3
_LOG_PREFIX = re.compile(r"^.*?\[[VIEWF]:onnxruntime:[^\]]*\]\s*")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def import_onnxruntime() -> ModuleType:
    return importlib.import_module("onnxruntime")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def onnxruntime_status() -> tuple[ModuleType | None, Availability]:
    """The onnxruntime module, or why it cannot be imported."""
    try:
        return import_onnxruntime(), Availability(True)
    except ImportError as exc:
        return None, Availability(False, f"onnxruntime is not importable ({exc}); pip install {GPU_WHEEL}")


def provider_compiled_in(ort: ModuleType, provider: str) -> Availability:
    """Whether this onnxruntime build has ``provider`` at all (the CPU wheel has none of the GPU ones)."""
    providers = list(ort.get_available_providers())
    if provider in providers:
        return Availability(True)
    have = ", ".join(providers)
    gpu, cpu = package_version(GPU_WHEEL), package_version("onnxruntime")
    if gpu is None:
        return Availability(
            False,
            f"{GPU_WHEEL} is not installed: onnxruntime {ort.__version__} has no {provider} "
            f"(its providers: {have}); pip install {GPU_WHEEL}",
        )
    if cpu is not None:
        return Availability(
            False,
            f"onnxruntime {ort.__version__} has no {provider}: onnxruntime {cpu} and {GPU_WHEEL} {gpu} are both "
            f"installed and share one folder, and the CPU one won; pip uninstall -y onnxruntime {GPU_WHEEL}, "
            f"then pip install {GPU_WHEEL}",
        )
    return Availability(False, f"{GPU_WHEEL} {gpu} is installed, but its onnxruntime {ort.__version__} has no {provider} (its providers: {have})")


def gpu_status(cuda_available: Callable[[], Availability]) -> Availability:
    found = cuda_available()
    return found if found.ok else Availability(False, f"no GPU: {found.reason}")


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 meanwhile (onnxruntime's log goes
    there); the lines are in the yielded list once the block ends."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def strip_log_prefix(line: str) -> str:
    """A line of onnxruntime's log without its colour codes, timestamp and source location."""
    return _LOG_PREFIX.sub("", _COLOUR.sub("", line)).strip()


def logged_reason(lines: Sequence[str]) -> str:
    """The last error (else warning) onnxruntime logged, without its timestamp and source prefix."""
    for marks in (("[E:", "[F:"), ("[W:",)):
        found = [line for line in lines if any(mark in line for mark in marks)]
        if found:
            return strip_log_prefix(found[-1])
    return ""


def library_load_error(ort: ModuleType, library: str) -> str:
    """Why the dynamic loader refuses a provider library of this onnxruntime, or "" if it loads.
    onnxruntime's own dlopen of it fails for the same reason in this process."""
    if ort.__file__ is None:  # not loaded from a folder: no provider libraries to try
        return ""
    capi = Path(ort.__file__).parent / "capi"
    # Provider libraries take Provider_GetHost from this one, which onnxruntime loads global.
    # A CPU build has none; loading the provider library then says what is missing.
    with contextlib.suppress(OSError):
        ctypes.CDLL(str(capi / "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL)
    try:
        ctypes.CDLL(str(capi / library))
    except OSError as exc:
        return str(exc)
    return ""


def one_node_model() -> bytes:
    """y = x + x on a float vector: enough for a provider to claim a node and build."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "pytest_trt_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def provider_comes_up(ort: ModuleType, provider: str, providers: list[Any], library: str) -> Availability:
    """Open a one-node session with ``providers`` and check that ``provider`` is active in it.
    Where it is not, the dynamic loader's words about ``library`` say why most precisely
    (onnxruntime itself says "Please install TensorRT libraries", or only logs a line)."""
    failure = ""
    # onnxruntime's own notes about an unknown provider would only repeat what is reported here.
    with native_stderr() as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            session = open_session(ort, one_node_model(), quiet_options(ort), providers)
        except BackendError as exc:
            failure = str(exc)
        else:
            if provider in session.get_providers():
                return Availability(True)
    loader = library_load_error(ort, library)
    if loader:
        return Availability(False, f"onnxruntime cannot load {library}: {loader}")
    if failure:
        return Availability(False, failure)
    return Availability(False, f"onnxruntime did not enable {provider}: {logged_reason(log) or 'no reason logged'}")


# Set only while a runner opens its profiling session: every provider's opener makes its
# options through quiet_options, which turns onnxruntime's profiler on for that one session.
_PROFILE_PREFIX: contextvars.ContextVar[str | None] = contextvars.ContextVar("profile_prefix", default=None)


def quiet_options(ort: ModuleType) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: optimizer notes would flood the test output
    prefix = _PROFILE_PREFIX.get()
    if prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = prefix
    return options


def open_session(
    ort: ModuleType, source: str | bytes, options: Any, providers: list[Any] | None, *, fusions_off: Sequence[str] = ()
) -> Any:
    """An InferenceSession that never falls back to other providers: onnxruntime's Python
    wrapper otherwise retries on CPU after an execution-provider error, printing only a note.
    ``providers`` None: the plugin providers already added to ``options``. ``fusions_off``:
    graph transformers (by onnxruntime's name) not to run."""
    extra: dict[str, Any] = {} if providers is None else {"providers": providers}
    if fusions_off:
        extra["disabled_optimizers"] = list(fusions_off)
    try:
        return ort.InferenceSession(source, sess_options=options, enable_fallback=0, **extra)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument/RuntimeError types
        raise BackendError(f"onnxruntime could not create a session: {exc}") from None


def require_provider(session: Any, provider: str, model_path: Path) -> None:
    active = session.get_providers()
    if provider not in active:
        raise BackendError(
            f"{model_path}: onnxruntime did not enable {provider} (active: {', '.join(active)}); "
            "check the CUDA/TensorRT libraries that provider needs"
        )


def stream_options(stream: Stream | None) -> dict[str, str]:
    """Provider options that run a provider on ``stream`` (a stream the plugin owns)."""
    if stream is None:
        return {}
    return {"has_user_compute_stream": "1", "user_compute_stream": str(int(stream.handle))}


def cuda_provider_options(
    precision: str, stream: Stream | None, *, cuda_graph: bool = False, device: int = 0
) -> dict[str, str]:
    """The CUDA provider's options on GPU ``device``. It computes fp32 matmuls in TF32 by
    default; "fp32" means fp32 on every backend, so TF32 is on only for precision="tf32"."""
    options = {"device_id": str(device), "use_tf32": "1" if precision == "tf32" else "0", **stream_options(stream)}
    if cuda_graph:
        options["enable_cuda_graph"] = "1"
    return options


@contextlib.contextmanager
def tf32_policy(precision: str) -> Iterator[None]:
    """For providers with no TF32 option (TensorRT's builders enable TF32 by default): NVIDIA's
    libraries read NVIDIA_TF32_OVERRIDE=0 as "never TF32", so it is set while they build an
    fp32 engine. A value the user set is left alone."""
    if precision == "tf32" or "NVIDIA_TF32_OVERRIDE" in os.environ:
        yield
        return
    os.environ["NVIDIA_TF32_OVERRIDE"] = "0"
    try:
        yield
    finally:
        os.environ.pop("NVIDIA_TF32_OVERRIDE", None)


def infer_lib_version(library: str) -> str | None:
    """``getInferLibVersion()`` of a TensorRT library as major.minor.patch, or None."""
    try:
        lib = ctypes.CDLL(library)
        number = int(lib.getInferLibVersion())
    except (OSError, AttributeError):
        return None
    return f"{number // 10000}.{(number // 100) % 100}.{number % 100}"


_Backend = TypeVar("_Backend", bound="GpuProviderBackend")


class GpuProviderBackend:
    """What the onnxruntime GPU backends share: the onnxruntime module and CUDA layer they run on
    (test doubles may stand in for either), availability decided once by ``_decide``, and the
    GPU's fingerprint. ``gpu``: the device index its sessions, buffers and streams use."""

    def __init__(
        self, cuda_api: str = "", *, ort: ModuleType | None = None, cuda: CudaApi | None = None, gpu: int = 0
    ) -> None:
        self._cuda_api_name = cuda_api
        self.gpu = gpu
        self._ort = ort
        self._cuda = cuda
        self._availability: Availability | None = None

    @classmethod
    def for_session(cls: type[_Backend], context: BackendContext) -> _Backend:
        """The backend as a session runs it: the CUDA binding the options name, on the
        process's GPU."""
        return cls(cuda_api=context.cuda_api, gpu=context.gpu)

    def _onnxruntime(self) -> tuple[ModuleType | None, Availability]:
        """The onnxruntime module (imported once, kept for the other checks), or None and why it
        cannot be imported."""
        if self._ort is None:
            self._ort, found = onnxruntime_status()
            return self._ort, found
        return self._ort, Availability(True)

    def availability(self) -> Availability:
        if self._availability is None:
            self._availability = self._decide()
        return self._availability

    def _decide(self) -> Availability:
        raise NotImplementedError

    def _cuda_available(self) -> Availability:
        if self._cuda is not None:
            return self._cuda.available()
        return cuda_layer.available(self._cuda_api_name)

    def _cuda_layer(self) -> CudaApi:
        if self._cuda is None:
            self._cuda = cuda_layer.get_cuda_api(self._cuda_api_name, self.gpu)
        return self._cuda

    def _require(self) -> ModuleType:
        status = self.availability()
        if not status.ok:
            raise BackendUnavailable(status.reason)
        assert self._ort is not None
        return self._ort

    def device_fingerprint(self, build: BuildSpec) -> dict[str, Any]:
        return gpu_fingerprint(self._cuda_layer())


def gpu_fingerprint(cuda: CudaApi) -> dict[str, Any]:
    """The GPU facts an artifact depends on, read from the device through the CUDA driver."""
    props = cuda.device_properties(cuda.device)
    return {key: props[key] for key in ("gpu_name", "compute_capability", "sm_count")}


# ---- the runner ---------------------------------------------------------------------------------

# open_session(stream, cuda_graph) -> an InferenceSession whose provider runs on ``stream``
SessionOpener = Callable[[Stream, bool], Any]


@dataclass
class _Buffer:
    name: str
    device: DeviceMemory
    host: PinnedArray

    @property
    def array(self) -> np.ndarray:
        return self.host.array


class _Buffers:
    """Device and pinned host buffers for one feed's inputs and outputs."""

    def __init__(self, cuda: CudaApi, arrays: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        self.device = cuda.device
        self.inputs: list[_Buffer] = []
        self.outputs: list[_Buffer] = []
        try:
            for name, array in arrays.items():
                buffer = self._make(cuda, name, array)
                buffer.array[...] = array
                self.inputs.append(buffer)
            for name, array in outputs.items():
                self.outputs.append(self._make(cuda, name, array))
        except BaseException:
            self.free()
            raise

    @staticmethod
    def _make(cuda: CudaApi, name: str, like: np.ndarray) -> _Buffer:
        host = cuda.pinned_empty(like.shape, like.dtype)
        try:
            return _Buffer(name, cuda.device_alloc(int(like.nbytes)), host)
        except BaseException:
            host.free()
            raise

    def bind(self, session: Any) -> Any:
        binding = session.io_binding()
        for buffer in self.inputs:
            binding.bind_input(buffer.name, "cuda", self.device, buffer.array.dtype.type, list(buffer.array.shape), buffer.device.ptr)
        for buffer in self.outputs:
            binding.bind_output(buffer.name, "cuda", self.device, buffer.array.dtype.type, list(buffer.array.shape), buffer.device.ptr)
        return binding

    def free(self) -> None:
        for buffer in self.inputs + self.outputs:
            buffer.device.free()
            buffer.host.free()
        self.inputs, self.outputs = [], []


def _reproduces(actual: np.ndarray, expected: np.ndarray) -> bool:
    if actual.shape != expected.shape:
        return False
    if np.issubdtype(expected.dtype, np.floating):
        return bool(np.allclose(actual, expected, rtol=CHECK_RTOL, atol=CHECK_ATOL, equal_nan=True))
    return bool(np.array_equal(actual, expected))


class OrtTimedSession:
    """The event-timed loop over IOBinding runs, plus the buffers and session it keeps alive."""

    clock = "cuda-events"

    def __init__(self, loop: EventTimedLoop, buffers: _Buffers, stream: Stream, session: Any) -> None:
        self._loop = loop
        self._buffers = buffers
        self._stream = stream
        self._session = session  # a CUDA-graph session lives as long as the graph it captured
        self.mode = loop.mode
        self.warnings = loop.warnings

    def run(self, iterations: int) -> IterationTimes:
        try:
            return self._loop.run(iterations)
        except BackendError:
            raise
        except Exception as exc:  # onnxruntime's errors, raised from inside the enqueue
            raise BackendError(f"onnxruntime failed during a timed run: {exc}") from None

    def close(self) -> None:
        self._stream.synchronize()
        self._loop.close()
        self._buffers.free()
        self._session = None


class OrtGpuRunner:
    """One onnxruntime session on a GPU provider, on a stream the runner owns."""

    # device_memory() counts what the GPU holds beyond its use when this session opened: for
    # runners opened one after the other, the first one's count holds them all.
    device_memory_since_open = True

    def __init__(
        self,
        backend: str,
        ort: ModuleType,
        cuda: CudaApi,
        open_session: SessionOpener,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
    ) -> None:
        self.backend = backend
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._ort = ort
        self._cuda = cuda
        # The GPU its timings belong to (timing/lock.py, timing/gpu_clock.py): the CUDA layer's.
        self.device = f"cuda:{cuda.device}"
        self._open = open_session
        self._names = [spec.name for spec in self.outputs]
        self._stream = cuda.create_stream()
        self._memory_before = cuda.memory_in_use()
        try:
            self._session = open_session(self._stream, False)
        except BaseException:
            self._stream.close()
            raise

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        checked = check_feed(self.inputs, feed)
        try:
            values = self._session.run(self._names, checked)
        except Exception as exc:
            raise BackendError(f"infer: onnxruntime failed: {exc}") from None
        return dict(zip(self._names, values, strict=True))

    def device_memory(self) -> int:
        """The GPU memory in use now beyond what it was before this session opened (its weights,
        its arena as grown so far, its CUDA graphs): anything else this process allocated in the
        meantime is counted too."""
        return max(0, self._cuda.memory_in_use() - self._memory_before)

    def _run_options(self, synchronize: bool) -> Any:
        options = self._ort.RunOptions()
        if not synchronize:
            options.add_run_config_entry(NO_SYNC_RUN_OPTION, "1")
        return options

    def _graph_session(self, warnings: list[str]) -> Any | None:
        """A session with onnxruntime's CUDA graph on, or None (with the reason) where the model
        does not allow it (a node off the GPU, control flow)."""
        try:
            return self._open(self._stream, True)
        except BackendError as exc:
            warnings.append(f"CUDA graph not used ({exc}); timed plain runs instead")
            return None

    def _check(self, session: Any, binding: Any, buffers: _Buffers, expected: Mapping[str, np.ndarray], synchronize: bool) -> bool:
        """One run of the timed path into outputs filled with 0xFF bytes first (NaN, -1): does it
        reproduce ``expected``? It would not if onnxruntime's work ran off the plugin's stream."""
        cuda, stream = self._cuda, self._stream
        for out in buffers.outputs:
            out.array.reshape(-1).view(np.uint8)[:] = 0xFF
            cuda.copy_htod_async(out.device.ptr, out.array, stream)
        session.run_with_iobinding(binding, self._run_options(synchronize))
        for out in buffers.outputs:
            cuda.copy_dtoh_async(out.array, out.device.ptr, stream)
        stream.synchronize()
        return all(_reproduces(out.array, expected[out.name]) for out in buffers.outputs)

    def timed_session(self, feed: Mapping[str, np.ndarray], settings: MeasureSettings) -> OrtTimedSession:
        checked = check_feed(self.inputs, feed)
        expected = self.infer(checked)  # also sizes the output buffers
        warnings: list[str] = []
        graph_session = self._graph_session(warnings) if settings.cuda_graph else None
        graph = graph_session is not None
        session = graph_session if graph_session is not None else self._session
        buffers = _Buffers(self._cuda, checked, expected)
        try:
            binding = buffers.bind(session)
            for buffer in buffers.inputs:
                self._cuda.copy_htod_async(buffer.device.ptr, buffer.array, self._stream)
            self._stream.synchronize()
            if graph:
                for _ in range(GRAPH_CAPTURE_RUNS):
                    session.run_with_iobinding(binding, self._run_options(True))
            synchronize = not self._check(session, binding, buffers, expected, synchronize=False)
            if synchronize:
                if not self._check(session, binding, buffers, expected, synchronize=True):
                    raise BackendError(
                        f"{self.backend}: a run on device buffers bound by pointer did not reproduce "
                        "onnxruntime's own outputs for the same feed"
                    )
                warnings.append(
                    "onnxruntime's work did not all run on the plugin's CUDA stream; each timed run "
                    "waits for the provider to synchronize"
                )
            run_options = self._run_options(synchronize)

            def enqueue() -> bool:
                session.run_with_iobinding(binding, run_options)
                return True

            loop = EventTimedLoop(
                self._cuda,
                self._stream,
                enqueue,
                inputs=[(b.device.ptr, b.array) for b in buffers.inputs],
                outputs=[(b.array, b.device.ptr) for b in buffers.outputs],
                transfers=settings.transfers,
                sync=settings.sync,
                cuda_graph=False,  # onnxruntime captures and replays its own graph
            )
        except BackendError:
            buffers.free()
            raise
        except Exception as exc:
            buffers.free()
            raise BackendError(f"{self.backend}: onnxruntime failed preparing the timed runs: {exc}") from None
        loop.mode.update(
            {"backend": self.backend, "cuda_graph": graph, "cuda_graph_requested": settings.cuda_graph, "provider_sync": synchronize}
        )
        loop.warnings.extend(warnings)
        return OrtTimedSession(loop, buffers, self._stream, session if graph else None)

    def profile_layers(self, feed: Mapping[str, np.ndarray], runs: int = PROFILE_RUNS) -> LayerProfile:
        """Per-node times from a second session of the same provider with onnxruntime's profiler
        on, run on host arrays (the timed session is left as it is)."""
        checked = check_feed(self.inputs, feed)
        names = self._names
        with workdirs.scratch("pytest-trt-profile-") as folder:
            token = _PROFILE_PREFIX.set(str(folder / "ort"))
            try:
                session = self._open(self._stream, False)
            finally:
                _PROFILE_PREFIX.reset(token)
            try:
                return profile_ort_session(session, lambda s: s.run(names, checked), runs)
            except Exception as exc:  # onnxruntime's own error types
                raise BackendError(f"profiling layers: onnxruntime failed: {exc}") from None

    def close(self) -> None:
        if self._session is None:
            return
        self._stream.synchronize()
        self._session = None
        self._stream.close()
