"""Text normalizers for ASR error rates: each turns a transcript into the token list that is aligned.

* `wenet`: WeNet `tools/compute-wer.py --char=1` (the VITA team's VITA-Audio `compute_wer.py`):
  upper-case, `<...>` tags stripped, each CJK (Unicode Lo) character a token, other text split on
  spaces, and only the listed punctuation dropped -- and only where it starts a token, so an ASCII
  "," glued to a word stays ("HELLO," != "HELLO"), while full-width marks always split and vanish.
* `whisper`: the Whisper normalizers (pip package `whisper-normalizer`), as lmms-eval / Qwen2-Audio:
  English -> EnglishTextNormalizer then BasicTextNormalizer, split on spaces; Chinese ->
  BasicTextNormalizer, whitespace removed, one token per character.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Callable

WENET_PUNCTUATION = frozenset("!,?、。！，；？：「」︰『』《》")
_WENET_SPACES = frozenset(" \t\r\n")
_TAG = re.compile(r"<[^>]*(>|$)")


def _wenet_run_end(text: str, start: int) -> int:
    """End of a non-CJK token: stops at non-ASCII, a space, or '>' closing a token opened by '<'."""
    stop = ">" if text[start] == "<" else " "
    end = start + 1
    while end < len(text) and ord(text[end]) < 128 and text[end] not in _WENET_SPACES and text[end] != stop:
        end += 1
    return end + 1 if end < len(text) and text[end] == ">" else end


def _wenet_characterize(text: str) -> list[str]:
    """compute-wer.py `characterize`: CJK characters and ASCII runs, skipping spaces and listed punctuation."""
    tokens: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        category = unicodedata.category(char)
        if char in WENET_PUNCTUATION or category in ("Zs", "Cn") or char in _WENET_SPACES:
            i += 1
        elif category == "Lo":
            tokens.append(char)
            i += 1
        else:
            end = _wenet_run_end(text, i)
            tokens.append(text[i:end])
            i = end
    return tokens


def wenet_tokens(text: str, language: str) -> list[str]:
    """compute-wer.py `--char=1` tokens (case-insensitive: upper-cased; tags removed; empties dropped)."""
    del language  # the same rules serve English and Chinese
    tokens = (_TAG.sub("", token.upper()) for token in _wenet_characterize(text))
    return [token for token in tokens if token]


@lru_cache(maxsize=1)
def _whisper() -> tuple[Callable[[str], str], Callable[[str], str]]:
    from whisper_normalizer.basic import BasicTextNormalizer
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer(), BasicTextNormalizer()


def whisper_tokens(text: str, language: str) -> list[str]:
    """Whisper-normalized words (English) or characters (Chinese)."""
    english, basic = _whisper()
    if language == "zh":
        return [char for char in basic(text) if not char.isspace()]
    return basic(english(text)).split()


NORMALIZERS: dict[str, Callable[[str, str], list[str]]] = {"wenet": wenet_tokens, "whisper": whisper_tokens}
