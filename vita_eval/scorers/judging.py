"""How scorers use a judge: availability check, VLMEvalKit's per-suite retry loops, concurrency, usage report."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

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


def judge_map(judge: Any | None, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`[fn(x) for x in items]`, run concurrently up to the judge's `max_concurrency` (order kept).

    For work items that are independent of each other (one row's judge retries), so the result
    is the same as the sequential loop; a judge without `max_concurrency` is used sequentially.
    """
    workers = int(getattr(judge, "max_concurrency", 1) or 1) if judge is not None else 1
    if workers <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="judge") as pool:
        return list(pool.map(fn, items))


def _count_unusable(judge: Any) -> None:
    note = getattr(judge, "note_unusable", None)
    if note is not None:
        note()
    elif hasattr(judge, "stats"):
        judge.stats.unusable += 1


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
        _count_unusable(judge)
    return None
