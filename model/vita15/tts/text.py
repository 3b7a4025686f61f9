"""Text → speakable sentences, as the VITA-1.5 demos prepare LLM output for the speech decoder.

The replacement tables are facts taken from the reference demos (``replace_equation``). They are
applied in the listed order with plain substring replacement, so e.g. ``>=`` never matches
(``=`` and ``>`` are replaced first); that quirk is part of the reference behaviour.
"""

from __future__ import annotations

import re

SPECIAL_TOKENS: tuple[str, ...] = ("☞", "☟", "☜", "<unk>", "<|im_end|>")

SPECIAL_NOTATIONS: tuple[tuple[str, str], ...] = (
    ("sin", " sine "),
    ("cos", " cosine "),
    ("tan", " tangent "),
    ("cot", " cotangent "),
    ("sec", " secant "),
    ("csc", " cosecant "),
    ("log", " logarithm "),
    ("exp", "e^"),
    ("sqrt", "根号 "),
    ("abs", "绝对值 "),
)

SPECIAL_OPERATORS: tuple[tuple[str, str], ...] = (
    ("+", "加"),
    ("-", "减"),
    ("*", "乘"),
    ("/", "除"),
    ("=", "等于"),
    ("!=", "不等于"),
    (">", "大于"),
    ("<", "小于"),
    (">=", "大于等于"),
    ("<=", "小于等于"),
)

GREEK_LETTERS: tuple[tuple[str, str], ...] = (
    ("α", "alpha "),
    ("β", "beta "),
    ("γ", "gamma "),
    ("δ", "delta "),
    ("ε", "epsilon "),
    ("ζ", "zeta "),
    ("η", "eta "),
    ("θ", "theta "),
    ("ι", "iota "),
    ("κ", "kappa "),
    ("λ", "lambda "),
    ("μ", "mu "),
    ("ν", "nu "),
    ("ξ", "xi "),
    ("ο", "omicron "),
    ("π", "派 "),
    ("ρ", "rho "),
    ("σ", "sigma "),
    ("τ", "tau "),
    ("υ", "upsilon "),
    ("φ", "phi "),
    ("χ", "chi "),
    ("ψ", "psi "),
    ("ω", "omega "),
)

SENTENCE_ENDINGS = re.compile(r"[，。？\n！？、,?.!]")
_NEGATIVE_NUMBER = re.compile(r"(?<![\d)])-(\d+)")
_IMPLICIT_PRODUCT = re.compile(r"\(?(\d+)\)?\((\d+)\)")
_POWER = re.compile(r"\(?(\w+)\)?\^\(?(\w+)\)?")


def remove_special_tokens(text: str) -> str:
    """Drop state markers and chat control tokens, which must not be spoken."""
    for token in SPECIAL_TOKENS:
        text = text.replace(token, "")
    return text


def replace_equation(sentence: str) -> str:
    """Spell out math notation, operators and Greek letters the way the reference demos do."""
    sentence = sentence.replace("**", " ")
    sentence = _NEGATIVE_NUMBER.sub(r"负\1", sentence)
    for table in (SPECIAL_NOTATIONS, SPECIAL_OPERATORS, GREEK_LETTERS):
        for key, spoken in table:
            sentence = sentence.replace(key, spoken)
    sentence = _IMPLICIT_PRODUCT.sub(r"\1乘\2", sentence)
    return _POWER.sub(r"\1的\2次方", sentence)


def split_into_sentences(text: str) -> list[str]:
    """Split at the demo's punctuation set; the decoder is run once per sentence."""
    return [s.strip() for s in SENTENCE_ENDINGS.split(text) if s.strip()]


def tts_sentences(text: str, *, lowercase: bool = False) -> list[str]:
    """Full demo preprocessing: markers removed, equations spelled out, (lowercased), split.

    ``lowercase=True`` follows the real-time server; the basic web demo keeps case.
    """
    text = replace_equation(remove_special_tokens(text))
    if lowercase:
        text = text.lower()
    return split_into_sentences(text)
