#!/usr/bin/env bash
# --trt-gpus on a GPU host, from the repository root, with TensorRT or onnxruntime-gpu importable:
# the GPUs, tests/gpu/test_gpus_gpu.py (two workers pinned to GPU 0 of any host), then
# bench/multi_gpu.py: the example suite and a 16-model zoo under -n $WORKERS --trt-gpus=all
# against -n 1 (wall times, lock waits per GPU, each test's p50 against its one-GPU run).
# Logs and JSON reports go to $OUT (default gpu-out/multi_gpu); docs/gpus.md quotes them.
#
#   OUT=gpu-out/multi_gpu WORKERS=4 BACKEND=auto ROUNDS=1 bash bench/multi_gpu.sh
#
# SKIP_BENCH=1 runs the GPU test alone (a one-GPU host); SKIP_TESTS=1 the bench alone;
# MIN_DURATION_MS is the bench's --min-duration-ms (default 2000; 1000 fits a 10-minute slot).
set -u
out=${OUT:-gpu-out/multi_gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

# onnxruntime-gpu finds cuBLAS/cuDNN through the loader's search path; where only NVIDIA's pip
# wheels hold them, add their lib folders (as bench/gpu_onnxruntime.sh does).
if "$py" -c "import onnxruntime" 2>/dev/null && ! "$py" -c "import ctypes, onnxruntime, os; d = os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'); ctypes.CDLL(os.path.join(d, 'libonnxruntime_providers_shared.so'), mode=ctypes.RTLD_GLOBAL); ctypes.CDLL(os.path.join(d, 'libonnxruntime_providers_cuda.so'))" 2>/dev/null; then
  extra=$("$py" -c "import glob, os, nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(os.path.join(d, '*', 'lib', 'lib*.so*'))})))" 2>/dev/null)
  export LD_LIBRARY_PATH="$extra:${LD_LIBRARY_PATH:-}"
  echo "LD_LIBRARY_PATH prefixed with NVIDIA's wheel folders: $extra"
fi

{
  nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version --format=csv
  "$py" -c "from pytest_trt import fingerprint; print('gpu_count', fingerprint.gpu_count())"
} 2>&1 | tee "$out/env.txt"
[ -n "${SKIP_TESTS:-}" ] || timeout 300 "$py" -m pytest -q -p no:cacheprovider tests/gpu/test_gpus_gpu.py -rA -s 2>&1 | tee "$out/tests_gpu.txt"
[ -n "${SKIP_BENCH:-}" ] || timeout 1800 "$py" bench/multi_gpu.py --backend "${BACKEND:-auto}" \
  --workers "${WORKERS:-4}" --rounds "${ROUNDS:-1}" --min-duration-ms "${MIN_DURATION_MS:-2000}" \
  --out "$out" 2>&1 | tee "$out/bench.txt"
