#!/usr/bin/env bash
# `vita-eval bench` end to end on one GPU with a full-size VITA-1.5 of seeded random weights (bf16):
# the model is built on the GPU (`model-init --random-on-load`), the workloads are written on the
# machine in the official layouts, fast and reference engine run on the same requests, and
# bench.json / bench.md land in OUT after every workload (a timeout still leaves numbers).
# Usage: bash scripts/gpu_bench.sh OUT        (BENCH_TIMEOUT seconds caps the bench, default 300)
# Sizes (the call must finish in minutes): MME and LibriSpeech full; Video-MME 60 videos x 3 q,
# MMBench 150 questions (563 rows with circular copies), MathVista 48 questions (BENCH_LIMITS);
# the reference engine runs the first groups given by BENCH_REFERENCE. BENCH_ARGS adds bench options
# (e.g. "--workloads MME --profile 48": tables of where the time goes in OUT/profile/).
# First, scripts/gpu_checks.py (CHECKS_TIMEOUT seconds, default 120; 0 skips it; CHECKS names some) writes OUT/gpu_checks.json.
set -euo pipefail
OUT=${1:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:$PWD/model:${PYTHONPATH:-} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
CKPT=/tmp/vita15-full-random
python3 -m vita_eval.cli model-init --size full --random-on-load --out "$CKPT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1 || true
set +e
# the parts beside the paths they replace (uint8 tiles, Whale graphs, fused prefill): OUT/gpu_checks.json
if [ "${CHECKS_TIMEOUT:-120}" != 0 ]; then
  timeout "${CHECKS_TIMEOUT:-120}" python3 scripts/gpu_checks.py "$OUT" ${CHECKS:-} > "$OUT/gpu_checks.log" 2>&1 || tail -n 20 "$OUT/gpu_checks.log"
fi
LIMITS=${BENCH_LIMITS:-"Video-MME_8frame=60 MMBench_DEV_EN=150 MathVista_MINI=48"}
REFERENCE=${BENCH_REFERENCE:-"MME=20 LibriSpeech_test_other=12 Video-MME_8frame=3 MMBench_DEV_EN=5 MathVista_MINI=1"}
timeout "${BENCH_TIMEOUT:-300}" python3 -m vita_eval.cli -v bench --model "$CKPT" --out "$OUT" --work-dir /tmp/vita-bench \
  --limit $LIMITS --reference $REFERENCE ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
status=$?
set -e
tail -n 40 "$OUT/bench.log"
[ -f "$OUT/bench.md" ] && cat "$OUT/bench.md"
exit $status
