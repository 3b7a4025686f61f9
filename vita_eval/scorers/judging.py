"""How scorers use a judge: availability check, VLMEvalKit's per-suite retry loops, usage report."""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")

# VLMEvalKit's Y/N and MathVista retries use temperature 0.5 * attempt (0, 0.5, 1.0, 1.5, 2.0).
RISING_TEMPERATURES = (0.0, 0.5, 1.0, 1.5, 2.0)
# MCQ matching calls model.generate(prompt) three times at the wrapper default temperature 0.
MCQ_TEMPERATURES = (0.0, 0.0, 0.0)


def usable_judge(judge: Any | None, suite: str) -> tuple[Any | None, list[str]]:
    """The judge if one is given and `working()`; otherwise None plus a loud note (VLMEvalKit warns too)."""
    if judge is None:
        return None, []
    if judge.working():
        return judge, []
    return None, [f"{suite}: judge {judge.identity} is not working; scored with exact matching only"]


def judge_report(judge: Any | None) -> dict[str, Any]:
    """`ScoreResult.judge`: identity plus usage counters, or identity 'none'."""
    if judge is None:
        return {"identity": "none"}
    return {"identity": judge.identity, **judge.stats.as_dict()}


def first_accepted(
    judge: Any,
    prompt: str,
    temperatures: Iterable[float],
    parse: Callable[[str], T | None],
    max_tokens: int = 2048,
) -> T | None:
    """Ask once per temperature until `parse(reply)` accepts; a None reply (failed call) is a failed try."""
    for temperature in temperatures:
        reply = judge.complete(prompt, temperature=temperature, max_tokens=max_tokens)
        if reply is None:
            continue
        parsed = parse(reply)
        if parsed is not None:
            return parsed
    return None
