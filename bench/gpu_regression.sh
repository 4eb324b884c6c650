#!/usr/bin/env bash
# Regression detection on a GPU backend, as CI meets it, from the repository root on a GPU host
# with onnxruntime-gpu (and nvidia-ml-py, for the SM clock) importable: the GPU's facts and
# clocks, tests/gpu, the demo suite on onnxruntime-cuda (-v: the SM clock of each test), then
# bench/regression_processes.py on onnxruntime-cuda with the MatMul chains (20, 21, 22 blocks)
# for what is left of SECONDS_BUDGET (default 480 s). docs/gpu.md quotes its output.
#
#   OUT=gpu-out SECONDS_BUDGET=480 bash bench/gpu_regression.sh
#
# The bench's rows go to $OUT/regression_gpu.jsonl and are copied to $SAVE_COPY (default
# /tmp/gpu-bench/regression_gpu.jsonl); started again with that copy in $OUT, the bench resumes.
set -u
out=${OUT:-gpu-out}
mkdir -p "$out"
py=${PYTHON:-python3}
budget=${SECONDS_BUDGET:-480}
copy=${SAVE_COPY:-/tmp/gpu-bench/regression_gpu.jsonl}
export PYTHONUNBUFFERED=1
plugin=(-p pytest_trt.plugin -p no:cacheprovider)
mkdir -p "$(dirname "$copy")"
[ -f "$copy" ] && [ ! -f "$out/regression_gpu.jsonl" ] && cp "$copy" "$out/regression_gpu.jsonl"

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv
  "$py" - <<'EOF'
import onnxruntime, pynvml
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
print("nvml: SM clock", pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM), "MHz, max",
      pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM), "MHz")
EOF
} 2>&1 | tee "$out/env.txt"

timeout 150 "$py" -m pytest "${plugin[@]}" tests/gpu -q -rs 2>&1 | tee "$out/tests_gpu.txt"
timeout 90 "$py" -m pytest "${plugin[@]}" examples -v --trt-backend=onnxruntime-cuda 2>&1 | tee "$out/examples_cuda.txt"

left=$((budget - SECONDS))
echo "bench: --time-limit $left s"
timeout $((left + 60)) "$py" bench/regression_processes.py --backend onnxruntime-cuda --trials 200 --baselines 3 \
  --save "$out/regression_gpu.jsonl" --workdir /tmp/gpu-bench/work --time-limit "$left" 2>&1 | tee "$out/regression_gpu.txt"
cp "$out/regression_gpu.jsonl" "$copy"
