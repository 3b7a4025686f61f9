"""Named, pinned VLMEvalKit version profiles: every scoring rule that changed between versions.

Scores depend on the VLMEvalKit version (matcher generation, Video-MME unparsed rule,
rating format, judge defaults). A run names one profile; a suite YAML may override
single fields (e.g. `videomme_parser`, `asr_normalizer`) through `get_profile(name, **overrides)`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Profile:
    name: str
    # can_infer_option generation: 1 (<= 2025-08-04), 2 (c3371551), 3 (a67ace50, HEAD)
    matcher_generation: int
    # process_punctuation's period regex: HEAD `(?<!\d)\.(?!\d)` (fixed 2025-05-13);
    # VITA-2024 had the typo `(?!<=\d)(\.)(?!\d)` that also strips "3." periods.
    period_lookbehind: bool
    mme_require_all_categories: bool  # HEAD/VITA-2024 KeyError; ms-vlmeval skips
    mmbench_circular_keywords: tuple[str, ...]
    mmbench_uses_g_index: bool  # VITA-2024 groups by index % 1e6 only
    videomme_unparsed_score: int  # -1: excluded from means (VITA-2024); 0: wrong (since 2024-09)
    videomme_rating_format: str  # "%.2f" (VITA-2024) or "%.3f"
    videomme_label_indexed: bool  # VITA-2024 assigns scores with data.loc[index]
    judge_mcq: str  # default judge alias for MCQ and Y/N
    judge_mathvista: str
    videomme_parser: str = "vlmevalkit"  # "vlmevalkit" | "vita" (VITA's videomme/parse_answer.py)
    asr_normalizer: str = "wenet"  # "wenet" | "whisper"
    mcq_random_seed: int = 0  # VLMEvalKit's random MCQ fallback is unseeded; we seed it


HEAD = Profile(
    name="vlmevalkit-2026.08",  # open-compass/VLMEvalKit e8e78f05 (HEAD)
    matcher_generation=3,
    period_lookbehind=True,
    mme_require_all_categories=True,
    mmbench_circular_keywords=("mmbench", "ccbench", "circular", "mmcr"),
    mmbench_uses_g_index=True,
    videomme_unparsed_score=0,
    videomme_rating_format="%.3f",
    videomme_label_indexed=False,
    judge_mcq="gpt-4o-mini",
    judge_mathvista="gpt-4o-mini",
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        replace(  # VITA-vendored copy, tuannv-github/VITA 8bed3780: the era of VITA-1.5's published numbers
            HEAD,
            name="vlmevalkit-2024.12",
            matcher_generation=1,
            period_lookbehind=False,
            mmbench_circular_keywords=("mmbench", "ccbench"),
            mmbench_uses_g_index=False,
            videomme_unparsed_score=-1,
            videomme_rating_format="%.2f",
            videomme_label_indexed=True,
            judge_mcq="chatgpt-0125",
            judge_mathvista="gpt-4-turbo",
        ),
        # PyPI ms-vlmeval 0.0.20 (~ VLMEvalKit early 2026): matcher v2, MME tolerates missing categories
        replace(HEAD, name="ms-vlmeval-0.0.20", matcher_generation=2, mme_require_all_categories=False),
        HEAD,
    )
}

ORIGINS: dict[str, str] = {
    "vlmevalkit-2024.12": "VLMEvalKit as vendored by VITA (tuannv-github/VITA 8bed3780): the era of VITA-1.5's "
                          "published numbers",
    "ms-vlmeval-0.0.20": "PyPI ms-vlmeval 0.0.20 (VLMEvalKit, early 2026)",
    "vlmevalkit-2026.08": "open-compass/VLMEvalKit e8e78f05 (HEAD); the default",
}


def describe(profile: Profile) -> str:
    """One line: where the profile comes from and the rules that differ between profiles."""
    unparsed = "excluded from means" if profile.videomme_unparsed_score < 0 else "scored 0"
    mme = "needs all 14 categories" if profile.mme_require_all_categories else "scores the categories present"
    return (f"{ORIGINS.get(profile.name, profile.name)}. MCQ matcher generation {profile.matcher_generation}; "
            f"MME {mme}; Video-MME unparsed answers {unparsed}, rating {profile.videomme_rating_format}; "
            f"default judges {profile.judge_mcq} (MCQ, Y/N) and {profile.judge_mathvista} (MathVista)")


_CHOICES = {
    "matcher_generation": (1, 2, 3),
    "videomme_parser": ("vlmevalkit", "vita"),
    "asr_normalizer": ("wenet", "whisper"),
}


def get_profile(name: str, **overrides: Any) -> Profile:
    """The named profile, with optional field overrides (suite YAML / prompt preset choices)."""
    if name not in PROFILES:
        raise KeyError(f"unknown scoring profile {name!r}; known: {sorted(PROFILES)}")
    known = {f.name for f in fields(Profile)}
    unknown = set(overrides) - known
    if unknown:
        raise KeyError(f"unknown profile fields {sorted(unknown)}")
    for key, value in overrides.items():
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ValueError(f"{key} must be one of {_CHOICES[key]}, got {value!r}")
    return replace(PROFILES[name], **overrides)


def resolve_profile(profile: Profile | str) -> Profile:
    """Scorers accept a Profile or a profile name."""
    return profile if isinstance(profile, Profile) else get_profile(profile)
