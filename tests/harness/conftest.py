"""Shared test doubles for the harness tests."""

from __future__ import annotations

from typing import Callable

import pytest

from vita_eval.judges.base import JudgeStats


class ScriptedJudge:
    """A Judge (vita_eval.judges.base protocol) answering from a function of the prompt, counting calls."""

    def __init__(self, reply: Callable[[str, float], str | None], working: bool = True) -> None:
        self.identity = "scripted-judge"
        self.stats = JudgeStats()
        self.prompts: list[tuple[str, float, int]] = []
        self._reply = reply
        self._working = working

    def complete(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 2048) -> str | None:
        self.prompts.append((prompt, temperature, max_tokens))
        self.stats.calls += 1
        reply = self._reply(prompt, temperature)
        self.stats.failures += reply is None
        return reply

    def working(self) -> bool:
        return self._working


@pytest.fixture
def scripted_judge() -> Callable[..., ScriptedJudge]:
    """Factory: `scripted_judge(lambda prompt, temperature: "Yes")`."""
    return ScriptedJudge
