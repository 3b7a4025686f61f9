"""The judge contract scorers rely on.

A judge completes one prompt. It returns None when every retry failed, so the
scorer can apply VLMEvalKit's failure rule for its suite (Unknown, random
letter, empty extraction). Usage counters are reported in scores.json, per suite:
the runner hands each suite a `session` of the run's judge (its own counters and
time budget, the shared cache and connection). A judge may also offer `answer`, the same call
with how it went (from the cache, failed, skipped by the time budget), which the per-sample judge
log records; every CachedJudge does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass
class JudgeStats:
    calls: int = 0  # requests actually sent (cache misses)
    cache_hits: int = 0
    failures: int = 0  # prompts that got no answer: all retries failed, the probe failed, or not sent (skipped)
    skipped: int = 0  # of those, prompts not sent because the suite's judge time budget was spent
    unusable: int = 0  # answers the scorer could not parse (it then asks again or falls back)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """One `complete` call as it went: the reply (None without one) and where it came from."""

    text: str | None
    status: str  # "ok"; "failed": every try failed; "skipped": not sent, the time budget was spent
    cached: bool = False  # the reply came from the judge cache (nothing was sent)


class Judge(Protocol):
    identity: str  # e.g. "gpt-4o-mini @ https://api.openai.com/v1" (never the key)
    stats: JudgeStats

    def complete(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 2048) -> str | None: ...

    def working(self) -> bool: ...


def suite_session(judge: Any | None, budget_s: float | None) -> Any | None:
    """One suite's session of `judge` (own usage counters, `budget_s` of judge time); a plug-in
    judge without sessions is used as is."""
    session = getattr(judge, "session", None)
    return session(budget_s) if callable(session) else judge
