"""Video-MME as VLMEvalKit's videomme.py (HEAD e8e78f05; VITA-2024 = tuannv-github/VITA 8bed3780) and as
VITA's own videomme/parse_answer.py."""

from __future__ import annotations

import pandas as pd
import pytest

from vita_eval.scorers.base import flat_metrics, get_scorer
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
    assert head.metrics["overall"]["overall"] == pytest.approx(1 / 3)
    assert old.metrics["overall"]["overall"] == pytest.approx(1 / 2)  # -1 left out of the mean
    assert head.printed["short"]["overall"] == "0.333"
    assert old.printed["overall"]["overall"] == "0.50"
    assert old.printed["short"]["domain"]["Film & Television"] == "nan"
    assert head.printed["short"]["task_type"]["Counting Problem"] == "0.333"
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


def _july2024(question_cell: str, prediction: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row in the July-2024 TSV layout (options appended to `question`), as read from the file."""
    data, preds = _data([prediction])
    data = data.drop(columns=["candidates"]).assign(question=question_cell, answer="B")
    return data, preds


COLOURS = "What colour is the car?\nA. Red.\nB. Blue.\nC. Green.\nD. Grey."


@pytest.mark.parametrize(("profile", "score"), [(HEAD, 1), ("ms-vlmeval-0.0.20", 1), (OLD, -1)])
def test_july2024_answer_quoting_an_option_text(tmp_path, profile, score):
    # VLMEvalKit `VideoMME.evaluate` -> `extract_option` (utils/videomme.py, since 9447c3a6) reads the options
    # from the question's lines; `can_infer_text` then matches "blue" to option B. VITA-2024 scores -1.
    data, preds = _july2024(COLOURS, "blue")
    assert get_scorer("videomme").score(data, preds, profile=profile, judge=None).per_sample["score"].tolist() == [score]
    # the same row through our loader, which moves the options into `candidates` (layout tsv-july2024)
    from vita_eval.data.videomme import load_videomme

    data.assign(video_path="x", subtitle_path="y").to_csv(tmp_path / "Video-MME.tsv", sep="\t", index=False)
    loaded = load_videomme(tmp_path / "Video-MME.tsv").table
    assert loaded["question"].tolist() == ["What colour is the car?"]
    result = get_scorer("videomme").score(loaded, preds, profile=profile, judge=None)
    assert result.per_sample["score"].tolist() == [score]
    assert score < 0 or any("1 matched against the options their `question` lists" in n for n in result.notes)
    # HEAD layout (question without options): nothing to match, Z, 0
    head = loaded.copy()
    head.attrs = {}
    assert get_scorer("videomme").score(head, preds, profile=HEAD, judge=None).per_sample["score"].tolist() == [0]


def test_july2024_multiline_question_shifts_option_letters():
    # `extract_option` pairs line k after the first with letter k: a two-line question puts "A. Red." on
    # the line where it looks for "B.", so no option is found and the answer is Z (score 0).
    data, preds = _july2024("What colour is\nthe car?\nA. Red.\nB. Blue.\nC. Green.\nD. Grey.", "blue")
    assert question_options(data.loc[0, "question"]) == {}
    assert get_scorer("videomme").score(data, preds, profile=HEAD, judge=None).per_sample["score"].tolist() == [0]


def test_july2024_unparsed_answer_goes_to_the_judge_with_the_full_question(scripted_judge):
    data, preds = _july2024(COLOURS, "the second colour")
    judge = scripted_judge(lambda prompt, t: "B")
    result = get_scorer("videomme").score(data, preds, profile=HEAD, judge=judge)
    assert result.per_sample["score"].tolist() == [1]
    assert "Question: What colour is the car?\nA. Red.\nB. Blue.\nC. Green.\nD. Grey.?" in judge.prompts[0][0]


def test_metrics_nest_like_vlmevalkits_rating_dict_and_printed_has_its_digits():
    # `get_dimension_rating`: {duration: {"overall", "domain": {...}, "sub_category": {...}, "task_type": {...}}}
    # for short, medium, long, overall; strings f"{mean:.3f}" (since 7b634b56), f"{mean:.2f}" in VITA-2024.
    data, preds = _data(["C", "C", "A", "C", "B", "C", "C"], ["short"] * 7)
    head = get_scorer("videomme").score(data, preds, profile=HEAD, judge=None)
    old = get_scorer("videomme").score(data, preds, profile=OLD, judge=None)
    for result in (head, old):
        assert list(result.metrics) == ["short", "medium", "long", "overall"] == list(result.printed)
        assert list(result.metrics["short"]) == ["overall", "domain", "sub_category", "task_type"]
        assert not any("|" in key for key in flat_metrics(result.metrics))
    assert head.metrics["overall"]["overall"] == pytest.approx(5 / 7)
    assert head.printed["overall"]["overall"] == "0.714" and old.printed["overall"]["overall"] == "0.71"
    assert head.printed["short"]["sub_category"]["Astronomy"] == "0.714"
    assert head.printed["long"]["overall"] == "nan"
    again = flat_metrics(get_scorer("videomme").aggregate(head.per_sample))
    assert again == pytest.approx(flat_metrics(head.metrics), nan_ok=True)
    assert flat_metrics(head.metrics)["overall / task_type / Counting Problem"] == pytest.approx(5 / 7)
