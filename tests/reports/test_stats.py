"""Statistical properties of the report's CIs and tests, on cases with known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from vita_eval.reports.stats import (
    ClusterLayout,
    align_on_common_uids,
    bootstrap_p_value,
    bootstrap_replicates,
    lower_is_better,
    mcnemar_exact,
    metric_float,
    outcome_column,
    paired_diffs,
    percentile_ci,
)


def accuracy(per_sample: pd.DataFrame) -> dict[str, float]:
    return {"acc": float(per_sample["correct"].mean())}


def frame(correct: np.ndarray, clusters: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"uid": [str(i) for i in range(len(correct))], "cluster": clusters.astype(str),
                         "correct": correct.astype(int)})


def covers(per_sample: pd.DataFrame, truth: float, seed: int, n_boot: int = 100) -> bool:
    ci = percentile_ci(bootstrap_replicates(per_sample, accuracy, n_boot=n_boot, seed=seed)["acc"].to_numpy())
    return ci[0] <= truth <= ci[1]


def test_layout_keeps_drawn_clusters_whole_and_in_row_order():
    clusters = np.array(["b", "a", "b", "c", "a", "b"])
    layout = ClusterLayout.of(clusters)
    rows = layout.rows(np.array([1, 1, 0]))  # clusters sorted: a=0, b=1, c=2
    assert rows.tolist() == [0, 2, 5, 0, 2, 5, 1, 4]


def test_clusters_drawn_twice_count_twice():
    """Cluster-level statistics see as many clusters as were drawn, duplicates included."""
    per_sample = frame(np.ones(12, dtype=bool), np.arange(12) // 3)

    def clusters_and_sizes(f: pd.DataFrame) -> dict[str, float]:
        sizes = f.groupby("cluster").size()
        return {"clusters": float(len(sizes)), "max_size": float(sizes.max())}

    reps = bootstrap_replicates(per_sample, clusters_and_sizes, n_boot=50, seed=0)
    assert (reps["clusters"] == 4).all() and (reps["max_size"] == 3).all()


def test_bernoulli_ci_covers_true_p_about_95_percent():
    rng = np.random.default_rng(0)
    p, n, reps = 0.7, 80, 200
    hits = sum(covers(frame(rng.random(n) < p, np.arange(n)), p, seed=k) for k in range(reps))
    assert 0.88 <= hits / reps <= 0.99


def test_cluster_bootstrap_covers_where_iid_bootstrap_does_not():
    """25 clusters of 16 samples sharing a cluster-level success rate (0.1 or 0.9): strong correlation.

    Expected coverage: about 0.45 for the i.i.d. bootstrap (its SE is ~3x too small), ~0.9 by cluster.
    """
    rng = np.random.default_rng(1)
    reps, n_clusters, size = 50, 25, 16
    cluster_ids = np.repeat(np.arange(n_clusters), size)
    naive = clustered = 0
    for k in range(reps):
        rates = np.where(rng.random(n_clusters) < 0.5, 0.1, 0.9)
        correct = rng.random(n_clusters * size) < rates[cluster_ids]
        clustered += covers(frame(correct, cluster_ids), 0.5, seed=k)
        naive += covers(frame(correct, np.arange(n_clusters * size)), 0.5, seed=k)
    assert clustered / reps >= 0.84
    assert naive / reps <= 0.70


def test_paired_bootstrap_detects_planted_difference_and_not_identical_runs():
    rng = np.random.default_rng(2)
    n = 400
    clusters = np.arange(n) // 2
    a = rng.random(n) < 0.6
    b = a | (rng.random(n) < 0.375)  # ~15 % of samples flip to correct
    fa, fb = frame(a, clusters), frame(b, clusters)
    reps_a = bootstrap_replicates(fa, accuracy, n_boot=500, seed=3)
    reps_b = bootstrap_replicates(fb, accuracy, n_boot=500, seed=3)
    delta = b.mean() - a.mean()
    assert delta > 0.1
    (diff,) = paired_diffs(reps_a, reps_b, {"acc": delta}).values()
    assert diff.p < 0.05 and diff.significant and diff.ci[0] > 0
    (same,) = paired_diffs(reps_a, reps_a, {"acc": 0.0}).values()
    assert same.p == 1.0 and not same.significant


def test_bootstrap_p_value_is_two_sided_and_corrected():
    assert bootstrap_p_value(np.zeros(100)) == 1.0
    assert bootstrap_p_value(np.ones(999)) == pytest.approx(2 / 1000)
    assert bootstrap_p_value(-np.ones(999)) == pytest.approx(2 / 1000)
    assert bootstrap_p_value(np.array([np.nan])) is None


@pytest.mark.parametrize("only_a, only_b, both", [(0, 0, 10), (3, 12, 50), (40, 41, 0), (0, 7, 3), (510, 620, 90)])
def test_mcnemar_exact_matches_binomial_test(only_a, only_b, both):
    a = np.array([1] * only_a + [0] * only_b + [1] * both, dtype=bool)
    b = np.array([0] * only_a + [1] * only_b + [1] * both, dtype=bool)
    n = only_a + only_b
    expected = 1.0 if n == 0 else binomtest(only_a, n, 0.5).pvalue
    assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-9)


def test_align_on_common_uids_pairs_rows_and_shares_baseline_clusters():
    a = pd.DataFrame({"uid": ["1", "2", "3"], "cluster": ["x", "x", "y"], "correct": [1, 0, 1]})
    b = pd.DataFrame({"uid": ["4", "3", "2"], "cluster": ["z", "Y?", "x"], "correct": [1, 1, 1]})
    a_c, b_c = align_on_common_uids(a, b)
    assert a_c["uid"].tolist() == b_c["uid"].tolist() == ["2", "3"]
    assert b_c["cluster"].tolist() == ["x", "y"]
    assert b_c["correct"].tolist() == [1, 1]


def test_failing_aggregate_on_a_resample_gives_nan_not_a_crash():
    per_sample = frame(np.arange(20) % 2 == 0, np.arange(20))

    def fragile(f: pd.DataFrame) -> dict[str, float]:
        if f["correct"].mean() > 0.6:
            raise KeyError("category missing")
        return accuracy(f)

    reps = bootstrap_replicates(per_sample, fragile, n_boot=200, seed=0)
    assert reps["acc"].isna().any() and reps["acc"].notna().any()


def test_helpers():
    assert metric_float("0.583") == 0.583 and np.isnan(metric_float("nan")) and np.isnan(metric_float(None))
    assert lower_is_better("WER") and lower_is_better("test_other|cer") and not lower_is_better("Overall")
    assert not lower_is_better("career")
    assert outcome_column(pd.DataFrame({"hit": [True, False]})) == "hit"
    assert outcome_column(pd.DataFrame({"score": [0, -1, 1]})) is None


def test_stratified_bootstrap_keeps_every_stratum() -> None:
    """MME-like design: a category sum must not lose categories in a resample (the CI holds the estimate)."""
    import pandas as pd

    from vita_eval.reports.stats import bootstrap_replicates

    per_sample = pd.DataFrame({"uid": [str(i) for i in range(8)], "cluster": [0, 0, 1, 1, 2, 2, 3, 3],
                               "category": ["a", "a", "a", "a", "b", "b", "b", "b"],
                               "score": [1, 0, 1, 1, 1, 0, 0, 0]})
    per_sample["stratum"] = per_sample["category"]

    def aggregate(frame: pd.DataFrame) -> dict[str, float]:
        return {"total": float(frame.groupby("category")["score"].mean().sum()),
                "n_strata": frame["category"].nunique()}

    reps = bootstrap_replicates(per_sample, aggregate, n_boot=200, seed=0)
    assert (reps["n_strata"] == 2).all()
    naive = bootstrap_replicates(per_sample.drop(columns="stratum"), aggregate, n_boot=200, seed=0)
    assert (naive["n_strata"] < 2).any()
