"""Turn a suite's records into scores.json, per_sample.jsonl, log_samples.jsonl, judge_calls.jsonl and VLMEvalKit's
prediction file.

Every failed sample is counted once, with the first reason found: a row the loader
could not use, an input or generation error, or a row the scorer could not score.
A suite that cannot be scored (a SuiteError, or any exception a scorer raises) still gets
a scores.json that says why. Every file is written atomically (`vita_eval.fsio`), and the
files of an earlier scoring are set aside before a new one starts (`retire_scores`), so a
failed or killed scoring never leaves old numbers looking current. Its `status` says
whether it was scored.

log_samples.jsonl is lmms-eval's `--log_samples` for every suite at once: one line per
dataset row joining what the data says (question, reference answer), what the model
said (raw output, the answer handed to the scorer, any error) and what the scorer
decided (its per_sample row: extracted answer, outcome, how it was decided), plus under
`judge` the judge calls made while scoring it. It is built here from those tables, so no
scorer has to write it.

judge_calls.jsonl holds every judge call of the scoring, one line each with the uid of the
sample it was for (prompt, reply, temperature, try, status, cached, judge identity), in
dataset order; it is rewritten by every scoring (empty when no judge was asked), so it always
matches the log_samples.jsonl written beside it.
"""
from __future__ import annotations

import inspect
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from vita_eval import fsio
from vita_eval.scorers.base import ScoreResult, flat_metrics, get_scorer
from vita_eval.scorers.judging import JudgeRecorder
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


def _plain(value: Any) -> Any:
    """A JSON-ready cell: numpy scalars unwrapped, NaN as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


TABLE_FIELDS = {"question": "question", "answer": "reference"}  # data table column -> log field
SCORING_SKIP = ("uid", "cluster", "stratum")


def sample_log(table: pd.DataFrame, records: Mapping[str, Mapping[str, Any]], per_sample: pd.DataFrame,
               failures: list[dict[str, str]], judge_calls: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """One record per dataset row: question, reference, raw output, scorer input, scorer decision, error,
    and `judge`, its judge calls (only on rows the judge was asked about)."""
    scored = {str(row["uid"]): row for row in per_sample.to_dict(orient="records")} if "uid" in per_sample else {}
    failed = {f["uid"]: f["reason"] for f in failures}
    choices = [c for c in "ABCDEFGHIJ" if c in table.columns]
    asked: dict[str, list[dict[str, Any]]] = {}
    for call in judge_calls:
        if call["uid"] is not None:
            asked.setdefault(str(call["uid"]), []).append({k: v for k, v in call.items() if k != "uid"})
    out = []
    for row in table.to_dict(orient="records"):
        uid = str(row["index"])
        record = records.get(uid, {})
        decision = scored.get(uid)
        entry: dict[str, Any] = {"uid": uid}
        entry.update({name: _plain(row.get(column)) for column, name in TABLE_FIELDS.items() if column in row})
        if choices:
            entry["choices"] = {c: _plain(row[c]) for c in choices if _plain(row[c]) is not None}
        entry |= {"raw": record.get("raw"), "prediction": record.get("answer"),
                  "scoring": None if decision is None else
                  {k: _plain(v) for k, v in decision.items() if k not in SCORING_SKIP},
                  "error": record.get("error") or failed.get(uid)}
        if uid in asked:
            entry["judge"] = asked[uid]
        out.append(entry)
    return out


def calls_in_table_order(table: pd.DataFrame, calls: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Judge calls sorted by their sample's dataset row (calls of one sample keep their order; others last)."""
    position = {str(uid): i for i, uid in enumerate(table["index"])} if "index" in table else {}
    return sorted(calls, key=lambda call: position.get(str(call["uid"]), len(position)))


def score_suite(spec: SuiteSpec, data: SuiteData, predictions: pd.DataFrame, out_dir: Path, *, profile: str,
                judge: Any, model_name: str | None, extra: dict[str, Any],
                asr_normalizer: str | None = None, records: Mapping[str, Mapping[str, Any]] | None = None,
                partial: dict[str, int] | None = None) -> dict[str, Any]:
    """Score and write scores.json (+ per_sample.jsonl, log_samples.jsonl, judge_calls.jsonl, the VLMEvalKit .xlsx).

    `records` (uid -> samples.jsonl record) adds raw outputs to the log; `partial` ({"n", "of"}) marks a
    `--limit` subset: it is scored as far as it goes (MME without all its categories) and flagged.
    """
    overrides = profile_overrides(spec, asr_normalizer)
    if partial:
        overrides.setdefault("mme_require_all_categories", False)  # score the categories the subset has
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
    judge = JudgeRecorder(judge) if judge is not None else None
    started = time.perf_counter()
    try:
        result = run_scorer(spec, data.table, predictions, profile=profile, judge=judge, **overrides)
    except SuiteError as exc:
        error = str(exc)
    except Exception as exc:  # a scorer bug or unforeseen data: this suite's error, not the run's
        log.exception("%s: scoring failed", spec.name)
        error = f"{type(exc).__name__}: {exc}"
    failures = _failures(data, result)
    warnings = list(extra.pop("warnings", []))
    if partial:
        warnings.append(f"{spec.name}: partial: {partial['n']} of {partial['of']} samples (--limit); "
                        "not comparable with full-suite numbers")
    if error:
        warnings.append(f"{spec.name}: cannot be scored: {error}")
    scores = {
        "suite": spec.name, "scorer": spec.scorer, "status": "not_scored" if error else "scored",
        "partial": partial, "profile": profile, "profile_overrides": overrides,
        "preset": spec.preset,
        "judge": result.judge if result else {"identity": getattr(judge, "identity", "none")},
        "metrics": result.metrics if result else {},
        **({"printed": result.printed} if result and result.printed else {}),
        "headline": list(spec.headline),
        "categories": resolve_categories(spec, result.metrics) if result else {},
        "n": len(data.table) + len(data.problems),
        "n_failed": len(failures), "failures": failures,
        "warnings": warnings,
        "notes": notes + (result.notes if result else []) + _judge_notes(judge),
        "scoring_s": round(time.perf_counter() - started, 3),
        **extra,
    }
    per_sample = result.per_sample if result is not None else pd.DataFrame()
    if not per_sample.empty:
        with fsio.atomic_path(out_dir / "per_sample.jsonl") as tmp:
            per_sample.to_json(tmp, orient="records", lines=True, force_ascii=False)
    calls = calls_in_table_order(data.table, judge.calls if judge is not None else [])
    fsio.write_jsonl(out_dir / "judge_calls.jsonl", calls)
    fsio.write_jsonl(out_dir / "log_samples.jsonl",
                     sample_log(data.table, records or _records_from(predictions), per_sample, failures, calls))
    fsio.write_json(out_dir / "scores.json", scores)  # last: its presence means the scoring is complete
    return scores


def _records_from(predictions: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """A prediction file's rows as records (no raw output beyond the prediction itself)."""
    rows = predictions.to_dict(orient="records")
    return {str(r["index"]): {"raw": _plain(r.get("prediction")), "answer": _plain(r.get("prediction")),
                              "error": _plain(r.get("error"))} for r in rows}
