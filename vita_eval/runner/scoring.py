"""Turn a suite's records into scores.json, per_sample.jsonl and VLMEvalKit's prediction file.

Every failed sample is counted once, with the first reason found: a row the loader
could not use, an input or generation error, or a row the scorer could not score.
A suite that cannot be scored still gets a scores.json that says why.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from vita_eval.scorers.base import ScoreResult, get_scorer
from vita_eval.scorers.predictions import write_vlmevalkit_xlsx
from vita_eval.scorers.profiles import get_profile
from vita_eval.suites import SuiteSpec
from vita_eval.types import SuiteData, SuiteError


def _failures(data: SuiteData, result: ScoreResult | None) -> list[dict[str, str]]:
    """Loader problems first, then what the scorer could not score (it carries inference errors)."""
    seen: dict[str, str] = {}
    for item in list(data.problems) + (result.failures if result else []):
        seen.setdefault(str(item["uid"]), item["reason"])
    return [{"uid": u, "reason": r} for u, r in seen.items()]


def resolve_categories(spec: SuiteSpec, metrics: dict[str, Any]) -> dict[str, list[str]]:
    """`"*"` in a suite's categories means every metric not named elsewhere."""
    named = set(spec.headline) | {m for v in spec.categories.values() if isinstance(v, list) for m in v}
    out: dict[str, list[str]] = {}
    for group, names in spec.categories.items():
        if names == "*":
            out[group] = [m for m in metrics if m not in named and isinstance(metrics[m], (int, float))]
        else:
            out[group] = [m for m in names if m in metrics]
    return out


def score_suite(spec: SuiteSpec, data: SuiteData, predictions: pd.DataFrame, out_dir: Path, *, profile: str,
                judge: Any, model_name: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    """Score and write scores.json (+ per_sample.jsonl, + the VLMEvalKit .xlsx); return the scores dict."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if model_name:
        write_vlmevalkit_xlsx(data.table, predictions, out_dir / f"{model_name}_{spec.name}.xlsx")
    result: ScoreResult | None = None
    error = None
    started = time.perf_counter()
    try:
        result = get_scorer(spec.scorer).score(data.table, predictions, profile=get_profile(profile), judge=judge,
                                               **spec.scorer_args)
    except SuiteError as exc:
        error = str(exc)
    failures = _failures(data, result)
    scores = {
        "suite": spec.name, "scorer": spec.scorer, "profile": profile, "preset": spec.preset,
        "judge": result.judge if result else {"identity": getattr(judge, "identity", "none")},
        "metrics": result.metrics if result else {},
        "headline": list(spec.headline),
        "categories": resolve_categories(spec, result.metrics) if result else {},
        "n": len(data.table) + len(data.problems),
        "n_failed": len(failures), "failures": failures,
        "notes": extra.pop("notes", []) + (result.notes if result else [])
        + ([f"{spec.name}: cannot be scored: {error}"] if error else []),
        "scoring_s": round(time.perf_counter() - started, 3),
        **extra,
    }
    (out_dir / "scores.json").write_text(json.dumps(scores, indent=2, ensure_ascii=False, default=str))
    if result is not None and not result.per_sample.empty:
        result.per_sample.to_json(out_dir / "per_sample.jsonl", orient="records", lines=True, force_ascii=False)
    return scores
