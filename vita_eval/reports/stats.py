"""Cluster bootstrap confidence intervals and paired tests between runs.

Every interval is computed by re-running the scorer's own `aggregate` on
resampled `per_sample` tables, so the CI describes exactly the number that
scores.json reports (MME's acc+ pairs, MMBench's circular groups, corpus-level
WER...), not a per-sample approximation of it. Resampling is by `cluster` (an
image, a video, a circular group) because samples sharing one are correlated:
an i.i.d. bootstrap would give intervals that are too narrow.

Paired comparisons draw the *same* clusters for both runs (same seed, same
cluster list), so the bootstrap distribution of B - A keeps the correlation
between two checkpoints answering the same questions.

A resample is a vector of cluster multiplicities. A scorer that also offers
`aggregate_weighted(per_sample, weights)` (rows x resamples as matrix products)
is evaluated on all resamples at once; the report checks on the unresampled table
that it gives `aggregate`'s numbers and otherwise falls back to the per-resample
loop, which stays the reference.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
import logging
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

Aggregate = Callable[[pd.DataFrame], Mapping[str, Any]]
# (per_sample, row weights of shape (resamples, rows)) -> metric -> one value per resample
WeightedAggregate = Callable[[pd.DataFrame, np.ndarray], Mapping[str, np.ndarray]]

WEIGHT_CHUNK = 256  # resamples per matrix product (bounds memory: chunk x rows floats)

# per_sample columns holding a 0/1 outcome per row, in order of preference (McNemar's test).
OUTCOME_COLUMNS = ("correct", "hit", "score")


@dataclass(frozen=True)
class Estimate:
    """One run's value of one metric: as stored in scores.json, plus its 95% CI if known."""

    shown: Any  # the value exactly as scores.json stores it (Video-MME keeps strings)
    value: float
    ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class PairedDiff:
    """Run B minus the baseline for one metric, with the paired cluster bootstrap p-value."""

    delta: float
    p: float | None  # None when a paired bootstrap was impossible (no per_sample, no scorer)
    ci: tuple[float, float] | None = None

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < 0.05


@dataclass(frozen=True)
class MetricComparison:
    """One row of a report table: a metric of a suite across all runs."""

    suite: str
    group: str  # "headline" or a `categories` group name ("category", "l2", ...)
    metric: str
    estimates: dict[str, Estimate | None]  # run label -> estimate (None: run lacks it)
    diffs: dict[str, PairedDiff | None] = field(default_factory=dict)  # non-baseline run label -> diff
    scorer: str | None = None  # names the metric's scale and readable name
    n: dict[str, int] = field(default_factory=dict)  # run label -> samples the suite scored


def lower_is_better(metric: str) -> bool:
    """Error rates (ASR WER/CER) improve downwards; every other metric here improves upwards."""
    return re.search(r"(?<![a-z])(wer|cer)(?![a-z])", metric.lower()) is not None


def metric_float(value: Any) -> float:
    """Numeric view of a stored metric ("0.583" -> 0.583); NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class ClusterLayout:
    """Rows grouped by cluster, so a draw of cluster ids maps to row ids with numpy only."""

    order: np.ndarray  # row positions sorted by cluster (stable)
    starts: np.ndarray  # first position in `order` of each cluster
    counts: np.ndarray  # rows per cluster
    codes: np.ndarray  # cluster code of each row
    strata: np.ndarray | None = None  # stratum code per cluster, when the scorer declares a design

    @classmethod
    def of(cls, clusters: np.ndarray, strata: np.ndarray | None = None) -> ClusterLayout:
        codes, counts = np.unique(clusters, return_inverse=True, return_counts=True)[1:]
        order = np.argsort(codes, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        cluster_strata = None
        if strata is not None:
            cluster_strata = np.unique(strata[order[starts]], return_inverse=True)[1]
        return cls(order=order, starts=starts, counts=counts, codes=codes, strata=cluster_strata)

    @property
    def n_clusters(self) -> int:
        return len(self.counts)

    def rows(self, drawn: np.ndarray) -> np.ndarray:
        """Row positions of the drawn clusters, each cluster's rows kept together."""
        counts = self.counts[drawn]
        first = np.repeat(self.starts[drawn] - (np.cumsum(counts) - counts), counts)
        return self.order[first + np.arange(counts.sum())]

    def copy_ids(self, drawn: np.ndarray) -> np.ndarray:
        """Per row of `rows(drawn)`, the position of its draw: a cluster drawn twice becomes two clusters."""
        return np.repeat(np.arange(len(drawn)), self.counts[drawn])

    def row_weights(self, draws: np.ndarray) -> np.ndarray:
        """(resamples, rows): how often each row appears in each resample (its cluster's draw count)."""
        n_boot, n_clusters = draws.shape
        flat = (draws + n_clusters * np.arange(n_boot)[:, None]).ravel()
        counts = np.bincount(flat, minlength=n_boot * n_clusters).reshape(n_boot, n_clusters)
        return counts[:, self.codes].astype(np.float64)


def draw_clusters(n_clusters: int, n_boot: int, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, n_clusters) cluster draws; a pure function of its arguments so runs can share them.

    With `strata` (one code per cluster), clusters are redrawn within their stratum, so a fixed design
    such as MME's categories keeps every category and its size in every resample.
    """
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    drawn = np.empty((n_boot, n_clusters), dtype=np.int64)
    for code in np.unique(strata):
        members = np.flatnonzero(strata == code)
        drawn[:, members] = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
    return drawn


def _as_floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {name: metric_float(value) for name, value in metrics.items()}


def bootstrap_replicates(
    per_sample: pd.DataFrame,
    aggregate: Aggregate,
    *,
    n_boot: int,
    seed: int,
    weighted: WeightedAggregate | None = None,
) -> pd.DataFrame:
    """`aggregate` recomputed on `n_boot` cluster resamples: one row per resample, one column per metric.

    Each drawn copy of a cluster counts as its own cluster (statistics over clusters such as acc+
    pairs, circular groups and per-video means count it as often as it was drawn). A resample on
    which `aggregate` raises (e.g. a category left empty) becomes a row of NaN rather than aborting
    the report. With `weighted` (checked against `aggregate` first) all resamples are computed at
    once from row weights; the draws, and so the numbers, are the same as the loop's.
    """
    full = _as_floats(aggregate(per_sample))
    strata = per_sample["stratum"].astype(str).to_numpy() if "stratum" in per_sample else None
    layout = ClusterLayout.of(per_sample["cluster"].to_numpy(), strata)
    draws = draw_clusters(layout.n_clusters, n_boot, seed, layout.strata)
    if weighted is not None and weighted_agrees(per_sample, full, weighted):
        return _weighted_replicates(per_sample, list(full), weighted, layout, draws)
    return _loop_replicates(per_sample, list(full), aggregate, layout, draws)


def weighted_agrees(per_sample: pd.DataFrame, full: Mapping[str, float], weighted: WeightedAggregate) -> bool:
    """True when `weighted` at unit weights gives every number `aggregate` gives (the fast path is safe)."""
    try:
        once = weighted(per_sample, np.ones((1, len(per_sample))))
    except Exception as err:  # noqa: BLE001 - scorer code is foreign; the loop stays available
        log.info("aggregate_weighted failed (%r); bootstrapping resample by resample", err)
        return False
    for name, value in full.items():
        got = float(np.asarray(once.get(name, [math.nan]), dtype=float)[0])
        same = (math.isnan(value) and math.isnan(got)) or math.isclose(value, got, rel_tol=1e-9, abs_tol=1e-9)
        if not same:
            log.info("aggregate_weighted gives %s = %r, aggregate %r; bootstrapping resample by resample",
                     name, got, value)
            return False
    return True


def _weighted_replicates(per_sample: pd.DataFrame, names: list[str], weighted: WeightedAggregate,
                         layout: ClusterLayout, draws: np.ndarray) -> pd.DataFrame:
    blocks = []
    for start in range(0, len(draws), WEIGHT_CHUNK):
        chunk = draws[start : start + WEIGHT_CHUNK]
        values = weighted(per_sample, layout.row_weights(chunk))
        nan = np.full(len(chunk), np.nan)
        blocks.append({name: np.asarray(values.get(name, nan), dtype=float) for name in names})
    return pd.DataFrame({name: np.concatenate([b[name] for b in blocks]) for name in names}, columns=names,
                        dtype=float)


def _loop_replicates(per_sample: pd.DataFrame, names: list[str], aggregate: Aggregate, layout: ClusterLayout,
                     draws: np.ndarray) -> pd.DataFrame:
    """The reference: `aggregate` on each resampled table."""
    # pandas 3's arrow-backed strings are ~1.6x slower to `take` than object columns: this loop is the hot path.
    strings = per_sample.select_dtypes(include=["string", "str"]).columns
    per_sample = per_sample.astype({name: object for name in strings})
    rows = []
    for drawn in draws:
        frame = per_sample.take(layout.rows(drawn))
        frame.index = pd.RangeIndex(len(frame))
        frame["cluster"] = layout.copy_ids(drawn)
        try:
            rows.append(_as_floats(aggregate(frame)))
        except Exception:  # noqa: BLE001 - scorer code is foreign; one bad resample must not kill the report
            rows.append({})
    return pd.DataFrame(rows, columns=names, dtype=float)


def percentile_ci(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval over the finite replicates; None when there are none."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_p_value(deltas: np.ndarray) -> float | None:
    """Two-sided p-value that the paired difference is zero, from its bootstrap distribution.

    p = 2 * min(P*(d <= 0), P*(d >= 0)) with the +1 correction, so p < 0.05 exactly when the
    percentile CI of the difference excludes 0, and identical runs (all d = 0) give p = 1.
    """
    finite = deltas[np.isfinite(deltas)]
    if finite.size == 0:
        return None
    n = finite.size
    below = (np.count_nonzero(finite <= 0) + 1) / (n + 1)
    above = (np.count_nonzero(finite >= 0) + 1) / (n + 1)
    return float(min(1.0, 2.0 * min(below, above)))


def align_on_common_uids(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables restricted to their shared uids, in the same row order and with A's clusters.

    Giving B the baseline's cluster labels guarantees that both runs resample identical rows.
    """
    common = np.intersect1d(a["uid"].to_numpy(dtype=str), b["uid"].to_numpy(dtype=str))
    a_c = a.set_index("uid", drop=False).loc[common].reset_index(drop=True)
    b_c = b.set_index("uid", drop=False).loc[common].reset_index(drop=True)
    b_c["cluster"] = a_c["cluster"].to_numpy()
    return a_c, b_c


def paired_diffs(
    reps_a: pd.DataFrame, reps_b: pd.DataFrame, deltas: Mapping[str, float]
) -> dict[str, PairedDiff]:
    """Per-metric p-values and CIs of B - A from replicates drawn on the same clusters."""
    out = {}
    for name, delta in deltas.items():
        if name not in reps_a or name not in reps_b:
            out[name] = PairedDiff(delta=delta, p=None)
            continue
        d = reps_b[name].to_numpy() - reps_a[name].to_numpy()
        out[name] = PairedDiff(delta=delta, p=bootstrap_p_value(d), ci=percentile_ci(d))
    return out


def outcome_column(per_sample: pd.DataFrame) -> str | None:
    """The per-sample 0/1 outcome column McNemar's test can use, if the scorer wrote one."""
    for name in OUTCOME_COLUMNS:
        if name in per_sample:
            values = pd.to_numeric(per_sample[name], errors="coerce").to_numpy(dtype=float)
            if values.size and np.isin(values, (0.0, 1.0)).all():
                return name
    return None


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value for paired binary outcomes (binomial test on discordant pairs).

    Computed in log space with lgamma so thousands of discordant pairs stay exact to float precision.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(~a & b))
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    ks = np.arange(k + 1)
    log_pmf = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in ks])
        - n * math.log(2.0)
    )
    top = log_pmf.max()
    tail = math.exp(top) * float(np.exp(log_pmf - top).sum())
    return min(1.0, 2.0 * tail)
