#!/usr/bin/env bash
# The regression verdict on CPU model families side by side, on a quiet many-core host: each
# family's bench/regression_processes.py runs pinned to its own two CPUs (a 2-core runner each)
# with its own measurement-lock folder, so the benches neither share CPUs nor queue for one lock.
# The MLP's and PP-OCRv4 rec's (1x3x48x320) +5% and +10% side branches are calibrated first by
# bench/slowdown.py on those CPUs; the MatMul chain (width 128) slows by whole blocks (20, 21, 22).
#
#   OUT=cpu-out SECONDS_BUDGET=420 LOAD=0 bash bench/cpu_verdict.sh
#
# LOAD=2 keeps two CPU-spinning processes on each bench's two CPUs from its first comparison on
# (baselines are recorded quiet). FAMILIES picks the benches (default "mlp rec matmul"); on a quiet
# host run at most two at once: the kernel's run-queue count is the whole host's, and a third
# bench's processes read as contention. Rec is read from bench/.downloads.
set -u
out=${OUT:-cpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
budget=${SECONDS_BUDGET:-420}
load=${LOAD:-0}
trials=${TRIALS:-400}
slowed=${SLOWED_TRIALS:-60}
rec=bench/.downloads/ch_PP-OCRv4_rec_infer.onnx
py=${PYTHON:-python3}
families=${FAMILIES:-mlp rec matmul}
has() { [[ " $families " == *" $1 "* ]]; }
calib=$(mktemp -d)
calibrate() {  # cpus, label, slowdown.py arguments...
  local cpus=$1 label=$2; shift 2
  taskset -c "$cpus" timeout 200 "$py" bench/slowdown.py "$@" --threads 1 --targets 5,10 > "$calib/slowdown_$label.txt" 2>&1
}
if has mlp && [ -z "${MLP_SIZES:-}" ]; then calibrate 2,3 mlp examples/models/mlp.onnx --batch 64 & fi
if has rec && [ -z "${REC_SIZES:-}" ]; then calibrate 6,7 rec "$rec" --shape 1,3,48,320 & fi
wait
MLP_SIZES=${MLP_SIZES:-$(grep -s '^SIZES=' "$calib/slowdown_mlp.txt" | cut -d= -f2)}
REC_SIZES=${REC_SIZES:-$(grep -s '^SIZES=' "$calib/slowdown_rec.txt" | cut -d= -f2)}
{
  grep -m1 'model name' /proc/cpuinfo
  lscpu -e=CPU,CORE,SOCKET 2>&1 | head -20
  cat "$calib"/slowdown_*.txt 2>/dev/null
  echo "mlp sizes $MLP_SIZES, rec sizes $REC_SIZES"
} > "$out/calibration.txt" 2>&1
cat "$out/calibration.txt"
left=$((budget - SECONDS))
bench() {  # cpus, label, regression_processes.py arguments...
  local cpus=$1 label=$2; shift 2
  mkdir -p "/tmp/lock-$label"
  TMPDIR="/tmp/lock-$label" taskset -c "$cpus" timeout $((left + 60)) "$py" bench/regression_processes.py \
    --trials "$trials" --slowed-trials "$slowed" --baselines 3 --load "$load" --load-while compare \
    --save "$out/cpu_$label.jsonl" --workdir "/tmp/cpu-bench/$label" --time-limit "$left" "$@" \
    > "$out/cpu_$label.txt" 2>&1
}
if has mlp; then bench 2,3 mlp --family mlp --sizes "$MLP_SIZES" & fi
if has rec; then bench 6,7 rec --family rec --sizes "$REC_SIZES" & fi
if has matmul; then bench 10,11 matmul --family matmul --blocks 20,21,22 --matmul-width 128 & fi
wait
for label in $families; do echo "== $label"; tail -n 14 "$out/cpu_$label.txt"; done
