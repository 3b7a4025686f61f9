"""The all-at-once bootstrap (`aggregate_weighted`) gives the per-resample loop's numbers, for every scorer."""
from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from vita_eval.reports.rundir import read_run
from vita_eval.reports.stats import bootstrap_replicates, weighted_agrees
from vita_eval.reports.synthetic import write_synthetic_run
from vita_eval.scorers.base import flat_metrics, get_scorer


def assert_same_replicates(per_sample: pd.DataFrame, scorer: str, n_boot: int = 40) -> None:
    instance = get_scorer(scorer)

    def aggregate(frame: pd.DataFrame) -> dict:
        return flat_metrics(instance.aggregate(frame))  # as reports name nested metrics

    assert weighted_agrees(per_sample, aggregate(per_sample), instance.aggregate_weighted)
    loop = bootstrap_replicates(per_sample, aggregate, n_boot=n_boot, seed=7)
    fast = bootstrap_replicates(per_sample, aggregate, n_boot=n_boot, seed=7, weighted=instance.aggregate_weighted)
    assert list(loop.columns) == list(fast.columns)
    pd.testing.assert_frame_equal(loop, fast, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory):
    return read_run(write_synthetic_run(tmp_path_factory.mktemp("syn"), skill=0.6, seed=0, scale=0.03))


@pytest.mark.parametrize("suite", ["MME", "MMBench_DEV_EN", "Video-MME_8frame", "LibriSpeech_test_clean"])
def test_scored_tables(synthetic_run, suite: str) -> None:
    result = synthetic_run.suites[suite]
    assert_same_replicates(result.per_sample, result.scorer)


def test_mme_without_strata_can_lose_categories() -> None:
    """Without the stratum column a resample may miss a category: both paths leave it out of the sums.

    One image has three questions (acc+ takes its first two by `row`), one only one (acc+ NaN when drawn)."""
    rng = np.random.default_rng(0)
    n_images = 12
    per_sample = pd.DataFrame({
        "uid": [str(i) for i in range(2 * n_images)],
        "row": np.arange(2 * n_images)[::-1],
        "cluster": [f"img{i // 2}" for i in range(2 * n_images)],
        "category": [("color", "count", "OCR", "code_reasoning")[(i // 2) % 4] for i in range(2 * n_images)],
        "score": rng.integers(0, 2, 2 * n_images),
    })
    per_sample.loc[2, ["cluster", "category"]] = ["img0", "color"]  # img0: three questions; img1: one
    assert_same_replicates(per_sample, "mme", n_boot=80)


def test_asr_mixed_languages_and_empty_references() -> None:
    rng = random.Random(1)
    rows = [{"uid": f"u{i}", "cluster": f"u{i}", "language": "en" if i % 3 else "zh",
             "S": rng.randint(0, 3), "D": rng.randint(0, 2), "I": rng.randint(0, 2), "N": rng.randint(0, 9)}
            for i in range(9)]
    assert_same_replicates(pd.DataFrame(rows), "asr", n_boot=120)


def test_mathvista_rows_counting_once_per_key() -> None:
    rng = random.Random(2)
    skills = [["algebraic reasoning"], ["arithmetic reasoning", "statistical reasoning"], ["numeric commonsense"]]
    rows = [{"uid": str(i), "cluster": str(i), "task": ("figure question answering", "math word problem")[i % 2],
             "skills": skills[i % 3], "prefetch": bool(i % 2), "log": "", "res": "", "hit": rng.random() < 0.5}
            for i in range(15)]
    assert_same_replicates(pd.DataFrame(rows), "mathvista", n_boot=80)


def test_videomme_vita_parser_and_unparsed_rows() -> None:
    rng = random.Random(3)
    rows = [{"uid": str(i), "cluster": f"v{i // 3}", "duration": ("short", "medium", "long")[(i // 3) % 3],
             "domain": "Knowledge", "sub_category": ("Astronomy", "Geography")[(i // 6) % 2],
             "task_type": "Counting Problem", "parser": "vita", "extracted": "A", "score": rng.randint(0, 1)}
            for i in range(18)]
    vita = pd.DataFrame(rows)
    assert_same_replicates(vita, "videomme", n_boot=80)
    vlmevalkit = vita.assign(parser="vlmevalkit", score=[rng.choice([-1, 0, 1]) for _ in rows])
    assert_same_replicates(vlmevalkit, "videomme", n_boot=80)


def test_a_drifted_weighted_form_falls_back_to_the_loop() -> None:
    per_sample = pd.DataFrame({"uid": list("abcd"), "cluster": list("abcd"), "correct": [1, 0, 1, 1]})

    def aggregate(frame: pd.DataFrame) -> dict[str, float]:
        return {"acc": float(frame["correct"].mean())}

    def wrong(frame: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        return {"acc": np.zeros(len(weights))}

    assert not weighted_agrees(per_sample, aggregate(per_sample), wrong)
    loop = bootstrap_replicates(per_sample, aggregate, n_boot=30, seed=0)
    guarded = bootstrap_replicates(per_sample, aggregate, n_boot=30, seed=0, weighted=wrong)
    pd.testing.assert_frame_equal(loop, guarded)
