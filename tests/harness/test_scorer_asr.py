"""ASR error rates (no VLMEvalKit counterpart): WeNet compute-wer --char=1 conventions and Whisper normalizers."""

from __future__ import annotations

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
    ("BAC009-2", "你好", "None"),
    ("BAC009-3", "不见", None),  # no prediction at all: a failure, not scored
]


def _suite(rows, language: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = pd.DataFrame(
        {"index": [r[0] for r in rows], "answer": [r[1] for r in rows], "language": language, "set": "test"}
    )
    preds = pd.DataFrame([{"index": r[0], "prediction": r[2]} for r in rows if r[2] is not None])
    preds["prediction"] = preds["prediction"].replace({"None": float("nan")})  # as read_predictions would
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
