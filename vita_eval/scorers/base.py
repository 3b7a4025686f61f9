"""What every scorer returns, and how a suite's `scorer:` name becomes a scorer.

A scorer takes the dataset rows and the predictions (both pandas DataFrames in
VLMEvalKit's column layout) and returns a `ScoreResult`. Its `per_sample` table
keeps one row per scored unit with a `cluster` column (the image, video or
circular group that samples share) plus whatever its `aggregate` function needs,
so that reports can bootstrap any metric by resampling clusters and calling the
same `aggregate` again: one source of truth for every number.

A scorer may add `aggregate_weighted(per_sample, weights)`: the same numbers for many
resamples at once, where `weights[b, row]` is how often a row appears in resample b.
Reports use it only after checking it against `aggregate` on the table itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

import numpy as np
import pandas as pd


@dataclass
class ScoreResult:
    metrics: dict[str, Any]  # VLMEvalKit's names and scales
    n: int  # rows scored (denominator of the suite)
    failures: list[dict[str, str]] = field(default_factory=list)  # {"uid", "reason"}
    per_sample: pd.DataFrame = field(default_factory=pd.DataFrame)  # uid, cluster, ...
    notes: list[str] = field(default_factory=list)  # e.g. "judge unavailable: 212 rows scored wrong"
    judge: dict[str, Any] = field(default_factory=dict)  # judge identity and usage, filled by the scorer
    # `metrics` exactly as the profile's VLMEvalKit version prints them, where it prints strings
    # (Video-MME's rating dict: "0.583"); same keys as `metrics`, empty when VLMEvalKit prints the numbers.
    printed: dict[str, Any] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @classmethod
    def of(cls, per_sample: pd.DataFrame, metrics: dict[str, Any], failures: list[dict[str, str]],
           notes: list[str], judge: Any | None = None, printed: dict[str, Any] | None = None) -> "ScoreResult":
        """The usual result: `n` counts the scored rows, `judge` reports the judge's identity and usage."""
        from vita_eval.scorers.judging import judge_report

        return cls(metrics=metrics, n=len(per_sample), failures=failures, per_sample=per_sample, notes=notes,
                   judge=judge_report(judge), printed=printed or {})


METRIC_PATH = " / "  # joins nested metric keys into one name: "short / domain / Knowledge"


def flat_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Nested metric dicts (Video-MME's rating layout) as one level of names joined by METRIC_PATH.

    scores.json keeps the scorer's nesting; tables, bootstraps and the suite YAML's `headline` and
    `categories` need one name per number. Other values (numbers, strings, lists) are kept as they are.
    """
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update({f"{key}{METRIC_PATH}{name}": v for name, v in flat_metrics(value).items()})
        else:
            flat[key] = value
    return flat


class Scorer(Protocol):
    name: str
    data_columns: tuple[str, ...]  # dataset columns `score` reads (a prediction file carrying them needs no --data)

    def score(self, data: pd.DataFrame, predictions: pd.DataFrame, *, profile: Any, judge: Any | None) -> ScoreResult: ...

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, Any]: ...  # numbers, or dicts of them (flat_metrics)


def get_scorer(name: str) -> Scorer:
    """A fresh scorer for a suite's `scorer:` name (see `vita_eval.registry`)."""
    from vita_eval.registry import get

    return get("scorer", name)()


def weighted_sums(weights: np.ndarray, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per resample, sum over rows of weight x column, for every column in one matrix product."""
    names = list(columns)
    if not names:
        return {}
    matrix = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in names])
    totals = weights @ matrix
    return {name: totals[:, i] for i, name in enumerate(names)}


def ratio(numerator: np.ndarray, denominator: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """numerator / denominator x scale, NaN where the denominator is 0 (an empty group has no value)."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe * scale, np.nan)


def literal_text(scorer: str) -> bool:
    """Whether the scorer reads predictions as written text (ASR) instead of through pandas' NA strings,
    which VLMEvalKit's scorers apply (`prediction` "None" -> NaN -> "nan")."""
    return bool(getattr(get_scorer(scorer), "literal_text", False))
