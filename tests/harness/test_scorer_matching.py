"""can_infer generations (v1: VITA-2024 / <= 2025-08-04, v2: c3371551 / ms-vlmeval 0.0.20, v3: a67ace50 / HEAD),
Yes/No extraction (yorn.py, all versions), profiles and judge prompts."""

from __future__ import annotations

import hashlib

import pytest

from vita_eval.scorers.judge_prompts import mathvista_prompt, mcq_prompt, option_string, yorn_prompt
from vita_eval.scorers.matching import can_infer, can_infer_in_place, can_infer_option, can_infer_text
from vita_eval.scorers.profiles import get_profile
from vita_eval.scorers.yorn import extract_yes_no, process_punctuation

CHOICES = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}
EARLY_LETTER = "C is right because the picture clearly shows it sitting on the branch"
BOLD_ANSWER = "After looking closely at the image I think the answer is **C** and nothing else fits here"


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        (EARLY_LETTER, ("C", False, False)),  # v1 accepts the early letter; v2/v3 need it in the last 4 tokens
        (BOLD_ANSWER, ("C", False, "C")),  # only v3's "answer is **X**" regex rescues it from v2's tail rule
        ("The answer is C.", ("C", "C", "C")),
        ("I am not sure.", (False, False, False)),
        ("Z", ("Z", "Z", "Z")),
        ("Cannot determine the answer", ("Z", "Z", "Z")),
        ("Failed to obtain answer via API. B", (False, False, False)),
    ],
)
def test_can_infer_option_generations(prediction, expected):
    assert tuple(can_infer_option(prediction, CHOICES, g) for g in (1, 2, 3)) == expected


def test_can_infer_text_length_guard_only_from_v2():
    long_answer = "it is a dog " * 5  # 60 chars > 2 * len("catdogbirdfish") = 28
    assert can_infer_text(long_answer, CHOICES, 1) == "B"
    assert can_infer_text(long_answer, CHOICES, 2) is False
    assert can_infer_text("a dog", CHOICES, 3) == "B"


def test_can_infer_nan_prediction_matches_an_option_that_is_a_substring_of_nan():
    # the missing prediction becomes "nan"; option text "An" is a substring of it
    assert can_infer(float("nan"), {"A": "An", "B": "Bee"}, 3) == "A"


def test_can_infer_does_not_mutate_choices():
    choices = {"A": "Cat", "B": "Dog"}
    can_infer("a cat", choices, 1)
    assert choices == {"A": "Cat", "B": "Dog"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", "Yes"),
        ("no, it is not", "No"),
        ("nope", "Unknown"),
        ("yes:", "Unknown"),  # colons are kept, so the word is "yes:"
        ("是", "Unknown"),
        ("Yes and no", "Unknown"),
        ("(yes)", "Yes"),
    ],
)
def test_extract_yes_no(text, expected):
    assert extract_yes_no(text) == expected


def test_process_punctuation_rules():
    assert process_punctuation("a-b c") == "a b c"  # no mark touches a space: replaced by a space
    assert process_punctuation("a-b - c") == "ab  c"  # "-" touches a space somewhere: deleted everywhere
    assert process_punctuation("1,000 (x)") == "1000 x"  # digit,comma,digit: every mark deleted
    assert process_punctuation("3. end.") == "3. end"  # HEAD keeps a period after a digit
    assert process_punctuation("3. end.", period_lookbehind=False) == "3 end"  # VITA-2024 regex typo
    assert process_punctuation("." * 40).count(".") == 8  # re.UNICODE passed as count: 32 removed


def test_profiles_pin_the_version_differences():
    old, head = get_profile("vlmevalkit-2024.12"), get_profile("vlmevalkit-2026.08")
    assert (old.matcher_generation, head.matcher_generation) == (1, 3)
    assert (old.videomme_unparsed_score, head.videomme_unparsed_score) == (-1, 0)
    assert (old.videomme_rating_format, head.videomme_rating_format) == ("%.2f", "%.3f")
    assert (old.judge_mcq, old.judge_mathvista, head.judge_mcq) == ("chatgpt-0125", "gpt-4-turbo", "gpt-4o-mini")
    assert get_profile("vlmevalkit-2026.08", matcher_generation=2).matcher_generation == 2
    assert get_profile("vlmevalkit-2026.08", videomme_parser="vita").videomme_parser == "vita"
    with pytest.raises(ValueError):
        get_profile("vlmevalkit-2026.08", videomme_parser="lmms")
    with pytest.raises(KeyError):
        get_profile("vlmevalkit-1999")


def test_judge_prompts_exact_tails():
    assert yorn_prompt("Is it red", "nope").endswith("Example 3: \nQuestion: Is it red?\nAnswer: nope\nYour output: ")
    assert option_string({"A": "cat", "B": float("nan"), "C": "dog"}) == "There are several options: \nA. cat\nC. dog\n"
    en = mcq_prompt("What is it", {"A": "cat"}, "a cat")
    assert en.endswith(
        "Question: What is it?\nOptions: There are several options: \nA. cat\n\nAnswer: a cat\nYour output: "
    )
    assert mcq_prompt("这是什么", {"A": "猫"}, "猫").endswith(
        "问题: 这是什么?\n选项: There are several options: \nA. 猫\n\n答案: 猫\n输出: "
    )
    prompt = mathvista_prompt("Question: 1+1?", "two")
    assert prompt.startswith("\nPlease read the following example.\n")
    assert prompt.endswith("Extracted answer: B\n\nQuestion: 1+1?\nModel respone: twoExtracted answer:")


def test_judge_prompt_snapshots_match_upstream():
    """sha256 prefixes of the prompts built by VLMEvalKit's own functions (HEAD and VITA-2024 agree)."""

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    assert digest(yorn_prompt("Is it red", "nope")) == "a94da25980638401"
    assert digest(mcq_prompt("What is it", {"A": "cat", "B": "dog"}, "a cat")) == "a990d11382244cad"
    assert digest(mcq_prompt("这是什么", {"A": "猫"}, "猫")) == "c8e727df521235da"
    assert digest(mathvista_prompt("Question: 1+1?", "two")) == "e5287afd81cb5e0a"


def test_can_infer_text_guard_sums_the_original_option_texts():
    # VLMEvalKit `can_infer_text` (c3371551, ms-vlmeval 0.0.20 and HEAD): `len(answer.lower()) >
    # 2 * sum(len(str(v)) for v in choices.values())` runs before the texts are lower-cased; 'İ'.lower()
    # is two code points, so the lower-cased sum (12) would let this 21-character answer through.
    answer, choices = "So it must be: Paris.", {"A": "İzmir", "B": "Paris"}
    assert len(answer) == 21 and 2 * sum(len(v) for v in choices.values()) == 20
    assert can_infer_text(answer, choices, 2) is False and can_infer(answer, choices, 3) is False
    assert can_infer(answer, choices, 1) == "B"  # the 2024 matcher has no guard
    assert can_infer_text("İzmir, surely", choices, 3) == "A"  # the answer side is measured lower-cased


def test_can_infer_in_place_lower_cases_the_dict_like_upstream():
    # upstream lower-cases `choices` in place once past the guard; `extract_answer_from_item` reuses the dict
    # for the judge's replies, whose guard then sums lower-cased lengths (İzmir -> 6 code points).
    choices = {"A": "İzmir", "B": "Paris"}
    assert can_infer_in_place("A or B, unclear", choices, 3) is False
    assert choices == {"A": "i̇zmir", "B": "paris"}
    assert can_infer_in_place("So it must be: Paris.", choices, 3) == "B"
    untouched = {"A": "İzmir", "B": "Paris"}
    assert can_infer_in_place("x" * 21, untouched, 3) is False and untouched["A"] == "İzmir"  # stopped by the guard
    assert can_infer_in_place("B", untouched, 3) == "B" and untouched["A"] == "İzmir"  # a letter: no text pass


def test_judge_replies_are_matched_against_the_lower_cased_options(scripted_judge):
    import random

    from vita_eval.scorers.mmbench import OptionExtractor

    judge = scripted_judge(lambda prompt, t: "So it must be: Paris.")
    extract = OptionExtractor(3, judge, random.Random(0))
    assert extract("Where?", {"A": "İzmir", "B": "Paris"}, "hmm", "1") == "B"
    assert "A. İzmir" in judge.prompts[0][0]  # the prompt shows the options as given
    extract_fresh = OptionExtractor(3, None, random.Random(0))
    assert extract_fresh("Where?", {"A": "İzmir", "B": "Paris"}, "So it must be: Paris.", "1") == "Z"


def test_judge_reply_with_the_api_failure_string_is_not_matched(scripted_judge):
    import random

    from vita_eval.scorers.mmbench import OptionExtractor

    # `extract_answer_from_item` skips a reply containing "Failed to obtain answer via API" (option text "API")
    judge = scripted_judge(lambda prompt, t: "Failed to obtain answer via API.")
    extract = OptionExtractor(3, judge, random.Random(0))
    extract("Which?", {"A": "api", "B": "sdk"}, "unclear", "1")
    assert len(judge.prompts) == 3 and extract.random_fallbacks == 1
