"""Video-MME as VLMEvalKit's videomme.py (HEAD e8e78f05; VITA-2024 = tuannv-github/VITA 8bed3780) and as
VITA's own videomme/parse_answer.py."""

from __future__ import annotations

import pandas as pd
import pytest

from vita_eval.scorers.base import get_scorer
from vita_eval.scorers.profiles import get_profile
from vita_eval.scorers.videomme import extract_characters_regex, question_options, vita_parse_answer
from vita_eval.types import SuiteError

HEAD, OLD = "vlmevalkit-2026.08", "vlmevalkit-2024.12"


def _data(predictions: list[str], durations: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(predictions)
    data = pd.DataFrame(
        {
            "index": range(n),
            "video": [f"v{i // 3}" for i in range(n)],
            "duration": durations or ["short"] * n,
            "domain": "Knowledge",
            "sub_category": "Astronomy",
            "task_type": "Counting Problem",
            "question": "How many planets?",
            "answer": "C",
            "candidates": "['A. 1', 'B. 2', 'C. 8', 'D. 9']",
        }
    )
    return data, pd.DataFrame({"index": range(n), "prediction": predictions})


def test_merged_prefix_bug_best_answer_c_extracts_b():
    assert extract_characters_regex("Best answer: C") == "B"
    assert extract_characters_regex("The best answer is C") == "C"
    assert extract_characters_regex("Answer: (D)") == "D"
    assert extract_characters_regex("none of these look right to me at all, sorry about this one") == ""


def test_unparsed_answers_under_both_profiles():
    data, preds = _data(["C", "Best answer: C", "I think it is eight"])
    head = get_scorer("videomme").score(data, preds, profile=HEAD, judge=None)
    old = get_scorer("videomme").score(data, preds, profile=OLD, judge=None)
    assert head.per_sample["score"].tolist() == [1, 0, 0]
    assert old.per_sample["score"].tolist() == [1, 0, -1]
    assert head.metrics["overall|overall"] == pytest.approx(1 / 3)
    assert old.metrics["overall|overall"] == pytest.approx(1 / 2)  # -1 left out of the mean
    assert head.metrics["rating"]["short"]["overall"] == "0.333"
    assert old.metrics["rating"]["overall"]["overall"] == "0.50"
    assert old.metrics["rating"]["short"]["domain"]["Film & Television"] == "nan"
    assert head.metrics["rating"]["short"]["task_type"]["Counting Problem"] == "0.333"
    assert "Video-MME: 1 predictions unparsed, excluded (-1) under vlmevalkit-2024.12" in old.notes
    assert set(head.per_sample.columns) >= {"uid", "cluster", "duration", "domain", "sub_category", "task_type"}


def test_head_unparsed_reads_options_from_the_question_when_present():
    data, preds = _data(["eight planets"])
    data["question"] = "How many planets?\nA. one\nB. two\nC. eight\nD. nine"
    assert question_options(data.loc[0, "question"]) == {"A": "one", "B": "two", "C": "eight", "D": "nine"}
    result = get_scorer("videomme").score(data, preds, profile=HEAD, judge=None)
    assert result.per_sample["score"].tolist() == [1]


def test_vita2024_assigns_scores_by_row_label():
    data, preds = _data(["C", "A", "A"])
    data["index"] = [2, 1, 0]
    preds["index"] = [2, 1, 0]
    old = get_scorer("videomme").score(data, preds, profile=OLD, judge=None)
    head = get_scorer("videomme").score(data, preds, profile=HEAD, judge=None)
    assert head.per_sample["score"].tolist() == [1, 0, 0]
    assert old.per_sample["score"].tolist() == [0.0, 0.0, 1.0]  # row with index 2 scored onto file row 2
    data["index"] = [5, 1, 0]
    preds["index"] = [5, 1, 0]
    with pytest.raises(SuiteError, match="row label"):
        get_scorer("videomme").score(data, preds, profile=OLD, judge=None)


def test_vita_parser_per_duration_accuracy():
    assert vita_parse_answer("nan") == "" and vita_parse_answer("The answer is (b) B") == "B"
    data, preds = _data(["C", "Answer: C", "nan", "B", "C", "C"], ["short"] * 3 + ["long"] * 3)
    profile = get_profile(HEAD, videomme_parser="vita")
    result = get_scorer("videomme").score(data, preds, profile=profile, judge=None)
    # one category file per duration: denominator 30 whatever the rows present
    assert result.metrics == {
        "short": pytest.approx(2 / 30 * 100),
        "long": pytest.approx(2 / 30 * 100),
        "overall": pytest.approx(4 / 60 * 100),
    }
    assert get_scorer("videomme").aggregate(result.per_sample) == result.metrics


def test_unknown_dimension_value_is_a_suite_error():
    data, preds = _data(["C"])
    data["domain"] = "Cooking"
    with pytest.raises(SuiteError, match="domain"):
        get_scorer("videomme").score(data, preds, profile=HEAD, judge=None)
