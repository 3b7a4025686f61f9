"""Exploratory: is the fast engine starved by the prefetch threads? (not committed)"""
import sys, time, json, dataclasses, multiprocessing
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
import torch
from vita_eval import registry
from vita_eval.bench.run import _run, forced_preset, answer_lengths, WORKLOADS, _checkpoint
from vita_eval.bench.workloads import BUILDERS, Scale
from vita_eval.models.vita import VitaModel
from vita_eval.runner.schedule import group_samples
from vita_eval.suites import data_path, get_suite, load_suite_data
from vita15.engine import ListSource, Job

def main():
    work = Path("/tmp/probe"); ckpt = Path("/tmp/vita15-full-random")
    scale = dataclasses.replace(Scale(), mme_images=300, librispeech_utterances=600)
    fast = VitaModel(ckpt, device="cuda", dtype="bf16", name="p", engine="fast")
    res = {}
    with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as pool:
        for suite in ("MME", "LibriSpeech_test_other"):
            BUILDERS[suite](work / "data", scale, pool)
    for suite in ("MME", "LibriSpeech_test_other"):
        spec = get_suite(suite)
        data = load_suite_data(spec, data_path(spec, work / "data"))
        lengths = answer_lengths(WORKLOADS[suite].answer_tokens, data.samples, fast.engine.tokenizer, "full")
        preset = forced_preset(registry.get("preset", spec.preset), lengths)
        # warm-up (graphs, cudnn plans)
        _run(fast, spec, data.samples[:64], work / "warm" / suite, preset, "cuda")
        # A: engine alone, everything prepared first on the main thread
        groups = group_samples(data.samples)
        t0 = time.perf_counter()
        jobs = [fast.prepare([preset(s, spec, dict(spec.preset_args)) for s in g]) for g in groups]
        prep = time.perf_counter() - t0
        torch.cuda.synchronize(); t0 = time.perf_counter()
        out = dict(fast.fast.stream(ListSource(jobs)))
        torch.cuda.synchronize(); eng = time.perf_counter() - t0
        res[f"{suite}/A_engine_only_per_s"] = round(len(out) / eng, 2)
        res[f"{suite}/A_host_prep_ms_per_sample"] = round(prep / len(out) * 1000, 1)
        for name, workers, interval in (("B_default", None, 0.005), ("C_switch0.2ms", None, 0.0002),
                                        ("D_4workers", 4, 0.005), ("E_2workers", 2, 0.005)):
            saved = fast.prefetch_workers
            if workers: fast.prefetch_workers = workers
            sys.setswitchinterval(interval)
            r = _run(fast, spec, data.samples, work / name / suite, preset, "cuda")
            sys.setswitchinterval(0.005); fast.prefetch_workers = saved
            res[f"{suite}/{name}_per_s"] = r["per_s"]
            res[f"{suite}/{name}_prefill_s"] = round(r["engine"]["prefill_s"], 2)
        print(json.dumps(res, indent=1), flush=True)

if __name__ == '__main__':
    main()
