"""Does request preparation keep up with the fast engine? Three ways over the same bench requests.

    python scripts/prepare_overlap.py --model CKPT --out OUT [--mme-images 300] [--utterances 600]

1. engine alone: every request prepared first, then only `FastEngine.stream` is timed (the ceiling);
2. preparation on the runner's worker threads (the path before worker processes);
3. preparation in worker processes (`vita_eval.runner.prepare_pool`, the default on a GPU).
2 and 3 run through `infer_suite`, as `vita-eval run` does. Writes OUT/prepare_overlap.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from vita_eval import registry
from vita_eval.bench.run import WORKLOADS, ForcedPreset, _run, answer_lengths, force_answer_lengths
from vita_eval.bench.workloads import BUILDERS, Scale
from vita_eval.models.vita import VitaModel
from vita_eval.runner.schedule import group_samples
from vita_eval.suites import data_path, get_suite, load_suite_data
from vita15.engine import ListSource


def measure(model: VitaModel, suite: str, root: Path, work: Path) -> dict[str, float]:
    spec = get_suite(suite)
    samples = load_suite_data(spec, data_path(spec, root)).samples
    force_answer_lengths(samples, answer_lengths(WORKLOADS[suite].answer_tokens, samples, model.engine.tokenizer, "full"))
    preset = ForcedPreset(registry.get("preset", spec.preset))
    _run(model, spec, samples[:64], work / "warm" / suite, preset, model.device)  # graphs, cuDNN plans, workers
    start = time.perf_counter()
    jobs = [model.prepare([preset(s, spec, dict(spec.preset_args)) for s in g]) for g in group_samples(samples)]
    prepare_s = time.perf_counter() - start
    torch.cuda.synchronize()
    start = time.perf_counter()
    done = dict(model.fast.stream(ListSource(jobs)))
    torch.cuda.synchronize()
    out = {"samples": len(done), "engine_alone_per_s": round(len(done) / (time.perf_counter() - start), 2),
           "prepare_ms_per_sample_one_thread": round(prepare_s / len(done) * 1000, 1)}
    pool, model.prepare_pool = model.prepare_pool, None
    out["threads_per_s"] = _run(model, spec, samples, work / "threads" / suite, preset, model.device)["per_s"]
    model.prepare_pool = pool
    out["processes_per_s"] = _run(model, spec, samples, work / "processes" / suite, preset, model.device)["per_s"]
    out["threads"], out["processes"] = model.prefetch_workers, pool.processes
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/prepare-overlap"))
    parser.add_argument("--mme-images", type=int, default=300)
    parser.add_argument("--utterances", type=int, default=600)
    args = parser.parse_args()
    scale = dataclasses.replace(Scale(), mme_images=args.mme_images, librispeech_utterances=args.utterances)
    root = args.work_dir / "data"
    with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as pool:
        for suite in ("MME", "LibriSpeech_test_other"):
            BUILDERS[suite](root, scale, pool)
    model = VitaModel(Path(args.model), device="cuda", dtype="bf16", name="overlap", engine="fast")
    result = {suite: measure(model, suite, root, args.work_dir) for suite in ("MME", "LibriSpeech_test_other")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prepare_overlap.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
