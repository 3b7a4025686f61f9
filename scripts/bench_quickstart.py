"""Benchmark the quick start's `vita-eval run` (the embedded default): phase times in wall and CPU seconds.

    python scripts/bench_quickstart.py [--repeat N] [--out DIR] [-- extra vita-eval run flags]

Each repeat runs `python -m vita_eval.cli run --out <fresh temp dir>` in a child process (a first run:
nothing to resume), then prints the phases the run recorded in run.json (startup = interpreter and
imports, model_load, data, inference, scoring, report) and the child's total user + sys CPU seconds.
On a shared machine CPU seconds are the fair figure; wall seconds include waiting for other work.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("startup", "model_load", "data", "inference", "scoring", "report")


def one_run(extra: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vita_eval.cli", "run", "--out", str(out), *extra], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        info = json.loads((out / "run.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "phases": info["phases"]}


def table(runs: list[dict[str, object]]) -> str:
    lines = [f"{'phase':12s} " + " ".join(f"{'run ' + str(i + 1) + ' wall/cpu s':>20s}" for i in range(len(runs)))]
    for phase in PHASES:
        cells = []
        for run in runs:
            p = run["phases"].get(phase, {})  # type: ignore[union-attr]
            cells.append(f"{p.get('wall_s', 0):9.2f} / {p.get('cpu_s', 0):7.2f}")
        lines.append(f"{phase:12s} " + " ".join(f"{c:>20s}" for c in cells))
    lines.append(f"{'total':12s} " + " ".join(f"{r['wall_s']:9.2f} / {r['cpu_s']:7.2f}".rjust(20) for r in runs))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs to make (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="write bench_quickstart.json here (default: print only)")
    parser.add_argument("extra", nargs="*", help="more `vita-eval run` flags (default: none)")
    args = parser.parse_args()
    runs = [one_run(args.extra) for _ in range(args.repeat)]
    print(table(runs))
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = {"command": "vita-eval run", "extra": args.extra, "cpu_count": os.cpu_count(),
                   "load_average_1m": os.getloadavg()[0], "runs": runs}
        (args.out / "bench_quickstart.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
