#!/usr/bin/env bash
# The onnxruntime GPU backends on a GPU host, from the repository root, with onnxruntime-gpu (and,
# optionally, onnxruntime-ep-nv-tensorrt-rtx-cu13) importable: what each backend's availability
# says, tests/gpu, the demo suite on onnxruntime-cuda (and what the other two backends report),
# and bench/ort_cuda_events.py. Logs go to $OUT (default gpu-out/); docs/gpu.md quotes them.
set -u
out=${OUT:-gpu-out}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
plugin=(-p pytest_trt.plugin -p no:cacheprovider)

# onnxruntime-gpu finds cuBLAS/cuDNN through the loader's search path; where only NVIDIA's pip
# wheels hold them, add their lib folders.
if ! "$py" -c "import ctypes, onnxruntime, os; d = os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'); ctypes.CDLL(os.path.join(d, 'libonnxruntime_providers_shared.so'), mode=ctypes.RTLD_GLOBAL); ctypes.CDLL(os.path.join(d, 'libonnxruntime_providers_cuda.so'))" 2>/dev/null; then
  extra=$("$py" -c "import glob, os, nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(os.path.join(d, '*', 'lib', 'lib*.so*'))})))")
  export LD_LIBRARY_PATH="$extra:${LD_LIBRARY_PATH:-}"
  echo "LD_LIBRARY_PATH prefixed with NVIDIA's wheel folders: $extra"
fi

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  "$py" - <<'EOF'
import onnxruntime
from pytest_trt import backends, cuda
print("onnxruntime", onnxruntime.__version__, onnxruntime.__file__, onnxruntime.get_available_providers())
print("device", cuda.device_properties(0))
for name in ("onnxruntime-cuda", "onnxruntime-tensorrt", "onnxruntime-trt-rtx"):
    backend = backends.create(name)
    status = backend.availability()
    print(f"{name}: ok={status.ok} reason={status.reason!r}")
    if status.ok:
        print(f"  runtime {backend.runtime_version()}")
EOF
  "$py" -c "import onnxruntime_ep_nv_tensorrt_rtx" 2>/dev/null && timeout 120 "$py" bench/trt_rtx_probe.py
} 2>&1 | tee "$out/env.txt"

timeout 240 "$py" -m pytest -q -p no:cacheprovider tests/gpu -rA 2>&1 | tee "$out/tests_gpu.txt"
timeout 180 "$py" -m pytest "${plugin[@]}" examples --trt-backend=onnxruntime-cuda 2>&1 | tee "$out/examples_cuda.txt"
{
  for name in onnxruntime-tensorrt onnxruntime-trt-rtx; do
    timeout 60 "$py" -m pytest "${plugin[@]}" -q examples/test_mlp.py --trt-backend=$name
  done
  timeout 60 "$py" -m pytest "${plugin[@]}" examples/test_mlp.py --trt-require-gpu
} 2>&1 | tee "$out/examples_other.txt"
timeout 240 "$py" bench/ort_cuda_events.py --json "$out/bench.json" 2>&1 | tee "$out/bench.txt"
