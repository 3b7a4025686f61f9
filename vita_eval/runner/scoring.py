"""Turn a suite's records into scores.json, per_sample.jsonl and VLMEvalKit's prediction file.

Every failed sample is counted once, with the first reason found: a row the loader
could not use, an input or generation error, or a row the scorer could not score.
A suite that cannot be scored (a SuiteError, or any exception a scorer raises) still gets
a scores.json that says why. Every file is written atomically (`vita_eval.fsio`), and the
files of an earlier scoring are set aside before a new one starts (`retire_scores`), so a
failed or killed scoring never leaves old numbers looking current.
"""
from __future__ import annotations

import inspect
import logging
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from vita_eval import fsio
from vita_eval.scorers.base import ScoreResult, flat_metrics, get_scorer
from vita_eval.scorers.predictions import write_vlmevalkit_xlsx
from vita_eval.scorers.profiles import get_profile
from vita_eval.suites import SuiteSpec
from vita_eval.types import SuiteData, SuiteError

log = logging.getLogger(__name__)
SCORE_FILES = ("scores.json", "per_sample.jsonl")


def retire_scores(out_dir: Path) -> None:
    """Rename an earlier scores.json / per_sample.jsonl to `*.previous.*` (kept, never current)."""
    for name in SCORE_FILES:
        path = out_dir / name
        if path.exists():
            os.replace(path, path.with_name(f"{path.stem}.previous{path.suffix}"))


def _failures(data: SuiteData, result: ScoreResult | None) -> list[dict[str, str]]:
    """Loader problems first, then what the scorer could not score (it carries inference errors)."""
    seen: dict[str, str] = {}
    for item in list(data.problems) + (result.failures if result else []):
        seen.setdefault(str(item["uid"]), item["reason"])
    return [{"uid": u, "reason": r} for u, r in seen.items()]


def _judge_notes(judge: Any) -> list[str]:
    """The judge session's own account of its failures (the counters scores.json reports)."""
    notes = getattr(judge, "notes", None)
    return list(notes()) if callable(notes) else []


def resolve_categories(spec: SuiteSpec, metrics: dict[str, Any]) -> dict[str, list[str]]:
    """Category lists from the suite YAML: names, `prefix*` patterns, or `"*"` (every other number).

    Names of nested metrics are their key paths joined as `flat_metrics` joins them.
    """
    metrics = flat_metrics(metrics)
    numeric = [m for m, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    explicit = {m for v in spec.categories.values() if isinstance(v, list) for m in v}
    out: dict[str, list[str]] = {}
    for group, names in spec.categories.items():
        if names == "*":
            out[group] = [m for m in numeric if m not in explicit and m not in spec.headline]
        elif isinstance(names, str) and names.endswith("*"):
            out[group] = [m for m in numeric if m.startswith(names[:-1])]
        else:
            out[group] = [m for m in names if m in metrics]
    return out


def profile_overrides(spec: SuiteSpec, asr_normalizer: str | None = None) -> dict[str, Any]:
    """The suite's profile overrides, plus the run's ASR normalizer for ASR suites."""
    overrides = dict(spec.profile_overrides)
    if asr_normalizer and spec.scorer == "asr":
        overrides["asr_normalizer"] = asr_normalizer
    return overrides


def run_scorer(spec: SuiteSpec, table: pd.DataFrame, predictions: pd.DataFrame, *, profile: str, judge: Any,
               asr_normalizer: str | None = None, **overrides: Any) -> ScoreResult:
    """The suite's registered scorer on one prediction table (VLMEvalKit dataset name passed when it asks)."""
    scorer = get_scorer(spec.scorer)
    kwargs = {"dataset": spec.name} if "dataset" in inspect.signature(scorer.score).parameters else {}
    fields = {**profile_overrides(spec, asr_normalizer), **overrides}
    return scorer.score(table, predictions, profile=get_profile(profile, **fields), judge=judge, **kwargs)


def score_suite(spec: SuiteSpec, data: SuiteData, predictions: pd.DataFrame, out_dir: Path, *, profile: str,
                judge: Any, model_name: str | None, extra: dict[str, Any],
                asr_normalizer: str | None = None) -> dict[str, Any]:
    """Score and write scores.json (+ per_sample.jsonl, + the VLMEvalKit .xlsx); return the scores dict."""
    overrides = profile_overrides(spec, asr_normalizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    retire_scores(out_dir)
    notes = list(extra.pop("notes", [])) + list(data.notes)
    if model_name:
        try:
            write_vlmevalkit_xlsx(data.table, predictions, out_dir / f"{model_name}_{spec.name}.xlsx")
        except Exception as exc:  # the predictions are safe in samples.jsonl; say why the file is missing
            log.exception("%s: prediction file not written", spec.name)
            notes.append(f"{spec.name}: VLMEvalKit prediction file not written: {type(exc).__name__}: {exc}")
    result: ScoreResult | None = None
    error = None
    started = time.perf_counter()
    try:
        result = run_scorer(spec, data.table, predictions, profile=profile, judge=judge, asr_normalizer=asr_normalizer)
    except SuiteError as exc:
        error = str(exc)
    except Exception as exc:  # a scorer bug or unforeseen data: this suite's error, not the run's
        log.exception("%s: scoring failed", spec.name)
        error = f"{type(exc).__name__}: {exc}"
    failures = _failures(data, result)
    scores = {
        "suite": spec.name, "scorer": spec.scorer, "profile": profile, "profile_overrides": overrides,
        "preset": spec.preset,
        "judge": result.judge if result else {"identity": getattr(judge, "identity", "none")},
        "metrics": result.metrics if result else {},
        **({"printed": result.printed} if result and result.printed else {}),
        "headline": list(spec.headline),
        "categories": resolve_categories(spec, result.metrics) if result else {},
        "n": len(data.table) + len(data.problems),
        "n_failed": len(failures), "failures": failures,
        "notes": notes + (result.notes if result else []) + _judge_notes(judge)
        + ([f"{spec.name}: cannot be scored: {error}"] if error else []),
        "scoring_s": round(time.perf_counter() - started, 3),
        **extra,
    }
    if result is not None and not result.per_sample.empty:
        with fsio.atomic_path(out_dir / "per_sample.jsonl") as tmp:
            result.per_sample.to_json(tmp, orient="records", lines=True, force_ascii=False)
    fsio.write_json(out_dir / "scores.json", scores)  # last: its presence means the scoring is complete
    return scores
