"""What onnxruntime and the TensorRT-RTX plugin provider say on this machine, step by step: the
library registration (with onnxruntime's log at verbose level), every execution-provider device
onnxruntime lists, and a session that asks for the provider by name. Facts for docs/gpu.md.

Usage (onnxruntime 1.24+ and onnxruntime-ep-nv-tensorrt-rtx-cu13 installed):
    python bench/trt_rtx_probe.py
"""

from __future__ import annotations

import onnxruntime as ort
import onnxruntime_ep_nv_tensorrt_rtx as plugin

from pytest_trt.backends import onnxruntime_gpu as gpu
from pytest_trt.backends.onnxruntime_trt_rtx import PROVIDER


def main() -> None:
    print("onnxruntime", ort.__version__, "plugin", plugin.__version__, plugin.get_library_path())
    with gpu.native_stderr() as log:
        ort.set_default_logger_severity(0)
        try:
            ort.register_execution_provider_library(PROVIDER, plugin.get_library_path())
            print("registered")
        except Exception as exc:
            print("register failed:", exc)
        devices = ort.get_ep_devices()
        ort.set_default_logger_severity(2)
    for d in devices:
        hw = d.device
        print(f"ep device: {d.ep_name} vendor={d.ep_vendor} hw type={hw.type} vendor_id={hw.vendor_id:#x} "
              f"device_id={hw.device_id:#x} metadata={dict(hw.metadata)}")
    print(f"log lines while registering and listing: {len(log)}; those naming the provider:")
    for line in log:
        if "RTX" in line or "NvTensorRT" in line:
            print("  ", gpu.strip_log_prefix(line))
    with gpu.native_stderr() as log:
        try:
            session = ort.InferenceSession(gpu.one_node_model(), providers=[PROVIDER], enable_fallback=0)
            print("session by name: providers", session.get_providers())
        except Exception as exc:
            print("session by name failed:", exc)
    for line in log:
        print("  ", gpu.strip_log_prefix(line))


if __name__ == "__main__":
    main()
