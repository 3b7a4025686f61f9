"""Benchmark `vita-eval report`: the all-resamples-at-once bootstrap beside the per-resample reference loop.

    python scripts/bench_report.py [--out DIR] [--runs RUN_A RUN_B]

1. Two synthetic runs at the real suites' size (MME 2,374 rows, MMBench_DEV_EN 4,656 rows in 1,164
   circular groups, Video-MME 2,700 questions, LibriSpeech test-clean 2,620 utterances; real scorers on
   made-up predictions, `vita_eval.reports.synthetic`), reported as `vita-eval report` does
   (DEFAULT_N_BOOT resamples, plots, Markdown).
2. The reference: the same bootstrap resample by resample (`aggregate` on each resampled table) for a
   few resamples per suite, extrapolated to DEFAULT_N_BOOT, and the ratio.
3. With `--runs`, the report of two existing run directories (e.g. two embedded default runs).

Times are process CPU seconds (user + sys), which a shared machine does not inflate, and wall seconds.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vita_eval.config import DEFAULT_N_BOOT
from vita_eval.reports.compare import write_report
from vita_eval.reports.rundir import read_run
from vita_eval.reports.stats import bootstrap_replicates
from vita_eval.reports.synthetic import write_synthetic_run
from vita_eval.scorers.base import get_scorer

REFERENCE_RESAMPLES = 20


def timed(fn, *args, **kwargs) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.process_time() - cpu, time.perf_counter() - wall


def reference_loop(run_dir: Path) -> dict[str, dict[str, float]]:
    """CPU seconds per resample of the loop and of the weighted path, per suite of one run."""
    out = {}
    for name, result in read_run(run_dir).suites.items():
        scorer = get_scorer(result.scorer)
        _, loop_cpu, _ = timed(bootstrap_replicates, result.per_sample, scorer.aggregate, n_boot=REFERENCE_RESAMPLES,
                               seed=0)
        _, fast_cpu, _ = timed(bootstrap_replicates, result.per_sample, scorer.aggregate, n_boot=DEFAULT_N_BOOT,
                               seed=0, weighted=scorer.aggregate_weighted)
        out[name] = {"rows": len(result.per_sample), "loop_cpu_s_per_resample": loop_cpu / REFERENCE_RESAMPLES,
                     "weighted_cpu_s_per_resample": fast_cpu / DEFAULT_N_BOOT}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write bench_report.json here (default: print only)")
    parser.add_argument("--runs", nargs=2, type=Path, help="two run directories to report on as well")
    args = parser.parse_args()
    results: dict[str, object] = {"n_boot": DEFAULT_N_BOOT}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, make_cpu, _ = timed(lambda: [write_synthetic_run(root / f"skill{s}", skill=s, seed=i)
                                        for i, s in enumerate((0.6, 0.65))])
        _, cpu, wall = timed(write_report, [root / "skill0.6", root / "skill0.65"], out=root / "report")
        results["full_size_two_runs"] = {"report_cpu_s": round(cpu, 2), "report_wall_s": round(wall, 2),
                                         "making_runs_cpu_s": round(make_cpu, 2)}
        per_suite = reference_loop(root / "skill0.6")
        results["per_suite"] = per_suite
        loop = sum(v["loop_cpu_s_per_resample"] for v in per_suite.values()) * DEFAULT_N_BOOT * 2
        fast = sum(v["weighted_cpu_s_per_resample"] for v in per_suite.values()) * DEFAULT_N_BOOT * 2
        results["bootstrap_two_runs_cpu_s"] = {"reference_loop_extrapolated": round(loop, 1),
                                               "weighted": round(fast, 2), "ratio": round(loop / fast, 1)}
    if args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            _, cpu, wall = timed(write_report, list(args.runs), out=Path(tmp))
        results["given_runs"] = {"runs": [str(p) for p in args.runs], "report_cpu_s": round(cpu, 2),
                                 "report_wall_s": round(wall, 2)}
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_report.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
