"""Everything `vita-eval run` can check before a model loads, and where the run will write.

Ordinary mistakes (a misspelt suite, profile or `--set` key, a missing model folder or data file,
`--device cuda` without CUDA, a judge without its API key) become one `ConfigError` line that says
how to fix it, before the seconds-to-minutes of loading a checkpoint.

The run directory is chosen here too. A run's *configuration fingerprint* holds every setting that
changes its numbers (model, suites, data, profile, judge, limit, decoding caps, ...); settings that
do not (batch size, device, output folder, judge concurrency) are left out. Without `--out`, each
fingerprint gets its own folder `outputs/<model>/<suites>-<fingerprint>`, so running the same command
again resumes it and a run with other settings can never touch it. An explicit `--out` that holds a
run of another fingerprint is refused, unless `--force` moves that run aside (nothing is deleted).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vita_eval import registry
from vita_eval.config import ConfigError, RunConfig, embedded_suites
from vita_eval.fsio import read_json
from vita_eval.suites import SuiteSpec, data_path, load_registry

log = logging.getLogger(__name__)

# The settings that change a run's numbers; everything else may differ between invocations of one run.
RESULT_KEYS = ("model", "suites", "data_root", "data", "profile", "asr_normalizer", "judge", "judge_base_url",
               "limit", "max_new_tokens", "check_md5", "seed", "dtype", "suite_args")
OUTPUTS = Path("outputs")


@dataclass
class Plan:
    """A checked run: the suites in order, their data files, and the run directory."""

    cfg: RunConfig
    specs: list[SuiteSpec]
    data: dict[str, Path]
    model_name: str
    out: Path
    fingerprint: dict[str, Any]
    resumed_samples: int | None = None  # samples already recorded when resuming; None for a new run
    moved_aside: Path | None = None  # where --force moved the previous run
    hints: list[str] = field(default_factory=list)

    @property
    def fingerprint_id(self) -> str:
        return fingerprint_id(self.fingerprint)


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) or difflib.get_close_matches(
        name.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
    if not close:
        return ""
    match = next(k for k in known if k.lower() == close[0].lower())
    return f" (did you mean {match!r}?)"


def canonical_suites(names: list[str]) -> list[str]:
    """Suite names as registered: case-insensitive, comma lists split (`--suites mme,mmbench_dev_en`)."""
    known = sorted(load_registry())
    by_lower = {k.lower(): k for k in known}
    out: list[str] = []
    for item in names:
        for name in (part.strip() for part in item.split(",")):
            if not name:
                continue
            if name.lower() not in by_lower:
                raise ConfigError(f"unknown suite {name!r}{_did_you_mean(name, known)}; "
                                  "`vita-eval ls suites` lists them")
            if by_lower[name.lower()] not in out:
                out.append(by_lower[name.lower()])
    if not out:
        raise ConfigError("no suites given: name them with --suites NAME... (with --model, add --data-root samples "
                          "for the bundled sample suites), or use a --config that lists them")
    return out


def check_profile(name: str) -> None:
    from vita_eval.scorers.profiles import PROFILES

    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}{_did_you_mean(name, list(PROFILES))}; "
                          f"known: {', '.join(PROFILES)} (`vita-eval ls profiles` describes them)")


def check_plugins(spec: SuiteSpec) -> None:
    """The suite's loader, preset and scorer are registered (a plug-in may be missing or misspelt)."""
    for kind, name in (("loader", spec.loader), ("preset", spec.preset), ("scorer", spec.scorer)):
        try:
            registry.get(kind, name)
        except registry.RegistryError as exc:
            raise ConfigError(f"suite {spec.name}: {exc}") from None


def judge_spec_for(cfg: RunConfig, spec: SuiteSpec) -> str | None:
    """`--judge default` picks the profile's judge for the suite, as that VLMEvalKit version defaults it."""
    if spec.judge == "none" or not cfg.judge or cfg.judge.strip().lower() in ("none", "exact_matching"):
        return None
    if cfg.judge != "default":
        return cfg.judge
    from vita_eval.scorers.profiles import get_profile

    profile = get_profile(cfg.profile)
    return profile.judge_mathvista if spec.scorer == "mathvista" else profile.judge_mcq


def check_judges(cfg: RunConfig, specs: list[SuiteSpec]) -> None:
    """A local judge's folder exists; an OpenAI-hosted judge has its key (a local server needs none)."""
    wanted = {name for spec in specs if (name := judge_spec_for(cfg, spec))}
    for name in sorted(wanted):
        scheme, arg = registry.split_spec("judge", name, "openai")
        if scheme == "local" and not Path(arg).is_dir():
            raise ConfigError(f"--judge {name}: no model folder at {arg}")
        if scheme == "openai":
            from urllib.parse import urlsplit

            from vita_eval.judges.factory import resolve_base_url

            base = resolve_base_url(cfg.judge_base_url)
            if urlsplit(base).hostname == "api.openai.com" and not os.environ.get("OPENAI_API_KEY"):
                raise ConfigError(f"--judge {name} calls api.openai.com but OPENAI_API_KEY is not set; export it, "
                                  "or point --judge-base-url at your own server, or use --judge none")


def check_device(device: str) -> None:
    if device in ("auto", "cpu"):
        return
    if device == "cuda" or device.startswith("cuda:"):
        import torch

        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ConfigError(f"--device {device}: no CUDA device is available (torch {torch.__version__} is "
                              f"{build}); use --device cpu, or install the CUDA build of torch")
        return
    raise ConfigError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def model_name(cfg: RunConfig) -> str:
    """The name used in file names and the default run folder, without loading the model."""
    scheme, arg = registry.split_spec("model", cfg.model, "vita")
    if scheme == "vita":
        from vita_eval.models.vita import resolve_model_path

        try:
            path = resolve_model_path(arg, create=False)
        except FileNotFoundError as exc:
            raise ConfigError(f"--model: {exc}") from None
        return cfg.model_name or path.name
    return cfg.model_name or f"{scheme}-{Path(arg).name}"


def check_values(cfg: RunConfig) -> None:
    for key in ("limit", "batch_size", "max_new_tokens"):
        value = getattr(cfg, key)
        if value is not None and value < 1:
            raise ConfigError(f"{key} must be at least 1, got {value}")
    if cfg.dtype not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"dtype must be auto, fp32, bf16 or fp16, got {cfg.dtype!r}")
    if cfg.asr_normalizer not in (None, "wenet", "whisper"):
        raise ConfigError(f"asr_normalizer must be wenet or whisper, got {cfg.asr_normalizer!r}")


def suite_data(cfg: RunConfig, specs: list[SuiteSpec]) -> dict[str, Path]:
    """Each suite's data file or folder; every missing one is named in one error."""
    names = {s.name for s in specs}
    stray = sorted(set(cfg.data) - names)
    if stray:
        raise ConfigError(f"--data names suites that are not in this run: {', '.join(stray)}")
    root = cfg.data_root_path()
    paths = {s.name: data_path(s, root, cfg.data.get(s.name)) for s in specs}
    missing = [f"{name} ({path})" for name, path in paths.items() if not path.exists()]
    if missing:
        where = "--data-root DIR, $LMUData" if not cfg.data_root else "--data-root"
        raise ConfigError(f"data not found for {', '.join(missing)}; set {where} or --data SUITE=PATH "
                          "(`vita-eval data fetch SUITE` downloads VLMEvalKit's files; --data-root samples "
                          "uses the bundled samples)")
    return paths


def describe_data(cfg: RunConfig) -> str:
    root = cfg.data_root_path()
    md5 = "md5 checked against VLMEvalKit's pins" if cfg.md5_checked() else "md5 not checked"
    if cfg.uses_samples():
        return f"bundled sample suites in {root} (synthetic stand-ins in the official layouts; {md5})"
    origin = ("--data-root" if cfg.data_root else "$LMUData" if os.environ.get("LMUData")
              else "default ~/LMUData; set --data-root or $LMUData")
    return f"{root} ({origin}; {md5})"


# ---------------------------------------------------------------- run directory


def fingerprint(cfg: RunConfig) -> dict[str, Any]:
    """The settings that change the run's numbers, with paths made absolute (same run from any folder)."""
    values = {key: getattr(cfg, key) for key in RESULT_KEYS}
    scheme, arg = registry.split_spec("model", cfg.model, "vita")
    if scheme == "vita" and arg != "builtin:tiny":
        values["model"] = str(Path(arg).resolve())
    values["data_root"] = str(cfg.data_root_path().resolve())
    values["data"] = {k: str(Path(v).resolve()) for k, v in sorted(cfg.data.items())}
    values["check_md5"] = cfg.md5_checked()
    return values


def fingerprint_id(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:8]


def default_out(cfg: RunConfig, name: str, values: dict[str, Any]) -> Path:
    """outputs/<model>/<what>-<fingerprint>: readable, and one folder per configuration."""
    if cfg.suites == embedded_suites() and cfg.uses_samples():
        what = "samples"
    elif len(cfg.suites) <= 3:
        what = "+".join(cfg.suites)
    else:
        what = f"{len(cfg.suites)}suites"
    if cfg.limit:
        what += f"-limit{cfg.limit}"
    return OUTPUTS / name / f"{what}-{fingerprint_id(values)}"


def stored_fingerprint(run_json: dict[str, Any]) -> dict[str, Any] | None:
    """The fingerprint of a run directory's stored configuration (None when it has none)."""
    stored = run_json.get("config")
    if not isinstance(stored, dict):
        return None
    known = {k: v for k, v in stored.items() if k in RunConfig.__dataclass_fields__}
    try:
        return fingerprint(RunConfig(**known))
    except TypeError:
        return None


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    changed = [k for k in RESULT_KEYS if old.get(k) != new.get(k)]
    return "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:3]) + (
        f"; and {len(changed) - 3} more" if len(changed) > 3 else "")


def recorded_samples(out: Path) -> int:
    """Samples already recorded in a run directory (what a resume skips)."""
    count = 0
    for path in out.glob("*/samples*.jsonl"):
        with open(path, "rb") as fh:
            count += sum(1 for _ in fh)
    return count


def _has_run_files(out: Path) -> bool:
    """Whether a folder holds what `vita-eval run` writes (its lock, or per suite records, fingerprints, scores)."""
    return (out / ".lock").exists() or any(next(out.glob(f"*/{name}"), None) for name in ("samples*.jsonl", "fingerprint.json", "scores.json"))


def choose_run_dir(out: Path, values: dict[str, Any], *, force: bool) -> tuple[int | None, Path | None]:
    """(samples recorded when resuming or None, where --force moved the old run); refuses other runs' folders."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None, None
    info = read_json(out / "run.json")
    if not isinstance(info, dict):
        if not _has_run_files(out):
            raise ConfigError(f"{out} exists and is not a vita-eval run directory (no run.json); choose another --out")
        # a run killed before (or while) writing run.json: resume; each suite's fingerprint.json still
        # sets aside records made with other settings (runner.inference.check_fingerprint)
        log.warning("%s: run.json is missing or damaged; resuming from the suites' own records", out)
        return recorded_samples(out), None
    old = stored_fingerprint(info)
    if old == values:
        return recorded_samples(out), None
    if not force:
        what = _differences(old, values) if old else "its run.json has no configuration"
        raise ConfigError(f"{out} holds a run with other settings ({what}); to resume it run "
                          f"`vita-eval run --resume {out}`, or choose another --out, or add --force to move it "
                          f"to {out}.replaced-<time> and start afresh")
    aside = out.with_name(f"{out.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    if int(os.environ.get("RANK", "0")) == 0:
        out.rename(aside)
    return None, aside


def plan_run(cfg: RunConfig, *, force: bool = False) -> Plan:
    """Check everything that can be checked without the model; choose the run directory."""
    check_values(cfg)
    check_profile(cfg.profile)
    check_device(cfg.device)
    name = model_name(cfg)
    cfg.suites = canonical_suites(cfg.suites)
    registered = load_registry()
    specs = [registered[suite] for suite in cfg.suites]
    for spec in specs:
        check_plugins(spec)
    data = suite_data(cfg, specs)
    check_judges(cfg, specs)
    values = fingerprint(cfg)
    out = Path(cfg.out) if cfg.out else default_out(cfg, name, values)
    resumed, aside = choose_run_dir(out, values, force=force)
    hints = []
    if cfg.uses_samples() and os.environ.get("LMUData"):
        hints.append(f"$LMUData is set ({os.environ['LMUData']}) but this run reads the bundled samples; "
                     "add --data-root \"$LMUData\" to evaluate on it")
    return Plan(cfg=cfg, specs=specs, data=data, model_name=name, out=out, fingerprint=values,
                resumed_samples=resumed, moved_aside=aside, hints=hints)


def header(plan: Plan, source: str) -> list[str]:
    """The first lines a run prints: what runs, on which data, where it writes."""
    cfg = plan.cfg
    state = (f"resuming, {plan.resumed_samples} samples already recorded" if plan.resumed_samples is not None
             else "new run")
    lines = [
        f"config   {source}",
        f"model    {cfg.model}" + (f" (as {plan.model_name})" if plan.model_name not in cfg.model else ""),
        f"suites   {', '.join(cfg.suites)}" + (f" (first {cfg.limit} samples each: partial)" if cfg.limit else ""),
        f"data     {describe_data(cfg)}",
        f"scoring  profile {cfg.profile}, judge {cfg.judge or 'none'}"
        + (f", max {cfg.max_new_tokens} new tokens" if cfg.max_new_tokens else ""),
        f"output   {plan.out} ({state}; configuration {plan.fingerprint_id})",
    ]
    if plan.moved_aside:
        lines.append(f"moved    the previous run to {plan.moved_aside} (--force)")
    return lines + [f"note     {hint}" for hint in plan.hints]
