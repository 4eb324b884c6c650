#!/usr/bin/env bash
# Regression detection on a GPU backend, as CI meets it, from the repository root on a GPU host
# with onnxruntime-gpu (and nvidia-ml-py, for the SM clock) importable: the GPU's facts and
# clocks, tests/gpu, the demo suite on onnxruntime-cuda (-v: the SM clock of each test), then
# bench/regression_processes.py on onnxruntime-cuda with the MatMul chains (20, 21, 22 blocks)
# for what is left of SECONDS_BUDGET (default 480 s). docs/gpu.md quotes its output.
#
#   OUT=gpu-out SECONDS_BUDGET=480 bash bench/gpu_regression.sh
#
# GPUS=N runs N benches side by side, one per GPU (CUDA_VISIBLE_DEVICES), each with its own
# baselines and rows ($OUT/regression_gpu_<i>.jsonl), and prints their table and the table of
# all of them together. TRIALS and SLOWED_TRIALS are each bench's --trials and --slowed-trials
# (defaults 200 and TRIALS). RESUME=DIR takes the rows saved by an earlier run from DIR, so a
# bench that ran out of time goes on where it stopped; SKIP_TESTS=1 goes straight to the bench.
set -u
out=${OUT:-gpu-out}
mkdir -p "$out"
py=${PYTHON:-python3}
budget=${SECONDS_BUDGET:-480}
gpus=${GPUS:-1}
trials=${TRIALS:-200}
slowed=${SLOWED_TRIALS:-$trials}
export PYTHONUNBUFFERED=1
plugin=(-p pytest_trt.plugin -p no:cacheprovider)
# FAMILY=rec SIZES=a,b: PP-OCRv4 rec (bench/.downloads) and copies slowed by side branches of
# those sizes (bench/slowdown.py --provider CUDAExecutionProvider calibrates them).
family_args=""
if [ -n "${FAMILY:-}" ]; then
  family_args="--family $FAMILY --sizes ${SIZES:-}"
fi
if [ -n "${RESUME:-}" ]; then
  cp "$RESUME"/regression_gpu_*.jsonl "$out/" 2>/dev/null || true
fi

{
  nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv
  "$py" - <<'EOF'
import onnxruntime, pynvml
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
print("nvml: SM clock", pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM), "MHz, max",
      pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM), "MHz")
EOF
} 2>&1 | tee "$out/env.txt"

if [ -z "${SKIP_TESTS:-}" ]; then
  timeout 150 "$py" -m pytest "${plugin[@]}" tests/gpu -q -rs 2>&1 | tee "$out/tests_gpu.txt"
  timeout 90 "$py" -m pytest "${plugin[@]}" examples -v --trt-backend=onnxruntime-cuda 2>&1 | tee "$out/examples_cuda.txt"
fi

left=$((budget - SECONDS))
git_args=""
command -v git > /dev/null || { git_args="--no-git"; echo "no git here: slowed models are compared with stored floors only"; }
echo "bench: $gpus GPU(s), --time-limit $left s"
for i in $(seq 0 $((gpus - 1))); do
  CUDA_VISIBLE_DEVICES=$i timeout $((left + 60)) "$py" bench/regression_processes.py --backend onnxruntime-cuda \
    --trials "$trials" --slowed-trials "$slowed" --baselines 3 --seed "$i" $family_args $git_args \
    --save "$out/regression_gpu_$i.jsonl" --workdir "/tmp/gpu-bench/work$i" --time-limit "$left" \
    > "$out/regression_gpu_$i.txt" 2>&1 &
done
wait
for i in $(seq 0 $((gpus - 1))); do
  echo "== GPU $i"
  tail -n 8 "$out/regression_gpu_$i.txt"
done
# All of them together: one settings row, every bench's recordings and comparisons.
all="$out/regression_gpu_all.jsonl"
head -n 1 "$out/regression_gpu_0.jsonl" > "$all"
for i in $(seq 0 $((gpus - 1))); do
  tail -n +2 "$out/regression_gpu_$i.jsonl" >> "$all"
done
echo "== all $gpus GPU(s)"
"$py" bench/regression_processes.py --backend onnxruntime-cuda --trials "$trials" --slowed-trials "$slowed" \
  --baselines 3 $family_args --save "$all" --report-only 2>&1 | tee "$out/regression_gpu_all.txt"
