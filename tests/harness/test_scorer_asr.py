"""ASR error rates (no VLMEvalKit counterpart): WeNet compute-wer --char=1 conventions (wenet-e2e/wenet
tools/compute-wer.py) and Whisper normalizers with jiwer."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from vita_eval.scorers.asr_normalizers import wenet_tokens, whisper_tokens
from vita_eval.scorers.base import get_scorer
from vita_eval.scorers.profiles import get_profile
from vita_eval.types import SuiteError

HEAD = "vlmevalkit-2026.08"
EN = [
    ("1089-0", "HE HOPED THERE WOULD BE STEW FOR DINNER", "he hoped there would be <unk> stew for dinner turnips"),
    ("1089-1", "STUFF IT INTO YOU", "Stuff it into you."),
    ("1089-2", "HELLO WORLD", "hello, world!"),
]
ZH = [
    ("BAC009-0", "甚至 出现 交易 几乎 停滞 的 情况", "甚至出现交易几乎停止的情况。"),
    ("BAC009-1", "一 二 三", "一二，三四"),
    ("BAC009-2", "你好", float("nan")),  # an empty cell: an empty transcript
    ("BAC009-3", "不见", None),  # no prediction at all: a failure, not scored
]


def _suite(rows, language: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = pd.DataFrame(
        {"index": [r[0] for r in rows], "answer": [r[1] for r in rows], "language": language, "set": "test"}
    )
    preds = pd.DataFrame([{"index": r[0], "prediction": r[2]} for r in rows if r[2] is not None])
    return data, preds


def test_wenet_tokenization_rules():
    assert wenet_tokens("hello, world <unk> 你好，世界！ it's x.", "en") == [
        "HELLO,",
        "WORLD",
        "你",
        "好",
        "世",
        "界",
        "IT'S",
        "X.",
    ]
    assert wenet_tokens("<noise>yes<unk> ! ok", "en") == ["YES", "OK"]


def test_english_wer_with_both_normalizers():
    data, preds = _suite(EN, "en")
    wenet = get_scorer("asr").score(data, preds, profile=HEAD, judge=None)
    # wenet: N=14; "YOU." "HELLO," "WORLD!" keep their ASCII marks (3 S); "TURNIPS" inserted (1 I)
    assert {k: wenet.metrics[k] for k in ("S", "D", "I", "N")} == {"S": 3, "D": 0, "I": 1, "N": 14}
    assert wenet.metrics["wer"] == pytest.approx(4 / 14 * 100)
    assert wenet.metrics["normalizer"] == "wenet"
    whisper = get_scorer("asr").score(data, preds, profile=get_profile(HEAD, asr_normalizer="whisper"), judge=None)
    assert {k: whisper.metrics[k] for k in ("S", "D", "I", "N")} == {"S": 0, "D": 0, "I": 1, "N": 14}
    assert whisper.metrics["wer"] == pytest.approx(1 / 14 * 100)
    assert whisper.metrics["normalizer"] == "whisper"
    assert whisper.per_sample["I"].tolist() == [1, 0, 0]


def test_chinese_cer_with_space_segmented_references():
    data, preds = _suite(ZH, "zh")
    for normalizer in ("wenet", "whisper"):
        result = get_scorer("asr").score(data, preds, profile=get_profile(HEAD, asr_normalizer=normalizer), judge=None)
        # 滞->止 (S), 四 inserted (I), NaN hypothesis deletes 你好 (2 D); N = 13 + 3 + 2
        assert {k: result.metrics[k] for k in ("S", "D", "I", "N")} == {"S": 1, "D": 2, "I": 1, "N": 18}, normalizer
        assert result.metrics["cer"] == pytest.approx(4 / 18 * 100)
        assert result.failures == [{"uid": "BAC009-3", "reason": "no prediction"}]
        assert get_scorer("asr").aggregate(result.per_sample)["cer"] == result.metrics["cer"]


def test_whisper_tokens_chinese_are_characters():
    assert whisper_tokens("你好， 世界", "zh") == ["你", "好", "世", "界"]
    assert whisper_tokens("Mr. Smith's", "en") == ["mister", "smith", "is"]  # Whisper expands 's


def test_mixed_manifest_scores_each_language_apart():
    """A generic manifest may mix languages: WER over the English rows, CER over the Chinese rows."""
    data, preds = _suite(EN[:1] + ZH[:1], "en")
    data.loc[1, "language"] = "zh"
    result = get_scorer("asr").score(data, preds, profile=HEAD, judge=None)
    en = get_scorer("asr").score(data.iloc[:1], preds.iloc[:1], profile=HEAD, judge=None)
    assert result.metrics["wer"] == en.metrics["wer"]
    assert "cer" in result.metrics and result.metrics["en|N"] == en.metrics["N"]


def test_unknown_language_is_a_suite_error():
    data, preds = _suite(EN[:1], "en")
    data.loc[0, "language"] = "fr"
    with pytest.raises(SuiteError, match="unsupported languages"):
        get_scorer("asr").score(data, preds, profile=HEAD, judge=None)


def test_wenet_error_split_follows_compute_wers_alignment():
    # wenet tools/compute-wer.py `Calculator.calculate`: each cell keeps the deletion unless the insertion,
    # then the match/substitution, is strictly cheaper; the traceback from the last cell gives S/D/I.
    data = pd.DataFrame({"index": ["u1", "u2"], "answer": ["A B", "A B C"], "language": "en", "set": "t"})
    preds = pd.DataFrame({"index": ["u1", "u2"], "prediction": ["B C", "X"]})
    wenet = get_scorer("asr").score(data, preds, profile=HEAD, judge=None)
    assert wenet.per_sample[["S", "D", "I"]].values.tolist() == [[0, 1, 1], [1, 2, 0]]
    whisper = get_scorer("asr").score(data, preds, profile=get_profile(HEAD, asr_normalizer="whisper"), judge=None)
    assert whisper.per_sample[["S", "D", "I"]].values.tolist()[0] == [2, 0, 0]  # jiwer's split
    assert wenet.metrics["wer"] == whisper.metrics["wer"] == pytest.approx(5 / 5 * 100)


def test_wenet_error_split_matches_a_transcription_of_compute_wer_on_random_cases():
    """Our table of operations against a direct transcription of compute-wer's cost/tie order."""
    import random

    from vita_eval.scorers.asr import wenet_error_counts

    def reference(lab: list[str], rec: list[str]) -> tuple[int, int, int]:
        lab, rec = [""] + lab, [""] + rec
        space = [[[0, "non"] for _ in rec] for _ in lab]
        for i in range(len(lab)):
            space[i][0] = [i, "del"]
        for j in range(len(rec)):
            space[0][j] = [j, "ins"]
        space[0][0][1] = "non"
        for i in range(1, len(lab)):
            for j in range(1, len(rec)):
                best = [space[i - 1][j][0] + 1, "del"]
                if space[i][j - 1][0] + 1 < best[0]:
                    best = [space[i][j - 1][0] + 1, "ins"]
                diagonal = space[i - 1][j - 1][0] + (lab[i] != rec[j])
                if diagonal < best[0]:
                    best = [diagonal, "cor" if lab[i] == rec[j] else "sub"]
                space[i][j] = best
        counts, i, j = {"sub": 0, "del": 0, "ins": 0, "cor": 0}, len(lab) - 1, len(rec) - 1
        while space[i][j][1] != "non":
            op = space[i][j][1]
            counts[op] += 1
            i, j = (i, j - 1) if op == "ins" else (i - 1, j) if op == "del" else (i - 1, j - 1)
        return counts["sub"], counts["del"], counts["ins"]

    rng = random.Random(0)
    cases = [([rng.choice("ABC") for _ in range(rng.randint(0, 7))], [rng.choice("ABC") for _ in range(rng.randint(0, 7))])
             for _ in range(300)]
    ours = wenet_error_counts([c[0] for c in cases], [c[1] for c in cases])
    assert [tuple(r) for r in ours[["S", "D", "I"]].values.tolist()] == [reference(*c) for c in cases]
    assert ours["N"].tolist() == [len(c[0]) for c in cases]


NA_WORDS = ["None", "NA", "null", "nan", "N/A"]


def _none_of_them(tmp_path):
    """A manifest whose references read like pandas NA strings too ("NONE OF THEM", "NA")."""
    manifest = tmp_path / "manifest" / "asr.jsonl"
    manifest.parent.mkdir()
    lines = [{"id": f"u{i}", "audio": f"u{i}.wav", "text": "NONE OF THEM", "language": "en"} for i in range(5)]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    records = [{"uid": f"u{i}", "answer": word, "error": None} for i, word in enumerate(NA_WORDS)]
    return manifest, records


@pytest.mark.parametrize("normalizer", ["wenet", "whisper"])
def test_hypotheses_that_look_like_na_strings_stay_text(tmp_path, normalizer):
    # wenet compute-wer.py and jiwer score the hypothesis "None" as the word NONE: reference "NONE OF THEM"
    # gives 2 deletions of 3 words (66.67), not the empty transcript pandas' NA reading would make of it.
    from vita_eval.runner.rescore import rescore
    from vita_eval.scorers.predictions import predictions_from_records, read_predictions, write_vlmevalkit_xlsx

    manifest, records = _none_of_them(tmp_path)
    data = pd.DataFrame({"index": ["u0"], "answer": ["NONE OF THEM"], "language": "en", "set": "t"})
    profile = get_profile(HEAD, asr_normalizer=normalizer)
    first = predictions_from_records(records[:1], literal=True)
    assert get_scorer("asr").score(data, first, profile=profile, judge=None).metrics["wer"] == pytest.approx(200 / 3)
    # records -> VLMEvalKit-style xlsx -> `vita-eval score`, with and without --data
    jsonl = tmp_path / "samples.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    table = pd.DataFrame({"index": [f"u{i}" for i in range(5)], "answer": "NONE OF THEM", "language": "en"})
    xlsx = write_vlmevalkit_xlsx(table, predictions_from_records(records, literal=True), tmp_path / "M_ASR.xlsx")
    assert read_predictions(xlsx, literal=True)["prediction"].tolist() == NA_WORDS
    kwargs = {"profile": HEAD, "judge": None, "judge_base_url": None, "asr_normalizer": normalizer}
    for i, (data_path, predictions) in enumerate([(manifest, jsonl), (manifest, xlsx), (None, xlsx)]):
        scores = rescore("ASR_manifest", data_path, predictions, out=tmp_path / f"out{i}", **kwargs)
        # "None": 2 deletions; "NA", "null", "nan": a substitution and 2 deletions each; "N/A" likewise,
        # except that Whisper's BasicTextNormalizer makes it two words ("n a"): 2 substitutions, 1 deletion
        expected = {"S": 4, "D": 10, "I": 0, "N": 15} if normalizer == "wenet" else {"S": 5, "D": 9, "I": 0, "N": 15}
        assert {k: scores["metrics"][k] for k in expected} == expected, (normalizer, predictions.name)


def test_vlmevalkit_suites_keep_pandas_na_reading(tmp_path):
    from vita_eval.scorers.predictions import prediction_text, predictions_from_records

    records = [{"uid": str(i), "answer": word, "error": None} for i, word in enumerate(NA_WORDS)]
    assert [prediction_text(p) for p in predictions_from_records(records)["prediction"]] == ["nan"] * 5
