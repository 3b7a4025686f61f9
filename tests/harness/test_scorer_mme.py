"""MME scoring as VLMEvalKit's yorn.py / MME_rating (HEAD e8e78f05; identical in VITA-2024)."""

from __future__ import annotations

import pandas as pd
import pytest

from vita_eval.scorers.base import get_scorer
from vita_eval.scorers.mme import PERCEPTION, REASONING
from vita_eval.types import SuiteError


FILE_ORDER = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
assert sorted(FILE_ORDER) == sorted(PERCEPTION)


def _mme(categories=FILE_ORDER + REASONING) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One image (two questions: Yes then No) per category, two images for `existence`; all answered right,
    except image e2's No-question (answered yes) and count's Yes-question (answered "nope")."""
    rows, preds = [], []
    images = [(c, f"{c}/1.png") for c in categories] + (
        [("existence", "existence/2.png")] if "existence" in categories else []
    )
    for category, image in images:
        for answer in ("Yes", "No"):
            index = len(rows)
            rows.append(
                {
                    "index": index,
                    "question": f"Is it {index}? Please answer yes or no.",
                    "answer": answer,
                    "category": category,
                    "image_path": image,
                }
            )
            pred = answer
            if image == "existence/2.png" and answer == "No":
                pred = "Yes, it is."
            if category == "count" and answer == "Yes":
                pred = "nope"
            preds.append({"index": index, "prediction": pred})
    return pd.DataFrame(rows), pd.DataFrame(preds)


def test_mme_acc_plus_and_sums_without_judge():
    data, preds = _mme()
    result = get_scorer("mme").score(data, preds, profile="vlmevalkit-2026.08", judge=None)
    m = result.metrics
    assert list(m)[:4] == ["perception", "reasoning", "existence", "count"]
    assert m["existence"] == pytest.approx(75 + 50)  # acc 3/4, acc_plus 1/2
    assert m["count"] == pytest.approx(50 + 0)
    assert m["perception"] == pytest.approx(125 + 50 + 8 * 200)
    assert m["reasoning"] == pytest.approx(800)
    assert result.n == 30 and result.judge == {"identity": "none"}
    assert any("1 of 1 Unknown" in n for n in result.notes)
    assert set(result.per_sample.columns) >= {"uid", "cluster", "category", "score"}
    assert get_scorer("mme").aggregate(result.per_sample) == m


def test_mme_judge_only_for_unknown_rows_with_rising_temperature(scripted_judge):
    data, preds = _mme()
    replies = {0.0: "I cannot tell", 0.5: None, 1.0: "Yes"}
    judge = scripted_judge(lambda prompt, t: replies[t])
    result = get_scorer("mme").score(data, preds, profile="vlmevalkit-2026.08", judge=judge)
    assert [t for _, t, _ in judge.prompts] == [0.0, 0.5, 1.0]
    assert judge.prompts[0][0].endswith("Question: Is it 2? Please answer yes or no.?\nAnswer: nope\nYour output: ")
    assert result.metrics["count"] == pytest.approx(200)
    assert result.metrics["perception"] == pytest.approx(1925)
    assert result.judge["identity"] == "scripted-judge" and result.judge["calls"] == 3


def test_mme_judge_not_working_falls_back_loudly(scripted_judge):
    data, preds = _mme()
    judge = scripted_judge(lambda prompt, t: "Yes", working=False)
    result = get_scorer("mme").score(data, preds, profile="vlmevalkit-2026.08", judge=judge)
    assert judge.prompts == [] and result.metrics["count"] == pytest.approx(50)
    assert any("not working" in n for n in result.notes)


def test_mme_missing_category_head_raises_ms_sums_present():
    data, preds = _mme(FILE_ORDER + REASONING[:3])
    with pytest.raises(SuiteError, match="text_translation"):
        get_scorer("mme").score(data, preds, profile="vlmevalkit-2026.08", judge=None)
    result = get_scorer("mme").score(data, preds, profile="ms-vlmeval-0.0.20", judge=None)
    assert result.metrics["reasoning"] == pytest.approx(600)


def test_mme_failed_row_is_scored_wrong_and_listed():
    """A row without a prediction counts as wrong (its pair stays whole) and is reported as failed."""
    data, preds = _mme()
    full = get_scorer("mme").score(data, preds, profile="vlmevalkit-2026.08", judge=None)
    partial = get_scorer("mme").score(data, preds[preds["index"] != 0], profile="vlmevalkit-2026.08", judge=None)
    assert partial.failures == [{"uid": "0", "reason": "no prediction"}]
    assert len(partial.per_sample) == len(full.per_sample)
    assert partial.metrics["perception"] <= full.metrics["perception"]
    assert any("scored wrong" in n for n in partial.notes)


def test_mme_dataset_with_a_lone_question_raises():
    data, preds = _mme()
    lone = data[data["index"] != 0]
    with pytest.raises(SuiteError, match="single scored question"):
        get_scorer("mme").score(lone, preds[preds["index"] != 0], profile="vlmevalkit-2026.08", judge=None)


def _ocr_with_a_four_question_image() -> tuple[pd.DataFrame, pd.DataFrame]:
    """OCR: image a (4 questions: Yes/No/Yes/No answered No/No/Yes/No) and image b (2, both right)."""
    rows = [("ocr/a.png", "Yes", "No"), ("ocr/a.png", "No", "No"), ("ocr/a.png", "Yes", "Yes"),
            ("ocr/a.png", "No", "No"), ("ocr/b.png", "Yes", "Yes"), ("ocr/b.png", "No", "No")]
    data = pd.DataFrame({"index": range(6), "question": "q", "answer": [r[1] for r in rows], "category": "OCR",
                         "image_path": [r[0] for r in rows]})
    return data, pd.DataFrame({"index": range(6), "prediction": [r[2] for r in rows]})


@pytest.mark.parametrize("profile", ["vlmevalkit-2024.12", "ms-vlmeval-0.0.20"])
def test_mme_acc_plus_uses_each_images_first_two_rows(profile):
    # VLMEvalKit `MME_rating` (yorn.py, every pinned version): acc_plus appends `val[0] * val[1]` per
    # image_path list, whatever its length: image a gives 0 * 1, image b 1 * 1 -> acc+ 50; acc 5/6.
    data, preds = _ocr_with_a_four_question_image()
    others = _mme(tuple(c for c in FILE_ORDER if c != "OCR") + REASONING)
    data = pd.concat([data, others[0].assign(index=others[0]["index"] + 100)], ignore_index=True)
    preds = pd.concat([preds, others[1].assign(index=others[1]["index"] + 100)], ignore_index=True)
    result = get_scorer("mme").score(data, preds, profile=profile, judge=None)
    assert result.metrics["OCR"] == pytest.approx(5 / 6 * 100 + 50)  # 133.33, not 150.0 (every pair)
    assert any("1 images do not have exactly 2 questions" in n and "'ocr/a.png' in OCR has 4" in n
               for n in result.notes)
    # the report re-aggregates a uid-sorted per_sample: `row` keeps the file order of the first two rows
    shuffled = result.per_sample.sample(frac=1, random_state=0)
    assert get_scorer("mme").aggregate(shuffled) == pytest.approx(result.metrics)


def test_mme_two_questions_per_image_get_no_note():
    data, preds = _mme()
    assert not any("exactly 2" in n for n in get_scorer("mme").score(data, preds, profile="vlmevalkit-2026.08",
                                                                      judge=None).notes)


def test_mme_images_are_counted_per_category():
    # MME_rating keys `stats[category][image_path]`: one image_path in two categories is two images,
    # here each with a single question, which VLMEvalKit's val[1] cannot score (IndexError).
    data, preds = _ocr_with_a_four_question_image()
    data.loc[5, "category"] = "artwork"
    with pytest.raises(SuiteError, match="single scored question"):
        get_scorer("mme").score(data, preds, profile="ms-vlmeval-0.0.20", judge=None)
