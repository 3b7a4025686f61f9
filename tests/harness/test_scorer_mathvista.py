"""MathVista_MINI as VLMEvalKit's mathvista.py (unchanged 2024 -> HEAD e8e78f05), except that a missing judge
scores the unsettled rows wrong instead of refusing."""

from __future__ import annotations

import pandas as pd
import pytest

from vita_eval.scorers.base import get_scorer

HEAD = "vlmevalkit-2026.08"
ROWS = [
    # index, question_type, answer_type, answer, answer_option, choices, task, skills, prediction
    (1, "free_form", "integer", "0", None, None, "math word problem", "['arithmetic reasoning']", "0"),
    (
        2,
        "multi_choice",
        "text",
        "3/11",
        "A",
        "['3/11', '8/11']",
        "figure question answering",
        "['algebraic reasoning']",
        "B",
    ),
    (3, "free_form", "float", "1.5", None, None, "math word problem", "['arithmetic reasoning']", "1.50"),
    (
        4,
        "free_form",
        "integer",
        "14",
        None,
        None,
        "geometry problem solving",
        "['geometry reasoning', 'arithmetic reasoning']",
        "14.0",
    ),
    (
        5,
        "free_form",
        "list",
        "[2007, 2008]",
        None,
        None,
        "figure question answering",
        "['statistical reasoning']",
        "[2007, 2008]",
    ),
    (6, "free_form", "integer", "7", None, None, "math word problem", "['arithmetic reasoning']", "None"),
]


def _data() -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = [
        "index",
        "question_type",
        "answer_type",
        "answer",
        "answer_option",
        "choices",
        "task",
        "skills",
        "prediction",
    ]
    table = pd.DataFrame(ROWS, columns=columns)
    table["question"] = [f"Question: q{i}" for i in table["index"]]
    return table.drop(columns=["prediction"]), table[["index", "prediction"]]


def test_prefetch_rules_and_no_judge_note():
    data, preds = _data()
    result = get_scorer("mathvista").score(data, preds, profile=HEAD, judge=None)
    ps = result.per_sample.set_index("uid")
    # 0 is correct but falsy: not prefetched; a wrong letter IS prefetched; 1.50 == 1.5 exactly
    assert ps["prefetch"].to_dict() == {"1": False, "2": True, "3": True, "4": False, "5": False, "6": False}
    assert ps["hit"].to_dict() == {"1": False, "2": False, "3": True, "4": False, "5": False, "6": False}
    assert "MathVista: judge unavailable, 4 rows scored wrong (VLMEvalKit would refuse to score)" in result.notes
    assert result.metrics["Overall"] == pytest.approx(100 / 6)


def test_judge_extraction_only_on_failure_and_list_type_always_wrong(scripted_judge):
    data, preds = _data()
    answers = {"q1": ["0"], "q4": [None, None, "14"], "q5": ["[2007, 2008]"], "q6": [None] * 5}
    queues = {k: iter(v) for k, v in answers.items()}

    def reply(prompt: str, temperature: float) -> str | None:
        key = prompt.split("Question: ")[-1].split("\n")[0]
        return next(queues[key])

    judge = scripted_judge(reply)
    result = get_scorer("mathvista").score(data, preds, profile=HEAD, judge=judge)
    hits = result.per_sample.set_index("uid")["hit"].to_dict()
    assert hits == {"1": True, "2": False, "3": True, "4": True, "5": False, "6": False}
    assert judge.stats.calls == 1 + 3 + 1 + 5
    assert [t for p, t, _ in judge.prompts if "q4" in p] == [0.0, 0.5, 1.0]
    assert {m for _, _, m in judge.prompts} == {128}
    assert "MathVista: judge failed 5 times on 1 rows, scored wrong" in result.notes
    assert result.metrics["Overall"] == pytest.approx(50.0)


def test_mathvista_acc_table_order_and_counts():
    data, preds = _data()
    result = get_scorer("mathvista").score(data, preds, profile=HEAD, judge=None)
    table = pd.DataFrame(result.metrics["MathVista_acc"]).set_index("Task&Skill")
    assert list(table.index) == [
        "Overall",
        "arithmetic reasoning",
        "math word problem",
        "algebraic reasoning",
        "figure question answering",
        "geometry reasoning",
        "geometry problem solving",
        "statistical reasoning",
    ]
    assert table.loc["arithmetic reasoning", ["tot", "prefetch", "hit"]].tolist() == [4, 1, 1]
    assert table.loc["Overall", "prefetch_rate"] == pytest.approx(200 / 6)
    assert list(result.metrics)[:3] == ["Overall", "arithmetic reasoning", "math word problem"]
    assert result.metrics["math word problem"] == pytest.approx(100 / 3)
