"""The judge contract scorers rely on.

A judge completes one prompt. It returns None when every retry failed, so the
scorer can apply VLMEvalKit's failure rule for its suite (Unknown, random
letter, empty extraction). Usage counters are reported in scores.json.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass
class JudgeStats:
    calls: int = 0  # requests actually sent (cache misses)
    cache_hits: int = 0
    failures: int = 0  # prompts that failed after all retries
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Judge(Protocol):
    identity: str  # e.g. "gpt-4o-mini @ https://api.openai.com/v1" (never the key)
    stats: JudgeStats

    def complete(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 2048) -> str | None: ...

    def working(self) -> bool: ...
