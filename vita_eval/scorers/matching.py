"""VLMEvalKit's MCQ answer matcher `can_infer`, in its three generations.

v1: VLMEvalKit <= 2025-08-04 (VITA-2024 copy, nvidia-vlmeval): a lone choice letter is accepted anywhere.
v2: commit c3371551 (ms-vlmeval): the letter must sit in the last 4 tokens; can_infer_text gets a length guard
    (lower-cased answer vs. the option texts' lengths as given, which upstream lower-cases in place after it).
v3: commit a67ace50 (HEAD e8e78f05): v2 plus a fallback regex for "... answer is **X**".
The VERBOSE-only quantifier check is not reproduced (it only fires with VERBOSE set).
"""

from __future__ import annotations

import re
import string
from typing import Any, Literal, Mapping

Inferred = str | Literal[False]

API_FAILURE = "Failed to obtain answer via API"
_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_SEPARATORS = str.maketrans({c: " " for c in ".()[],:;!*#{}"})
_VERBOSE_ANSWER = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def _letter_in_tail(tokens: list[str], letter: str, generation: int) -> bool:
    """v1 accepts the letter anywhere; v2/v3 only when its first occurrence is in the last 4 tokens."""
    return generation == 1 or tokens.index(letter) > len(tokens) - 5


def can_infer_option(answer: str, choices: Mapping[str, Any], generation: int) -> Inferred:
    """Find a choice letter written as a whole token (or Z for refusals)."""
    if API_FAILURE in answer:
        return False
    if any(refusal in answer for refusal in _REFUSALS):
        return "Z"
    tokens = answer.translate(_SEPARATORS).split()
    present = [c for c in choices if c in tokens]
    if len(present) == 1 and _letter_in_tail(tokens, present[0], generation):
        return present[0]
    if not present and "Z" in tokens:
        return "Z"
    if generation >= 3:
        match = _VERBOSE_ANSWER.search(answer)
        if match and match.group(1).upper() in choices:
            return match.group(1).upper()
    return False


def _passes_length_guard(answer: str, choices: Mapping[str, Any], generation: int) -> bool:
    """v2/v3 (`can_infer_text`, c3371551): the lower-cased answer may be at most twice the summed length of
    the option texts as they stand in `choices` (`len(str(v))`, not lower-cased: 'İ'.lower() is 2 code points)."""
    return generation < 2 or len(answer.lower()) <= 2 * sum(len(str(v)) for v in choices.values())


def _single_text_match(answer: str, choices: Mapping[str, Any]) -> Inferred:
    answer = answer.lower()
    texts = {k: str(v).lower() for k, v in choices.items()}
    assert all(k in string.ascii_uppercase for k in texts)
    candidates = [k for k, text in texts.items() if text in answer]
    return candidates[0] if len(candidates) == 1 else False


def can_infer_text(answer: str, choices: Mapping[str, Any], generation: int) -> Inferred:
    """The single choice whose lower-cased text is a substring of the lower-cased answer (after the guard)."""
    return _single_text_match(answer, choices) if _passes_length_guard(answer, choices, generation) else False


def can_infer(answer: Any, choices: Mapping[str, Any], generation: int) -> Inferred:
    """`str(answer)` matched by letter first, then by option text (NaN answers become "nan")."""
    text = str(answer)
    return can_infer_option(text, choices, generation) or can_infer_text(text, choices, generation)


def can_infer_in_place(answer: Any, choices: dict[str, Any], generation: int) -> Inferred:
    """`can_infer` with VLMEvalKit's side effect on `choices`, for callers that reuse one dict.

    Upstream `can_infer_text` lower-cases the option texts of the dict it is given, in place, once it
    gets past its length guard. `extract_answer_from_item` matches the prediction and then up to three
    judge replies against the same dict, so from the second call on, the v2/v3 guard sums lower-cased
    lengths.
    """
    text = str(answer)
    found = can_infer_option(text, choices, generation)
    if found:
        return found
    if not _passes_length_guard(text, choices, generation):
        return False
    choices.update({k: str(v).lower() for k, v in choices.items()})
    return _single_text_match(text, choices)
