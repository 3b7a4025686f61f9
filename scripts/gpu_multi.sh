#!/usr/bin/env bash
# Data-parallel evaluation scaling (issue 14): the bench's MME and LibriSpeech workloads through
# `vita-eval run --engine fast` on 1 GPU and under `torchrun --nproc-per-node N` in the same call,
# then a check that the merged records and scores equal the 1-GPU run's (same uids, none lost or
# duplicated, same metrics; answers compared, bf16 kernels may differ per batch shape).
# Usage: bash scripts/gpu_multi.sh OUT [N...]     (default N = every visible GPU count: 2 4 8 up to it)
# Needs a multi-GPU machine (nvidia-h200-x2 or larger). Keeps NCCL_NVLS_ENABLE=0 and the other
# NVLink-multicast variables the machine sets: they are inherited by every child process.
set -euo pipefail
OUT=${1:-gpu_multi_out}
shift || true
mkdir -p "$OUT"
export PYTHONPATH=$PWD:$PWD/model:${PYTHONPATH:-} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
GPUS=$(nvidia-smi -L | wc -l)
COUNTS=${*:-$(for n in 2 4 8; do [ "$n" -le "$GPUS" ] && echo "$n"; done)}
CKPT=/tmp/vita15-full-random
DATA=/tmp/vita-multi-data
python3 -m vita_eval.cli model-init --size full --random-on-load --out "$CKPT"
python3 - "$DATA" <<'PY'
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from vita_eval.bench.workloads import Scale, build_librispeech, build_mme
root = Path(sys.argv[1])
with ThreadPoolExecutor(15) as pool:
    build_mme(root, Scale(), pool)
    build_librispeech(root, Scale(), pool)
PY
# The forced answer lengths of the bench: 2 new tokens for MME, 40 for LibriSpeech (no stop string).
run() {  # run NAME LAUNCHER...
  local name=$1; shift
  local start=$EPOCHREALTIME
  "$@" -m vita_eval.cli run --model "$CKPT" --model-name multi --device cuda --dtype bf16 --engine fast \
    --suites MME LibriSpeech_test_other --data-root "$DATA" --out "$OUT/$name" --judge none --no-report \
    --set check_md5=false suites.MME.max_new_tokens=2 suites.LibriSpeech_test_other.max_new_tokens=40 \
    > "$OUT/$name.log" 2>&1
  echo "$name $start $EPOCHREALTIME" >> "$OUT/wall.txt"
}
run gpu1 python3
for n in $COUNTS; do
  run "gpu$n" python3 -m torch.distributed.run --nproc-per-node "$n" --master-port $((29600 + n))
done
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
walls = {name: float(end) - float(start)
         for name, start, end in (line.split() for line in (out / "wall.txt").read_text().splitlines())}
base = {s: json.loads((out / "gpu1" / s / "scores.json").read_text()) for s in ("MME", "LibriSpeech_test_other")}
def records(run, suite):
    rows = [json.loads(l) for l in (out / run / suite / "samples.jsonl").read_text().splitlines()]
    return {r["uid"]: r for r in rows}, len(rows)
summary = {}
for run, wall in walls.items():
    entry = {"wall_s": round(wall, 1), "speedup_vs_1": round(walls["gpu1"] / wall, 2)}
    for suite in base:
        scores = json.loads((out / run / suite / "scores.json").read_text())
        recs, n_lines = records(run, suite)
        ref, _ = records("gpu1", suite)
        # rank 0's inference wall time; with balanced shards the ranks finish together
        entry[suite] = {"inference_s": scores.get("wall_s"), "n": scores["n"],
                        "samples_per_s": round(scores["n"] / scores["wall_s"], 2) if scores.get("wall_s") else None,
                        "same_uids": sorted(recs) == sorted(ref), "duplicates": n_lines - len(recs),
                        "same_metrics": scores["metrics"] == base[suite]["metrics"],
                        "same_answers": sum(recs[u]["raw"] == ref[u]["raw"] for u in ref if u in recs)}
    summary[run] = entry
(out / "scaling.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
