#!/usr/bin/env bash
# End-to-end GPU run with a full-size VITA-1.5 built from random weights (no 16 GB file needed):
#   1. the model benchmark: a 13-tile image, a 30 s audio and a 16-frame video question
#      (prefill time, per-token decode time, peak memory);
#   2. the bundled sample suites through `vita-eval run --model DIR --device cuda`.
# Usage: bash scripts/gpu_e2e.sh OUT_DIR        (SIZE=tiny DEVICE=cpu for a local smoke test)
# On a machine without network, put the missing wheels in .whl/ first (README: "GPU runs").
set -euo pipefail
OUT=${1:-gpu_out}
RUN_DIR=${RUN_DIR:-$OUT/run}
SIZE=${SIZE:-full}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
if [ -d .whl ] && [ "${INSTALL_WHEELS:-1}" = 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
# Folders are import names: vita_eval/ and model/vita15/ import without installing.
export PYTHONPATH=$PWD:$PWD/model:${PYTHONPATH:-} PYTHONUNBUFFERED=1

python3 -m vita15.bench --size "$SIZE" --device "$DEVICE" --dtype bf16 --out "$OUT/model_bench.json"
CKPT=/tmp/vita15-$SIZE-random
python3 -m vita_eval.cli model-init --size "$SIZE" --random-on-load --out "$CKPT"
python3 -m vita_eval.cli run --model "$CKPT" --model-name "vita15-$SIZE-random" --device "$DEVICE" --dtype bf16 \
  --out "$RUN_DIR"
python3 - "$OUT" "$RUN_DIR" <<'PY'
import json, pathlib, sys
out, run = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
info = json.loads((run / "run.json").read_text())
suites = {p.parent.name: json.loads(p.read_text()) for p in sorted(run.glob("*/scores.json"))}
summary = {"device": info["device"], "hardware": info["hardware"], "wall_s": info["wall_s"], "peak_mem": info["peak_mem"],
           "suites": {k: {f: v.get(f) for f in ("n", "n_failed", "wall_s", "samples_per_s")} for k, v in suites.items()}}
(out / "run_summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
cp "$RUN_DIR/report.md" "$OUT/run_report.md"
