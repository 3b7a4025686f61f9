"""`vita-eval run`: model x suites -> records -> scores -> report, resumable, one or many ranks.

The run directory is the unit of resumption: running the same command again skips
every sample already recorded there. One process holds a run directory at a time
(`vita_eval.runner.lock`). Suites fail alone: any exception in one suite's path (its
data, inference, scoring, or a bug) gives that suite a scores.json that says why, and the
run goes on to the next. Every file is written atomically (`vita_eval.fsio`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vita_eval import fsio
from vita_eval.config import RunConfig
from vita_eval.data.checksums import file_md5
from vita_eval.judges.base import suite_session
from vita_eval.models import load_model
from vita_eval.models.vita import pick_device, pick_dtype
from vita_eval import registry
from vita_eval.runner import provenance
from vita_eval.runner.distributed import Dist, init_distributed, shutdown
from vita_eval.runner.inference import check_fingerprint, infer_suite
from vita_eval.runner.lock import lock_run_dir
from vita_eval.runner.records import merge_records, read_records
from vita_eval.runner.scoring import retire_scores, score_suite
from vita_eval.scorers.base import literal_text
from vita_eval.scorers.predictions import predictions_from_records
from vita_eval.scorers.profiles import get_profile
from vita_eval.speech.suite import speak_suite_of_run
from vita_eval.data.images import lmu_data_root
from vita_eval.suites import SuiteSpec, data_path, get_suite, load_suite_data
from vita_eval.types import SuiteData, SuiteError

log = logging.getLogger("vita_eval")


def _data_files(spec: SuiteSpec, path: Path, profile: str, check: bool) -> tuple[dict[str, str], list[str]]:
    """md5 of a single-file suite, and a loud note when it is not the file VLMEvalKit pins."""
    if not path.is_file():
        return {}, []
    md5 = file_md5(path)
    expected = spec.md5_for(profile)
    notes = []
    if check and expected and md5 != expected:
        notes.append(f"{spec.name}: md5 mismatch for {path} (expected {expected}, got {md5}); "
                     "scores are not comparable with published numbers")
    return {str(path): md5}, notes


def _write_suite_error(suite_dir: Path, name: str, spec: SuiteSpec | None, profile: str,
                       reason: str) -> dict[str, Any]:
    """scores.json of a suite that could not be run or scored: no metrics, and why."""
    scores = {"suite": name, "scorer": spec.scorer if spec else None, "profile": profile,
              "preset": spec.preset if spec else None, "judge": {"identity": "none"}, "metrics": {},
              "headline": list(spec.headline) if spec else [], "categories": {},
              "n": 0, "n_failed": 0, "failures": [], "notes": [f"{name}: cannot be run: {reason}"]}
    fsio.write_json(suite_dir / "scores.json", scores)
    return scores


def _check_run_dir(out: Path, identity: dict[str, Any]) -> None:
    """Refuse to mix two checkpoints' samples in one run directory (a damaged run.json reads as absent)."""
    previous = fsio.read_json(out / "run.json", default={})
    if isinstance(previous, dict):
        old = previous.get("model", {})
        keys = ("path", "config_sha256", "index_sha256")
        if old and any(old.get(k) != identity.get(k) for k in keys):
            raise SystemExit(f"{out} holds results of another model ({old.get('path')}); choose another --out")


def judge_spec_for(cfg: RunConfig, spec: SuiteSpec) -> str | None:
    """`--judge default` picks the profile's judge for the suite, as that VLMEvalKit version defaults it."""
    if spec.judge == "none" or not cfg.judge or cfg.judge == "none":
        return None
    if cfg.judge != "default":
        return cfg.judge
    profile = get_profile(cfg.profile)
    return profile.judge_mathvista if spec.scorer == "mathvista" else profile.judge_mcq


class _Judges:
    """One judge object per judge spec for the whole run (its cache, connection and probe result are
    shared); each suite gets its own session of it: usage counted per suite, `judge_budget_s` each."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self._built: dict[str, Any] = {}

    def for_suite(self, spec: SuiteSpec) -> Any:
        name = judge_spec_for(self.cfg, spec)
        if name is None:
            return None
        if name not in self._built:
            from vita_eval.judges.factory import build_judge

            cfg = self.cfg
            self._built[name] = build_judge(name, base_url=cfg.judge_base_url, cache_dir=cfg.judge_cache,
                                            max_concurrency=cfg.judge_concurrency, retry=cfg.judge_retry,
                                            timeout=cfg.judge_timeout)
        return suite_session(self._built[name], self.cfg.judge_budget_s)


def run_suite_guarded(name: str, cfg: RunConfig, model: Any, judges: _Judges, out: Path, dist: Dist) -> dict | None:
    """`run_one_suite`, with any exception made that suite's scores.json (the suite boundary).

    The suite's older scores.json is set aside first, so a suite that fails, or a run killed
    in it, never leaves a previous run's numbers looking current.
    """
    suite_dir = out / name
    if dist.is_main:
        retire_scores(suite_dir)
    try:
        return run_one_suite(name, cfg, model, judges, out, dist)
    except Exception as exc:  # the boundary: one suite's failure (or bug) must not cost the others
        if isinstance(exc, SuiteError):
            log.error("%s", exc)
        else:
            log.exception("%s failed", name)
        reason = str(exc) if isinstance(exc, SuiteError) else f"{type(exc).__name__}: {exc}"
        if not dist.is_main:
            return None
        return _write_suite_error(suite_dir, name, _spec_or_none(name), cfg.profile, reason)


def _spec_or_none(name: str) -> SuiteSpec | None:
    """The suite's declaration for its error file, or None when it is unknown or unreadable."""
    try:
        return get_suite(name)
    except SuiteError:
        return None


def run_one_suite(name: str, cfg: RunConfig, model: Any, judges: _Judges, out: Path, dist: Dist) -> dict | None:
    spec = get_suite(name)
    suite_dir = out / name
    root = Path(cfg.data_root) if cfg.data_root else lmu_data_root()
    path = data_path(spec, root, cfg.data.get(name))
    data: SuiteData = load_suite_data(spec, path, allow_outside_root=cfg.allow_outside_root)
    files, notes = _data_files(spec, path, cfg.profile, cfg.check_md5)
    files = files or data.files
    samples = data.samples[: cfg.limit] if cfg.limit else data.samples
    preset_args = {**spec.preset_args, **cfg.suite_args.get(name, {}).get("preset_args", {})}
    if dist.is_main:
        check_fingerprint(suite_dir, {"model": model.identity, "preset": spec.preset, "preset_args": preset_args,
                                      "max_new_tokens": cfg.max_new_tokens})
    dist.barrier()
    stats = infer_suite(model, spec, samples, suite_dir, preset=registry.get("preset", spec.preset), preset_args=preset_args,
                        batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens, dist=dist)
    dist.barrier()
    if not dist.is_main:
        return None
    merge_records(suite_dir, [s.uid for s in samples])
    if cfg.limit:
        keep = {s.uid for s in samples}
        data = SuiteData(data.table[data.table["index"].astype(str).isin(keep)], samples, data.files,
                         [p for p in data.problems if str(p["uid"]) in keep], data.notes)
    extra = {"data_files": files, "preset_args": preset_args, "wall_s": round(stats.wall_s, 3),
             "samples_per_s": round(stats.samples_per_s, 3), "n_inferred_now": stats.n_new,
             "n_resumed": stats.n_done_before, "notes": notes}
    records = read_records(suite_dir)
    predictions = predictions_from_records((asdict(records[s.uid]) for s in samples if s.uid in records),
                                           literal=literal_text(spec.scorer))
    scores = score_suite(spec, data, predictions, suite_dir, profile=cfg.profile, judge=judges.for_suite(spec),
                         model_name=model.name,
                         extra=extra, asr_normalizer=cfg.asr_normalizer)
    speak_suite_of_run(spec, cfg, data, records, model, suite_dir, judges.for_suite(spec))  # only with speech_out
    return scores


def run(cfg: RunConfig) -> Path:
    started = time.time()
    device = pick_device(cfg.device)
    dist = init_distributed(device)
    if device == "cuda" and dist.world > 1:
        device = f"cuda:{dist.local_rank}"
    model = load_model(cfg.model, device=device, dtype=pick_dtype(cfg.dtype, device), name=cfg.model_name)
    out = Path(cfg.out or Path("outputs") / model.name)
    lock = lock_run_dir(out) if dist.is_main else None  # a second process on `out` exits here
    try:
        if dist.is_main:
            _check_run_dir(out, model.identity)
            _write_run_json(out, cfg, model, device, dist, started, finished=False)  # provenance survives a kill
        judges = _Judges(cfg)
        for name in cfg.suites:
            run_suite_guarded(name, cfg, model, judges, out, dist)
        if dist.is_main:
            _write_run_json(out, cfg, model, device, dist, started, finished=True)
            if cfg.report:
                from vita_eval.reports.compare import write_report

                write_report([out], out=out, n_boot=cfg.report_bootstrap, seed=cfg.seed)
    finally:
        if lock is not None:
            lock.release()
    shutdown(dist)
    return out


def _write_run_json(out: Path, cfg: RunConfig, model: Any, device: str, dist: Dist, started: float,
                    finished: bool) -> None:
    run = {
        "run_id": out.name, "model": model.identity, "device": device, "dtype": model.dtype,
        "world_size": dist.world, "config": cfg.as_dict(), "versions": provenance.versions(),
        "hardware": provenance.hardware(), "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "finished": finished, "wall_s": round(time.time() - started, 3), "peak_mem": provenance.peak_memory(),
    }
    fsio.write_json(out / "run.json", run)
