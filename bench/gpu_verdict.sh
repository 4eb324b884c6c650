#!/usr/bin/env bash
# The regression verdict on a GPU, as CI meets it, from the repository root on a GPU host with
# onnxruntime-gpu importable and PP-OCRv4 rec extracted to bench/.downloads (bench/regression_processes.py
# --family rec fetches it where an index is reachable): tests/gpu, the demo suite on
# onnxruntime-cuda, the side branches that slow rec (batch 8x3x48x320) by about 5% and 10% on this
# GPU (bench/slowdown.py, confirmed by an interleaved loop), then bench/gpu_regression.sh with that
# family for SECONDS_BUDGET seconds.
#
#   OUT=gpu-out SECONDS_BUDGET=300 bash bench/gpu_verdict.sh
set -u
out=${OUT:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 BENCH_REC_SHAPE=8,3,48,320
plugin=(-p pytest_trt.plugin -p no:cacheprovider)
timeout 90 python3 -m pytest "${plugin[@]}" tests/gpu -q -rs > "$out/tests_gpu.txt" 2>&1
tail -n 3 "$out/tests_gpu.txt"
timeout 90 python3 -m pytest "${plugin[@]}" examples -q --trt-backend=onnxruntime-cuda > "$out/examples_cuda.txt" 2>&1
tail -n 3 "$out/examples_cuda.txt"
timeout 150 python3 bench/slowdown.py bench/.downloads/ch_PP-OCRv4_rec_infer.onnx --provider CUDAExecutionProvider \
  --shape "$BENCH_REC_SHAPE" --targets 5,10 > "$out/slowdown.txt" 2>&1
cat "$out/slowdown.txt"
sizes=$(grep '^SIZES=' "$out/slowdown.txt" | cut -d= -f2)
OUT="$out/bench" FAMILY=rec SIZES="$sizes" SKIP_TESTS=1 SECONDS_BUDGET=${SECONDS_BUDGET:-300} \
  TRIALS=${TRIALS:-200} SLOWED_TRIALS=${SLOWED_TRIALS:-40} bash bench/gpu_regression.sh > "$out/bench.txt" 2>&1
rm -f "$out/bench/regression_gpu_all.jsonl"
tail -n 14 "$out/bench.txt"
