#!/usr/bin/env bash
# Everything a GPU host checks of pytest-trt in one go, from the repository root, with
# onnxruntime-gpu importable: the GPU's facts, tests/gpu (every GPU test, with the sweep, streams,
# layer and diagnosis tests' own printouts), the demo suite on onnxruntime-cuda, two xdist workers
# pinned to the one GPU (--trt-gpus=all), a sweep as one test against parametrized tests
# (bench/sweep_time.py), profiling's effect on timed samples (bench/profile_overhead.py), and, for
# what is left of SECONDS_BUDGET, the regression bench on PP-OCRv4 rec (bench/gpu_regression.sh;
# SIZES are its side branches, rec extracted to bench/.downloads). All logs go to $OUT/session.txt.
#
#   OUT=gpu-out SECONDS_BUDGET=560 SIZES=1536,2048 bash bench/gpu_session.sh
set -u
out=${OUT:-gpu-out}
mkdir -p "$out"
log="$out/session.txt"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
plugin=(-p pytest_trt.plugin -p no:cacheprovider)
budget=${SECONDS_BUDGET:-560}
step() {  # seconds, title, command...
  local limit=$1 title=$2; shift 2
  echo "=== $title ($(date +%T))" >> "$log"
  timeout "$limit" "$@" >> "$log" 2>&1
  echo "=== exit $? after $SECONDS s" >> "$log"
}
{
  nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version,clocks.max.sm --format=csv
  "$py" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
} >> "$log" 2>&1
step 200 "tests/gpu" "$py" -m pytest "${plugin[@]}" tests/gpu -q -rs
step 120 "sweep and streams (printed)" "$py" -m pytest "${plugin[@]}" tests/gpu/test_throughput_gpu.py -q -s -k onnxruntime
step 90 "layers and diagnosis (printed)" "$py" -m pytest "${plugin[@]}" tests/gpu/test_layers_gpu.py -q -s
step 90 "demo suite on onnxruntime-cuda" "$py" -m pytest "${plugin[@]}" examples -q --trt-backend=onnxruntime-cuda
step 60 "two workers on one GPU" "$py" -m pytest "${plugin[@]}" tests/gpu/test_gpus_gpu.py -q -rA -s
step 90 "sweep as one test vs parametrized" "$py" bench/sweep_time.py --backend onnxruntime-cuda --rounds 3
step 60 "profiling's effect on timed samples" "$py" bench/profile_overhead.py --backend onnxruntime-cuda \
  --model examples/models/cnn.onnx --rounds 6
left=$((budget - SECONDS))
if [ "$left" -gt 120 ] && [ -n "${SIZES:-}" ]; then
  echo "=== rec regression bench, $left s ($(date +%T))" >> "$log"
  OUT="$out/rec" FAMILY=rec SIZES="$SIZES" SKIP_TESTS=1 SECONDS_BUDGET=$((left - 30)) TRIALS=${TRIALS:-200} \
    SLOWED_TRIALS=${SLOWED_TRIALS:-40} BENCH_REC_SHAPE=8,3,48,320 bash bench/gpu_regression.sh >> "$log" 2>&1
  rm -f "$out/rec/regression_gpu_all.jsonl" "$out/rec/env.txt"
fi
tail -n 60 "$log"
