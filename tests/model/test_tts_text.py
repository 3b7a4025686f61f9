"""Text normalisation for the TTS path (markers, equation table, sentence split)."""

from vita15.tts.text import (
    GREEK_LETTERS,
    SPECIAL_OPERATORS,
    remove_special_tokens,
    replace_equation,
    split_into_sentences,
    tts_sentences,
)


def test_markers_and_control_tokens_are_removed() -> None:
    assert remove_special_tokens("☞你好<unk>☟世界☜<|im_end|>") == "你好世界"


def test_equation_table_spells_out_math() -> None:
    assert replace_equation("1+2=3") == "1加2等于3"
    assert replace_equation("sin(x)") == " sine (x)"
    assert replace_equation("a-b") == "a减b"
    assert replace_equation("-5") == "负5"
    assert replace_equation("x^2") == "x的2次方"
    assert replace_equation("2(3)") == "2乘3"
    assert replace_equation("α") == "alpha "
    assert replace_equation("π") == "派 "
    assert replace_equation("**bold**") == " bold "


def test_equation_table_keeps_reference_order_quirks() -> None:
    # '=' and '>' are replaced before '>=' / '!=' are tried, exactly as upstream.
    assert replace_equation("a>=b") == "a大于等于b"
    assert replace_equation("a!=b") == "a!等于b"
    assert [k for k, _ in SPECIAL_OPERATORS][:5] == ["+", "-", "*", "/", "="]
    assert len(GREEK_LETTERS) == 24


def test_sentence_split_on_demo_punctuation() -> None:
    text = "你好，世界。How are you? Fine!ok\n好的、再见,bye.end"
    assert split_into_sentences(text) == [
        "你好", "世界", "How are you", "Fine", "ok", "好的", "再见", "bye", "end"
    ]
    assert split_into_sentences(" ，。 ") == []


def test_full_preprocessing_and_lowercase() -> None:
    assert tts_sentences("☞Hello, 1+1=2。") == ["Hello", "1加1等于2"]
    assert tts_sentences("Hello World!", lowercase=True) == ["hello world"]
