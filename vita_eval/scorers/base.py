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

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @classmethod
    def of(cls, per_sample: pd.DataFrame, metrics: dict[str, Any], failures: list[dict[str, str]],
           notes: list[str], judge: Any | None = None) -> "ScoreResult":
        """The usual result: `n` counts the scored rows, `judge` reports the judge's identity and usage."""
        from vita_eval.scorers.judging import judge_report

        return cls(metrics=metrics, n=len(per_sample), failures=failures, per_sample=per_sample, notes=notes,
                   judge=judge_report(judge))


class Scorer(Protocol):
    name: str

    def score(self, data: pd.DataFrame, predictions: pd.DataFrame, *, profile: Any, judge: Any | None) -> ScoreResult: ...

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, float]: ...


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
