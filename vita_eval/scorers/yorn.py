"""VLMEvalKit's Yes/No extraction (`YOrN_Extraction`, `process_punctuation`), identical rules in all versions
except the period regex (see `Profile.period_lookbehind`)."""

from __future__ import annotations

import re

_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
# HEAD (since 2025-05-13): a period not preceded and not followed by a digit.
_PERIOD_HEAD = re.compile(r"(?<!\d)\.(?!\d)")
# VITA-2024: `(?!<=\d)` is a typo'd lookahead that never blocks, so only "followed by a digit" protects.
_PERIOD_2024 = re.compile(r"(?!<=\d)(\.)(?!\d)")
# VLMEvalKit passes re.UNICODE (= 32) as the `count` argument of sub().
_PERIOD_COUNT = int(re.UNICODE)


def process_punctuation(text: str, *, period_lookbehind: bool = True) -> str:
    """Remove or space out punctuation exactly as VLMEvalKit's VQA-style cleaner does.

    A mark is deleted when it touches a space anywhere in the ORIGINAL text (or the text
    has a digit,comma,digit pattern), otherwise replaced by a space; then at most 32 periods go.
    """
    out = text
    strip_all = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for mark in _PUNCT:
        touches_space = (mark + " ") in text or (" " + mark) in text
        out = out.replace(mark, "" if touches_space or strip_all else " ")
    period = _PERIOD_HEAD if period_lookbehind else _PERIOD_2024
    return period.sub("", out, count=_PERIOD_COUNT)


def extract_yes_no(output: str, *, period_lookbehind: bool = True) -> str:
    """'Yes' / 'No' if exactly one of the whole words appears, else 'Unknown'."""
    words = process_punctuation(output.lower(), period_lookbehind=period_lookbehind).split()
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes and not has_no:
        return "Yes"
    if has_no and not has_yes:
        return "No"
    return "Unknown"
