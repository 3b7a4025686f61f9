#!/usr/bin/env bash
# `vita-eval bench` end to end on one GPU with a full-size VITA-1.5 of seeded random weights (bf16):
# the model is built on the GPU (`model-init --random-on-load`), the workloads are written on the
# machine in the official layouts, fast and reference engine run on the same requests, and
# bench.json / bench.md land in OUT after every workload (a timeout still leaves numbers).
# Usage: bash scripts/gpu_bench.sh OUT        (BENCH_TIMEOUT seconds caps the bench, default 540)
# Subsets (the call must finish in minutes): Video-MME 150 videos x 3 q, MMBench 300 questions
# (~1,100 rows with circular copies), MathVista 96 questions; MME and LibriSpeech are full size.
set -euo pipefail
OUT=${1:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:$PWD/model:${PYTHONPATH:-} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
CKPT=/tmp/vita15-full-random
python3 -m vita_eval.cli model-init --size full --random-on-load --out "$CKPT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1 || true
set +e
timeout "${BENCH_TIMEOUT:-540}" python3 -m vita_eval.cli -v bench --model "$CKPT" --out "$OUT" --work-dir /tmp/vita-bench \
  --limit Video-MME_8frame=150 MMBench_DEV_EN=300 MathVista_MINI=96 ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
status=$?
set -e
tail -n 40 "$OUT/bench.log"
[ -f "$OUT/bench.md" ] && cat "$OUT/bench.md"
exit $status
