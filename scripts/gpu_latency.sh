#!/usr/bin/env bash
# Speech-interaction latency of a full-size VITA-1.5 (random weights, bf16) with its speech decoder and codec,
# on one GPU: builds the checkpoint description (no 16 GB file: weights are drawn on the GPU from a seed; the
# TTS modules are written once), then runs `vita-eval latency` for the streaming policies.
# Results land in OUT/<part>/ as they are made (latency.jsonl is appended request by request).
# Usage: bash scripts/gpu_latency.sh OUT      (SIZE=tiny DEVICE=cpu REQUESTS=2 for a local smoke test;
#        PARTS=fast for the headline measurement alone)
set -uo pipefail
OUT=${1:-gpu_latency}
SIZE=${SIZE:-full}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bf16}
REQUESTS=${REQUESTS:-10}
PARTS=${PARTS:-"fast baselines"}  # which of the two measurements below to run
export PYTHONPATH=$PWD:$PWD/model:${PYTHONPATH:-} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
(nvidia-smi -L; python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)") \
  > "$OUT/env.txt" 2>&1
CKPT=/tmp/vita15-$SIZE-random-tts
start=$(date +%s)
python3 -m vita_eval.cli model-init --size "$SIZE" --random-on-load --with-tts --out "$CKPT" 2>&1 | tail -1
echo "model-init: $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"
lat() {  # lat PART TIMEOUT ARGS...
  local part=$1 limit=$2; shift 2
  timeout "$limit" python3 -m vita_eval.cli latency --model "$CKPT" --device "$DEVICE" --dtype "$DTYPE" \
    --out "$OUT/$part" "$@" > "$OUT/$part.log" 2>&1
  echo "$part: rc=$? $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"
}
# 1. the first-chunk policy with the graphed speech decoder: the headline numbers
[[ " $PARTS " == *" fast "* ]] && lat fast 200 --policies fast --scenarios speech speech+image6 speech+image1 --requests "$REQUESTS"
# 2. where the time went: the reference llm2TTS.run, the real-time server's first-sentence values, and the
#    fast policy without the CUDA graph (isolates the graph's share)
[[ " $PARTS " == *" baselines "* ]] && lat baselines 220 --policies reference server fast-nograph --scenarios speech speech+image6 \
  --requests $(( REQUESTS / 2 > 2 ? REQUESTS / 2 : 2 ))
true  # the status of a skipped part is not the script's
