"""The option names the onnxruntime GPU adapters pass, checked against the real wheels.

onnxruntime rejects or ignores a provider option it does not know only when a session opens on a
GPU, so a misspelt name would pass every CPU test. Each name an adapter passes must occur as a
C string in the library that parses it:

- CUDA provider options: ``libonnxruntime_providers_cuda.so`` of onnxruntime-gpu 1.30.0;
- TensorRT provider options: ``libonnxruntime_providers_tensorrt.so`` of the same wheel;
- run options and session config keys: ``libonnxruntime.so.1.30.0`` of the same wheel;
- TensorRT-RTX provider options: the options header that onnxruntime-ep-nv-tensorrt-rtx-cu13
  0.5.0 ships (its library is no witness: the compiler inlined some comparisons with a name,
  "enable_cuda_graph" among them, leaving no string behind).

The names are those the adapters' option functions produce with every feature on, so a name
added there is checked too. The wheels (247 MB and 146 MB) are read in place from a cache folder
(tests/contract/wheels.py); with PYTEST_TRT_REQUIRE_CONTRACT=1 (CI) they are downloaded there
first, else these tests skip when they are absent.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pytest_trt.backends import onnxruntime_gpu as gpu
from pytest_trt.backends.onnxruntime_tensorrt import tensorrt_provider_options
from pytest_trt.backends.onnxruntime_trt_rtx import EP_CONTEXT_CONFIG, rtx_provider_options
from pytest_trt.specs import BuildSpec

from . import wheels
from .fake_cuda import FakeStream

ORT_GPU = ("onnxruntime-gpu==1.30.0", "onnxruntime_gpu-1.30.0")
RTX = ("onnxruntime-ep-nv-tensorrt-rtx-cu13==0.5.0", "onnxruntime_ep_nv_tensorrt_rtx_cu13-0.5.0")
CUDA_LIBRARY = "onnxruntime/capi/libonnxruntime_providers_cuda.so"
TENSORRT_LIBRARY = "onnxruntime/capi/libonnxruntime_providers_tensorrt.so"
CORE_LIBRARY = "onnxruntime/capi/libonnxruntime.so.1.30.0"
RTX_HEADER = "onnxruntime_ep_nv_tensorrt_rtx/tensorrt_rtx_provider_options.h"
RTX_LIBRARY = "onnxruntime_ep_nv_tensorrt_rtx/libonnxruntime_providers_nv_tensorrt_rtx.so"
REQUIRED = bool(os.environ.get("PYTEST_TRT_REQUIRE_CONTRACT"))

# Every build option the adapters turn into provider options, and a dynamic input's profile.
FULL_BUILD = BuildSpec(precision="fp16", options=(("optimization_level", 3), ("workspace_mb", 512)))
PROFILES = [{"x": ((1, 8), (4, 8), (16, 8))}]


def _wheel(spec: tuple[str, str]) -> Path:
    requirement, prefix = spec
    found = wheels.cached_wheel(requirement, prefix, download=REQUIRED)
    if found is None:
        pytest.skip(
            f"{requirement} is not in {wheels.cache_dir()}; set PYTEST_TRT_REQUIRE_CONTRACT=1 to download it there "
            "with pip (or PYTEST_TRT_WHEEL_CACHE to a folder holding it)"
        )
    return found


@pytest.fixture(scope="module")
def ort_wheel() -> Path:
    return _wheel(ORT_GPU)


@pytest.fixture(scope="module")
def rtx_wheel() -> Path:
    return _wheel(RTX)


def cuda_names() -> set[str]:
    names = set(gpu.cuda_provider_options("fp32", FakeStream(), cuda_graph=True))
    assert {"use_tf32", "user_compute_stream", "enable_cuda_graph"} <= names  # every feature on
    return names


def tensorrt_names() -> set[str]:
    names = set(
        tensorrt_provider_options(
            FULL_BUILD, PROFILES, FakeStream(), cuda_graph=True, timing_cache_dir=Path("t"), context_model=Path("m.onnx")
        )
    )
    assert {"trt_profile_opt_shapes", "trt_ep_context_embed_mode", "trt_timing_cache_path"} <= names
    return names


def rtx_names() -> set[str]:
    names = set(rtx_provider_options(FULL_BUILD, PROFILES, FakeStream(), cuda_graph=True))
    assert {"nv_max_workspace_size", "nv_profile_max_shapes", "user_compute_stream"} <= names
    return names


def header_option_names(header: str) -> set[str]:
    """The strings of the header's ``provider_option_names`` namespace (``constexpr const char*
    kX = "name";``)."""
    block = header.split("namespace provider_option_names", 1)[1].split("}  // namespace provider_option_names", 1)[0]
    return set(re.findall(r'constexpr\s+const\s+char\s*\*\s*k\w+\s*=\s*"([^"]+)"', block))


def test_cuda_provider_options_are_known_to_the_cuda_provider(ort_wheel: Path) -> None:
    assert wheels.missing_strings(ort_wheel, CUDA_LIBRARY, cuda_names()) == set()


def test_tensorrt_provider_options_are_known_to_the_tensorrt_provider(ort_wheel: Path) -> None:
    assert wheels.missing_strings(ort_wheel, TENSORRT_LIBRARY, tensorrt_names()) == set()


def test_run_option_and_ep_context_keys_are_known_to_onnxruntime(ort_wheel: Path) -> None:
    names = {gpu.NO_SYNC_RUN_OPTION, *EP_CONTEXT_CONFIG}
    assert wheels.missing_strings(ort_wheel, CORE_LIBRARY, names) == set()


def test_a_misspelt_option_is_caught(ort_wheel: Path) -> None:
    wrong = {"use_tf_32", "trt_engine_cache_dir", "user_compute_streams"}
    assert wheels.missing_strings(ort_wheel, TENSORRT_LIBRARY, wrong | {"trt_fp16_enable"}) == wrong
    assert wheels.missing_strings(ort_wheel, CUDA_LIBRARY, wrong) == wrong


def test_rtx_provider_options_are_declared_in_its_header(rtx_wheel: Path) -> None:
    declared = header_option_names(wheels.read_member(rtx_wheel, RTX_HEADER).decode())
    assert {"nv_max_workspace_size", "has_user_compute_stream"} <= declared  # the parse found the block
    assert rtx_names() - declared == set()


def test_rtx_library_reads_the_ep_context_keys(rtx_wheel: Path) -> None:
    assert wheels.missing_strings(rtx_wheel, RTX_LIBRARY, set(EP_CONTEXT_CONFIG)) == set()


def test_the_header_parse_rejects_a_name_it_does_not_declare(rtx_wheel: Path) -> None:
    declared = header_option_names(wheels.read_member(rtx_wheel, RTX_HEADER).decode())
    assert "trt_max_workspace_size" not in declared and "nv_max_workspace" not in declared
