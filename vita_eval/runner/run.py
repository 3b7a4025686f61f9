"""`vita-eval run`: model x suites -> records -> scores -> report, resumable, one or many ranks.

The run directory is the unit of resumption: running the same command again skips
every sample already recorded there (`runner.preflight` picks the directory, one per
configuration). Everything checkable is checked before the model loads, and one process
holds a run directory at a time (`vita_eval.runner.lock`). Suites fail alone: any
exception in one suite's path (its data, inference, scoring, or a bug) gives that suite a
scores.json that says why, the run goes on to the next, and the run's result lists it as
failed. Every file is written atomically (`vita_eval.fsio`).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vita_eval import fsio, registry
from vita_eval.config import ConfigError, RunConfig
from vita_eval.data.checksums import file_md5
from vita_eval.judges.base import suite_session
from vita_eval.models import load_model
from vita_eval.models.vita import pick_device, pick_dtype
from vita_eval.runner import provenance
from vita_eval.runner.distributed import Dist, init_distributed, shutdown
from vita_eval.runner.inference import check_fingerprint, infer_suite
from vita_eval.runner.lock import lock_run_dir
from vita_eval.runner.preflight import Plan, judge_spec_for, plan_run
from vita_eval.runner.records import merge_records, read_records
from vita_eval.runner.scoring import retire_scores, score_suite
from vita_eval.scorers.base import literal_text
from vita_eval.scorers.predictions import predictions_from_records
from vita_eval.speech.suite import speak_suite_of_run
from vita_eval.suites import SuiteSpec, load_suite_data
from vita_eval.types import Sample, SuiteData, SuiteError

log = logging.getLogger("vita_eval")
FAILED_STATUSES = ("not_run", "not_scored")


class Phases:
    """Wall and CPU (user + sys of this process) seconds per phase of a run, for run.json and benchmarks."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = {}
        self.add("startup", _process_wall(), time.process_time())  # interpreter + imports + argument parsing

    def add(self, name: str, wall: float, cpu: float) -> None:
        slot = self.seconds.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
        slot["wall_s"] = round(slot["wall_s"] + wall, 3)
        slot["cpu_s"] = round(slot["cpu_s"] + cpu, 3)

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - wall, time.process_time() - cpu)


def _process_wall() -> float:
    """Seconds since this process started (so imports before `run` are counted)."""
    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


@dataclass
class RunResult:
    out: Path
    suites: dict[str, dict[str, Any]] = field(default_factory=dict)  # suite -> scores.json content
    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def failed(self) -> dict[str, str]:
        """Suites that could not be run or scored, with the reason."""
        return {name: next(iter(s.get("warnings") or s.get("notes") or ["see scores.json"]))
                for name, s in self.suites.items() if s.get("status") in FAILED_STATUSES}


def _data_files(spec: SuiteSpec, path: Path, profile: str, check: bool) -> tuple[dict[str, str], list[str]]:
    """md5 of a single-file suite, and a loud warning when it is not the file VLMEvalKit pins."""
    if not path.is_file():
        return {}, []
    md5 = file_md5(path)
    expected = spec.md5_for(profile)
    warnings = []
    if check and expected and md5 != expected:
        warnings.append(f"{spec.name}: md5 mismatch for {path} (expected {expected}, got {md5}); "
                        "scores are not comparable with published numbers")
    return {str(path): md5}, warnings


def _write_suite_error(suite_dir: Path, spec: SuiteSpec, profile: str, reason: str) -> dict[str, Any]:
    """scores.json of a suite that could not be run: no metrics, and why."""
    scores = {"suite": spec.name, "scorer": spec.scorer, "status": "not_run", "partial": None, "profile": profile,
              "preset": spec.preset, "judge": {"identity": "none"}, "metrics": {}, "headline": list(spec.headline),
              "categories": {}, "n": 0, "n_failed": 0, "failures": [],
              "warnings": [f"{spec.name}: cannot be run: {reason}"], "notes": []}
    fsio.write_json(suite_dir / "scores.json", scores)
    return scores


def _check_run_dir(out: Path, identity: dict[str, Any]) -> None:
    """Refuse to mix two checkpoints' samples in one run directory (same path, other weights)."""
    previous = fsio.read_json(out / "run.json", default={})  # damaged: read as absent (with a warning)
    old = previous.get("model", {}) if isinstance(previous, dict) else {}
    keys = ("path", "config_sha256", "index_sha256")
    if old and any(old.get(k) != identity.get(k) for k in keys):
        raise ConfigError(f"{out} holds results of another model ({old.get('path')}, other weights); "
                          "choose another --out")


def limited(samples: list[Sample], limit: int | None, group_by: str | None) -> list[Sample]:
    """The first `limit` samples, rounded up to whole groups (MME's image pairs, a video's questions)."""
    if not limit or limit >= len(samples):
        return samples
    if not group_by:
        return samples[:limit]
    groups: dict[Any, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.fields.get(group_by, sample.uid), []).append(sample)
    taken: list[Sample] = []
    for members in groups.values():
        if len(taken) >= limit:
            break
        taken += members
    return taken


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


def run_suite_guarded(spec: SuiteSpec, path: Path, cfg: RunConfig, model: Any, judges: _Judges, out: Path,
                      dist: Dist, phases: Phases) -> dict[str, Any] | None:
    """`run_one_suite`, with any exception made that suite's scores.json (the suite boundary).

    The suite's older scores.json is set aside first, so a suite that fails, or a run killed
    in it, never leaves a previous run's numbers looking current.
    """
    suite_dir = out / spec.name
    if dist.is_main:
        retire_scores(suite_dir)
    try:
        return run_one_suite(spec, path, cfg, model, judges, out, dist, phases)
    except Exception as exc:  # the boundary: one suite's failure (or bug) must not cost the others
        if isinstance(exc, SuiteError):
            log.error("%s", exc)
        else:
            log.exception("%s failed", spec.name)
        reason = str(exc) if isinstance(exc, SuiteError) else f"{type(exc).__name__}: {exc}"
        return _write_suite_error(suite_dir, spec, cfg.profile, reason) if dist.is_main else None


def run_one_suite(spec: SuiteSpec, path: Path, cfg: RunConfig, model: Any, judges: _Judges, out: Path, dist: Dist,
                  phases: Phases) -> dict[str, Any] | None:
    name = spec.name
    suite_dir = out / name
    with phases.time("data"):
        data: SuiteData = load_suite_data(spec, path, allow_outside_root=cfg.allow_outside_root)
        files, warnings = _data_files(spec, path, cfg.profile, cfg.md5_checked())
    files = files or data.files
    samples = limited(data.samples, cfg.limit, spec.group_by)
    partial = {"n": len(samples), "of": len(data.samples)} if len(samples) < len(data.samples) else None
    preset_args = {**spec.preset_args, **cfg.suite_args.get(name, {}).get("preset_args", {})}
    if dist.is_main:
        check_fingerprint(suite_dir, {"model": model.identity, "preset": spec.preset, "preset_args": preset_args,
                                      "max_new_tokens": cfg.max_new_tokens})
    dist.barrier()
    with phases.time("inference"):
        stats = infer_suite(model, spec, samples, suite_dir, preset=registry.get("preset", spec.preset),
                            preset_args=preset_args, batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens,
                            dist=dist)
    dist.barrier()
    if not dist.is_main:
        return None
    with phases.time("scoring"):
        merge_records(suite_dir, [s.uid for s in samples])
        if partial:
            keep = {s.uid for s in samples}
            data = SuiteData(data.table[data.table["index"].astype(str).isin(keep)], samples, data.files,
                             [p for p in data.problems if str(p["uid"]) in keep], data.notes)
        extra = {"data_files": files, "preset_args": preset_args, "wall_s": round(stats.wall_s, 3),
                 "samples_per_s": round(stats.samples_per_s, 3), "n_inferred_now": stats.n_new,
                 "n_resumed": stats.n_done_before, "warnings": warnings}
        records = {uid: asdict(rec) for uid, rec in read_records(suite_dir).items()}
        predictions = predictions_from_records((records[s.uid] for s in samples if s.uid in records),
                                               literal=literal_text(spec.scorer))
        scores = score_suite(spec, data, predictions, suite_dir, profile=cfg.profile, judge=judges.for_suite(spec),
                             model_name=model.name, extra=extra, asr_normalizer=cfg.asr_normalizer, records=records,
                             partial=partial)
    with phases.time("speech_out"):  # only suites with speech_out: speak, transcribe and score the answers
        speak_suite_of_run(spec, cfg, data, records, model, suite_dir, judges.for_suite(spec))
    return scores


def run(cfg: RunConfig, *, force: bool = False) -> Path:
    """Check `cfg`, run it, return the run directory (`run_plan` also returns every suite's scores)."""
    return run_plan(plan_run(cfg, force=force)).out


def run_plan(plan: Plan) -> RunResult:
    """Run a checked plan: the run directory, every suite's scores.json content and the phase times."""
    phases = Phases()
    started = time.time()
    cfg = plan.cfg
    device = pick_device(cfg.device)
    dist = init_distributed(device)
    if device == "cuda" and dist.world > 1:
        device = f"cuda:{dist.local_rank}"
    out = plan.out
    lock = lock_run_dir(out) if dist.is_main else None  # a second process on `out` exits here, before loading
    try:
        with phases.time("model_load"):
            model = load_model(cfg.model, device=device, dtype=pick_dtype(cfg.dtype, device), name=cfg.model_name,
                               engine=cfg.engine)
        if dist.is_main:
            _check_run_dir(out, model.identity)
            _write_run_json(out, plan, model, device, dist, started, finished=False, phases=phases)  # survives a kill
        judges = _Judges(cfg)
        result = RunResult(out=out)
        for spec in plan.specs:
            scores = run_suite_guarded(spec, plan.data[spec.name], cfg, model, judges, out, dist, phases)
            if scores is not None:
                result.suites[spec.name] = scores
        if dist.is_main:
            if cfg.report:
                from vita_eval.reports.compare import write_report

                with phases.time("report"):
                    write_report([out], out=out, n_boot=cfg.report_bootstrap, seed=cfg.seed)
            result.phases = phases.seconds
            _write_run_json(out, plan, model, device, dist, started, finished=True, phases=phases)
            _write_results(out, plan, result)
    finally:
        if lock is not None:
            lock.release()
    shutdown(dist)
    return result


def _write_run_json(out: Path, plan: Plan, model: Any, device: str, dist: Dist, started: float, *, finished: bool,
                    phases: Phases) -> None:
    cfg = plan.cfg
    info = {
        "run_id": out.name, "model": model.identity, "engine": getattr(model, "engine_name", None), "device": device,
        "dtype": model.dtype,
        "world_size": dist.world, "config": cfg.as_dict(), "configuration_id": plan.fingerprint_id,
        "data_root": str(cfg.data_root_path()), "versions": provenance.versions(), "hardware": provenance.hardware(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)), "finished": finished,
        "wall_s": round(time.time() - started, 3), "peak_mem": provenance.peak_memory(), "phases": phases.seconds,
    }
    fsio.write_json(out / "run.json", info)


def _write_results(out: Path, plan: Plan, result: RunResult) -> None:
    """results.json: the whole run in one file (every suite's status, metrics, n and failures)."""
    keys = ("status", "partial", "headline", "metrics", "n", "n_failed", "warnings", "notes")
    fsio.write_json(out / "results.json", {
        "run_dir": str(out), "configuration_id": plan.fingerprint_id, "model": plan.cfg.model,
        "data_root": str(plan.cfg.data_root_path()), "profile": plan.cfg.profile,
        "suites": {name: {k: scores.get(k) for k in keys} for name, scores in result.suites.items()},
        "failed_suites": result.failed, "phases": result.phases,
    })
