"""MMBench CircularEval and report_acc as VLMEvalKit's multiple_choice.py (HEAD e8e78f05 unless a test names
VITA-2024 = tuannv-github/VITA 8bed3780 or ms-vlmeval 0.0.20)."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from vita_eval.scorers.base import get_scorer
from vita_eval.scorers.mmbench import NO_ANSWERS_NOTE
from vita_eval.scorers.predictions import read_table

HEAD = "vlmevalkit-2026.08"
OPTIONS = ["cat", "dog", "bird", "fish"]


def _group(qid: int, right: str = "cat", l2: str = "coarse_perception", category: str = "image_scene") -> list[dict]:
    """The 4 circular copies of one question: options rotated, each copy with its own answer letter."""
    rows = []
    for k in range(4):
        rotated = OPTIONS[k:] + OPTIONS[:k]
        rows.append(
            {
                "index": k * 1_000_000 + qid,
                "question": f"What animal {qid}",
                "hint": float("nan"),
                **dict(zip("ABCD", rotated)),
                "answer": "ABCD"[rotated.index(right)],
                "category": category,
                "L2-category": l2,
                "split": "dev",
            }
        )
    return rows


def _preds(data: pd.DataFrame, by_index: dict[int, str]) -> pd.DataFrame:
    """Right letter for every copy unless overridden."""
    return pd.DataFrame(
        {"index": data["index"], "prediction": [by_index.get(i, a) for i, a in zip(data["index"], data["answer"])]}
    )


def test_group_with_one_wrong_copy_is_zero_without_calling_the_judge(scripted_judge):
    data = pd.DataFrame(_group(1) + _group(2))
    judge = scripted_judge(lambda prompt, t: "A")
    preds = _preds(data, {2_000_001: "B", 3_000_001: "I do not know"})  # copy 2 of q1 wrong (GT C)
    result = get_scorer("mmbench").score(data, preds, profile=HEAD, judge=judge, dataset="MMBench_DEV_EN")
    assert result.per_sample.set_index("uid")["hit"].to_dict() == {"1": 0, "2": 1}
    assert judge.prompts == [] and result.metrics["Overall"] == 0.5
    assert result.n == 2 and result.judge["calls"] == 0


def test_unparsed_copies_without_judge_hit_zero_and_are_reported():
    data = pd.DataFrame(_group(1) + _group(2))
    preds = _preds(data, {1_000_002: "It is hard to say"})
    result = get_scorer("mmbench").score(data, preds, profile=HEAD, judge=None, dataset="MMBench_DEV_EN")
    assert result.per_sample["hit"].tolist() == [1, 0]
    assert "MMBench: 1 groups unresolved without a judge (hit 0)" in result.notes


def test_unparsed_copies_with_a_judge(scripted_judge):
    data = pd.DataFrame(_group(1) + _group(2))
    preds = _preds(data, {1_000_001: "It is hard to say", 2: "no idea"})
    # q1 copy 1: GT D (cat); the judge answers "D" on its second try. q2 copy 0: the judge never parses.
    replies = iter(["maybe", "D", "hmm", None, "unclear"])
    judge = scripted_judge(lambda prompt, t: next(replies))
    result = get_scorer("mmbench").score(data, preds, profile=HEAD, judge=judge, dataset="MMBench_DEV_EN")
    assert judge.stats.calls == 5 and {t for _, t, _ in judge.prompts} == {0.0}
    assert "Options: There are several options: \nA. dog\nB. bird\nC. fish\nD. cat\n" in judge.prompts[0][0]
    assert "MCQ random fallback fired 1 times (seed 0)" in result.notes
    hits = result.per_sample.set_index("uid")["hit"]
    assert hits["1"] == 1
    # q2's fallback letter is drawn by random.Random(0) from A, B, C, D, Z; GT is A
    assert hits["2"] == int(random.Random(0).choice(["A", "B", "C", "D", "Z"]) == "A")


def test_matcher_generations_give_different_scores():
    data = pd.DataFrame([r for q in (1, 2, 3) for r in _group(q, right="bird")[:1]])  # copy 0 only: GT C
    preds = pd.DataFrame(
        {
            "index": [1, 2, 3],
            "prediction": [
                "C is right because the picture clearly shows it sitting on the branch",
                "After looking closely at the image I think the answer is **C** and nothing else fits here",
                "C",
            ],
        }
    )
    scorer = get_scorer("mmbench")
    overall = {
        profile: scorer.score(data, preds, profile=profile, judge=None, dataset="MMBench_DEV_EN").metrics["Overall"]
        for profile in ("vlmevalkit-2024.12", "ms-vlmeval-0.0.20", HEAD)
    }
    assert overall == {"vlmevalkit-2024.12": 1.0, "ms-vlmeval-0.0.20": pytest.approx(1 / 3), HEAD: pytest.approx(2 / 3)}


def test_report_acc_names_and_fractions():
    data = pd.DataFrame(
        _group(1, l2="logic_reasoning", category="b_cat") + _group(2, category="a_cat") + _group(3, category="a_cat")
    )
    preds = _preds(data, {3: "B"})
    result = get_scorer("mmbench").score(data, preds, profile=HEAD, judge=None, dataset="MMBench_DEV_EN")
    assert result.metrics == {"Overall": pytest.approx(2 / 3), "CP": 0.5, "LR": 1.0, "a_cat": 0.5, "b_cat": 1.0}
    assert result.per_sample["cluster"].tolist() == [1, 2, 3]


def test_option_none_read_from_tsv_is_no_option(tmp_path):
    path = tmp_path / "MMBench_DEV_EN.tsv"
    path.write_text(
        "index\tquestion\tA\tB\tC\tanswer\tcategory\tl2-category\tsplit\n"
        "0\tWhich one\tNone\tcat\tdog\tA\tx\tcoarse_perception\tdev\n",
        encoding="utf-8",
    )
    data = read_table(path)
    preds = pd.DataFrame({"index": [0], "prediction": ["A"]})
    result = get_scorer("mmbench").score(data, preds, profile=HEAD, judge=None, dataset="MMBench_DEV_EN")
    assert result.metrics["Overall"] == 0.0  # "A" is no longer a choice: unparsed, hit 0
    assert "MMBench: 1 groups unresolved without a judge (hit 0)" in result.notes


def test_vita2024_groups_by_index_not_g_index():
    data = pd.DataFrame(_group(1) + _group(2))
    data["g_index"] = [1, 1, 2, 2, 2, 2, 1, 1]  # a g_index column regrouping the copies
    preds = _preds(data, {3_000_001: "A"})  # wrong: that copy's GT is B
    head = get_scorer("mmbench").score(data, preds, profile=HEAD, judge=None, dataset="MMBench_DEV_EN")
    old = get_scorer("mmbench").score(data, preds, profile="vlmevalkit-2024.12", judge=None, dataset="MMBench_DEV_EN")
    assert head.per_sample["hit"].tolist() == [1, 0]  # row 3_000_001 belongs to g_index 2 per the column
    assert old.per_sample["hit"].tolist() == [0, 1]


def test_test_split_without_answers_returns_no_metrics():
    data = pd.DataFrame(_group(1)).drop(columns=["answer"])
    preds = pd.DataFrame({"index": data["index"], "prediction": "A"})
    result = get_scorer("mmbench").score(data, preds, profile=HEAD, judge=None, dataset="MMBench_TEST_EN_V11")
    assert result.metrics == {} and result.notes == [NO_ANSWERS_NOTE]


def test_missing_copy_zero_is_a_failure_and_non_circular_name_scores_rows():
    data = pd.DataFrame(_group(1) + _group(2))
    preds = _preds(data, {}).iloc[1:]  # copy 0 of q1 missing
    result = get_scorer("mmbench").score(data, preds, profile=HEAD, judge=None, dataset="MMBench_DEV_EN")
    reasons = {f["uid"]: f["reason"] for f in result.failures}
    assert reasons["1"] == "no prediction" and reasons["1000001"] == "circular group has no copy-0 prediction"
    assert result.per_sample["uid"].tolist() == ["2"]
    vanilla = get_scorer("mmbench").score(data, preds, profile=HEAD, judge=None, dataset="AI2D_TEST")
    assert vanilla.n == 7 and vanilla.metrics["Overall"] == 1.0
