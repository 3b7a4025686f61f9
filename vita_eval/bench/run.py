"""`vita-eval bench`: the fast and the reference engine on the same synthetic workloads, side by side.

For each workload the data are written in the official layout (`vita_eval.bench.workloads`),
loaded by the suite's own loader and run through `infer_suite` (the `vita-eval run` path:
prompt preset, worker-pool preparation, records written per sample) with the answer length
forced: 2 tokens for MME, MMBench and Video-MME, 250 for MathVista, the transcript's token count
for ASR (no stop string; `<|im_end|>`, which random weights practically never pick, stays a stop).
The fast engine runs every sample; the reference engine the first groups of the same list (it
is slow), the same requests, so answers are compared sample by sample. Results (throughput,
peak GPU memory, speed-up, agreement, targets) go to `bench.json` and `bench.md` after every
workload, so an interrupted run still leaves its numbers.
"""
from __future__ import annotations

import dataclasses
import logging
import platform
import shutil
import tempfile
import time
import traceback
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vita_eval import fsio, registry
from vita_eval.bench.profiling import profile_run
from vita_eval.bench.workloads import BUILDERS, Scale
from vita_eval.models.vita import VitaModel
from vita_eval.runner.distributed import Dist
from vita_eval.runner.inference import infer_suite
from vita_eval.runner.records import read_records
from vita_eval.runner.schedule import group_samples
from vita_eval.suites import data_path, get_suite, load_suite_data
from vita_eval.types import GenerationParams, Request, Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workload:
    suite: str
    unit: str
    answer_tokens: str  # "fixed:N" or "transcript"
    reference_groups: int  # groups the reference engine runs on a GPU (all in miniature)
    target_per_s: float | None = None  # samples per second the fast engine must reach
    target_note: str = ""


WORKLOADS: dict[str, Workload] = {w.suite: w for w in (
    Workload("MME", "q", "fixed:2", 20, 30.0, ">= 30 q/s (2,374 q in <= 80 s)"),
    Workload("LibriSpeech_test_other", "utt", "transcript", 24, 150.0, ">= 150 utt/s"),
    Workload("Video-MME_8frame", "q", "fixed:2", 4, 2700 / 180, "2,700 q <= 3 min incl. frame decoding (15 q/s)"),
    Workload("MMBench_DEV_EN", "q", "fixed:2", 10),
    Workload("MathVista_MINI", "q", "fixed:250", 2),
)}
DECODE_TARGET_MS, SPEEDUP_TARGET = 6.0, 5.0
TINY_LONG_ANSWER = 16  # MathVista's 250 tokens, in miniature


def answer_lengths(rule: str, samples: list[Sample], tokenizer, size: str) -> dict[str, int]:
    """uid -> forced answer length (computed up front: the worker threads never touch the tokenizer)."""
    if rule == "transcript":
        return {s.uid: max(1, len(tokenizer(str(s.fields["answer"]), add_special_tokens=False)["input_ids"]))
                for s in samples}
    n = int(rule.split(":")[1])
    n = TINY_LONG_ANSWER if size == "tiny" and n > TINY_LONG_ANSWER else n
    return {s.uid: n for s in samples}


ANSWER_TOKENS = "bench_answer_tokens"  # the sample field holding its forced answer length


@dataclass(frozen=True)
class ForcedPreset:
    """The suite's preset with the answer length fixed (from the sample's `ANSWER_TOKENS` field) and
    no stop string. A small picklable object: it travels to the preparation processes with every group."""

    preset: Any

    def __call__(self, sample: Sample, spec: Any, args: dict) -> Request:
        request = self.preset(sample, spec, args)
        request.gen = dataclasses.replace(request.gen, max_new_tokens=int(sample.fields[ANSWER_TOKENS]), stop=())
        return request


def force_answer_lengths(samples: list[Sample], lengths: dict[str, int]) -> None:
    """Write each sample's forced answer length into its fields (read by `ForcedPreset`)."""
    for sample in samples:
        sample.fields[ANSWER_TOKENS] = lengths[sample.uid]


def _checkpoint(model: str | None, size: str, work: Path) -> Path:
    """The given checkpoint, or seeded random weights (full size: built on the device at load)."""
    if model:
        return Path(model)
    from vita15.checkpoint import write_checkpoint
    from vita15.configuration_vita import tiny_config, vita15_config

    full = size == "full"
    return write_checkpoint(work / f"vita15-{size}-random", vita15_config() if full else tiny_config(), seed=0,
                            dtype=torch.bfloat16 if full else torch.float32, with_weights=False)


def _peak_reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def _run(model: VitaModel, spec, samples: list[Sample], folder: Path, preset, device: str) -> dict[str, Any]:
    shutil.rmtree(folder, ignore_errors=True)
    before = dict(model.fast.stats) if model.fast is not None else {}
    _peak_reset(device)
    stats = infer_suite(model, spec, samples, folder, preset=preset, preset_args=dict(spec.preset_args), batch_size=1,
                        max_new_tokens=None, dist=Dist())
    records = read_records(folder)
    ok = [r for r in records.values() if r.error is None]
    out = {"samples": stats.n_new, "failed": len(records) - len(ok), "wall_s": round(stats.wall_s, 3),
           "per_s": round(stats.samples_per_s, 3), "peak_gpu_gib": _peak_gib(device),
           "mean_prompt_tokens": round(sum(r.n_prompt_tokens for r in ok) / max(len(ok), 1), 1),
           "new_tokens": sum(r.n_new_tokens for r in ok)}
    if model.fast is not None:
        out["engine"] = {k: v - before.get(k, 0) for k, v in model.fast.stats.items()}
        out["kv_cache"] = model.fast.kv_layout()
    if records and ok:
        out["errors"] = sorted({r.error for r in records.values() if r.error})[:3]
    return out


def _agreement(fast_dir: Path, ref_dir: Path) -> dict[str, Any]:
    fast, ref = read_records(fast_dir), read_records(ref_dir)
    both = [u for u, r in ref.items() if r.error is None and u in fast and fast[u].error is None]
    differing = [u for u in both if fast[u].raw != ref[u].raw]
    same = len(both) - len(differing)
    return {"compared": len(both), "same_answer": same, "same_share": round(same / max(len(both), 1), 4),
            "examples": {u: {"reference": ref[u].raw, "fast": fast[u].raw} for u in differing[:5]}}


def measure_decode(model: VitaModel, tokens: int) -> float:
    """ms per generated token at batch 1 (a text prompt; prefill removed by a 1-token run)."""
    def timed(n: int) -> float:
        request = Request(uid="decode", text="Tell me a very long story about the sea.", modality="lang",
                          gen=GenerationParams(max_new_tokens=n, stop=()))
        if model.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate([request])
        return time.perf_counter() - start

    timed(tokens + 1)  # warm-up: kernels, graphs
    return round((timed(tokens + 1) - timed(1)) / tokens * 1000, 3)


def bench(*, model: str | None, size: str, device: str, dtype: str, out: Path, workloads: list[str],
          limits: dict[str, int], reference: dict[str, int], work_dir: Path | None, decode_tokens: int,
          command: str, profile: int = 0, process_media: list[str] | None = None) -> dict[str, Any]:
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    work = work_dir or Path(tempfile.mkdtemp(prefix="vita-bench-"))
    scale = Scale.tiny() if size == "tiny" else Scale()
    scale = dataclasses.replace(scale, **{_SCALE_FIELDS[k]: v for k, v in limits.items()})
    started = time.perf_counter()
    path = _checkpoint(model, size, work)
    fast = VitaModel(path, device=device, dtype=dtype, name="bench", engine="fast")
    if process_media is not None:  # which media kinds the fast engine prepares in processes (others: threads)
        fast.process_media = set(process_media)
    ref = VitaModel(path, device=device, dtype=dtype, name="bench", engine="reference", loaded=fast.engine)
    result: dict[str, Any] = {
        "command": command, "size": size, "device": device, "dtype": dtype, "model": str(path),
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "host": {"cpus": _cpus(), "machine": platform.machine()}, "torch": torch.__version__,
        "model_load_s": round(time.perf_counter() - started, 1), "scale": dataclasses.asdict(scale),
        "process_media": sorted(fast.process_media) if fast.prepare_processes else [],
        "workloads": {},
    }
    try:
        result["decode_ms_per_token"] = {"tokens": decode_tokens, "fast": measure_decode(fast, decode_tokens),
                                         "reference": measure_decode(ref, decode_tokens)}
    except Exception as exc:  # a benchmark that fails says why and the others still run
        result["decode_error"] = _failure(exc)
    _write(out, result)
    # data are built in processes (FLAC and H.264 encoding hold the GIL); spawn: CUDA is up already
    with ProcessPoolExecutor(max(1, _cpus() - 1), mp_context=multiprocessing.get_context("spawn")) as pool:
        for name in workloads:
            try:
                result["workloads"][name] = _workload(WORKLOADS[name], fast, ref, work, scale, pool, size, device,
                                                      reference.get(name), profile, out)
            except Exception as exc:
                result.setdefault("errors", {})[name] = _failure(exc)
            _write(out, result)
    result["total_s"] = round(time.perf_counter() - started, 1)
    _write(out, result)
    return result


def _failure(exc: BaseException) -> str:
    log.error("bench step failed", exc_info=exc)
    return "".join(traceback.format_exception(exc))[-4000:]


_SCALE_FIELDS = {"MME": "mme_images", "MMBench_DEV_EN": "mmbench_questions",
                 "LibriSpeech_test_other": "librispeech_utterances", "Video-MME_8frame": "videomme_videos",
                 "MathVista_MINI": "mathvista_questions"}


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _workload(w: Workload, fast: VitaModel, ref: VitaModel, work: Path, scale: Scale, pool, size: str, device: str,
              reference_groups: int | None, profile: int, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    data_root = work / "data"
    BUILDERS[w.suite](data_root, scale, pool)
    built = time.perf_counter() - started
    spec = get_suite(w.suite)
    data = load_suite_data(spec, data_path(spec, data_root))
    force_answer_lengths(data.samples, answer_lengths(w.answer_tokens, data.samples, fast.engine.tokenizer, size))
    preset = ForcedPreset(registry.get("preset", spec.preset))
    groups = group_samples(data.samples)
    n_ref = min(len(groups), reference_groups or (1 if size == "tiny" else w.reference_groups))
    subset = [s for g in groups[:n_ref] for s in g]
    entry: dict[str, Any] = {"unit": w.unit, "groups": len(groups), "samples": len(data.samples),
                             "build_s": round(built, 1)}
    pool = fast.prepare_pool_for(groups[0])
    if pool is not None:  # its workers start with the first suite that uses them: not inside the timing
        pool.wait_ready()
    entry["fast"] = _run(fast, spec, data.samples, work / "fast" / w.suite, preset, device)
    entry["reference"] = _run(ref, spec, subset, work / "reference" / w.suite, preset, device)
    entry["reference"]["groups"] = n_ref
    entry["speedup"] = round(entry["fast"]["per_s"] / max(entry["reference"]["per_s"], 1e-9), 2)
    entry["agreement"] = _agreement(work / "fast" / w.suite, work / "reference" / w.suite)
    if profile:  # the first groups again, profiled (after the timed runs, which it would slow down)
        profiled = [s for g in groups[:profile] for s in g]
        entry["profile"] = profile_run(lambda: _run(fast, spec, profiled, work / "profile" / w.suite, preset, device),
                                       spec.name, device, out / "profile" / f"{w.suite}.txt")
    if w.target_per_s is not None and size == "full":
        entry["target"] = {"per_s": round(w.target_per_s, 2), "note": w.target_note,
                           "met": entry["fast"]["per_s"] >= w.target_per_s}
    return entry


def _write(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fsio.write_json(out / "bench.json", result)
    fsio.write_text(out / "bench.md", markdown(result))


def markdown(result: dict[str, Any]) -> str:
    """The results table, every figure beside its target."""
    lines = [f"# vita-eval bench: {result['size']} VITA-1.5, {result['dtype']}, {result['gpu'] or result['device']}",
             "", f"Command: `{result['command']}`", "",
             "| workload | samples fast / reference | fast | reference | speed-up | peak GPU GiB fast / ref | "
             "same answers | target |", "|---|---|---|---|---|---|---|---|"]
    for name, e in result["workloads"].items():
        f, r, a = e["fast"], e["reference"], e["agreement"]
        target = e.get("target")
        status = "" if target is None else f"{target['note']}: {'met' if target['met'] else 'MISSED'}"
        lines.append(f"| {name} | {f['samples']} / {r['samples']} | {f['per_s']} {e['unit']}/s ({f['wall_s']} s) | "
                     f"{r['per_s']} {e['unit']}/s | {e['speedup']}x | {f['peak_gpu_gib']} / {r['peak_gpu_gib']} | "
                     f"{a['same_answer']}/{a['compared']} | {status} |")
    decode = result.get("decode_ms_per_token")
    if decode and result["size"] == "tiny":
        lines += ["", f"Batch-1 decode ({decode['tokens']} tokens): fast {decode['fast']} ms/token, reference "
                      f"{decode['reference']} ms/token. Miniature run: the targets apply to the full size on a GPU."]
    elif decode:
        met = "met" if decode["fast"] <= DECODE_TARGET_MS else "MISSED"
        lines += ["", f"Batch-1 decode ({decode['tokens']} tokens): fast {decode['fast']} ms/token, reference "
                      f"{decode['reference']} ms/token (target <= {DECODE_TARGET_MS} ms: {met})."]
    mme = result["workloads"].get("MME")
    if mme and result["size"] == "full":
        lines.append(f"MME fast/reference: {mme['speedup']}x (target >= {SPEEDUP_TARGET}x: "
                     f"{'met' if mme['speedup'] >= SPEEDUP_TARGET else 'MISSED'}).")
    for name, error in result.get("errors", {}).items():
        lines += ["", f"{name} failed: `{error.strip().splitlines()[-1]}`"]
    lines += ["", "Reference engine: the first groups of each workload (column 2); fast engine: all samples.",
              f"Model load {result['model_load_s']} s; scale: `{result['scale']}`.", ""]
    return "\n".join(lines)
