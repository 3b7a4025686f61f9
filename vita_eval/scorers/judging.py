"""How scorers use a judge: availability check, VLMEvalKit's per-suite retry loops, concurrency, usage report,
and the log of every judge call by the sample it was made for.

Every judged scorer asks the judge through `first_accepted`, naming the sample (uid) it scores; the runner
wraps the suite's judge session in a `JudgeRecorder`, which files each call under that sample and try.
The sample travels in a context variable set around each call, so the judge contract stays
`complete(prompt, ...)` and calls made from `judge_map`'s threads are filed correctly.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# VLMEvalKit's Y/N and MathVista retries use temperature 0.5 * attempt (0, 0.5, 1.0, 1.5, 2.0).
RISING_TEMPERATURES = (0.0, 0.5, 1.0, 1.5, 2.0)
# MCQ matching calls model.generate(prompt) three times at the wrapper default temperature 0.
MCQ_TEMPERATURES = (0.0, 0.0, 0.0)


# (sample uid, try number) of the judge call being made, set by `first_accepted` for `JudgeRecorder`
_ASKING: ContextVar[tuple[str, int] | None] = ContextVar("judge_asking", default=None)


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
    *,
    uid: Any,
) -> T | None:
    """Ask once per temperature until `parse(reply)` accepts; a None reply (failed call) is a failed try.

    `uid` is the sample being scored: a `JudgeRecorder` files each try under it."""
    for attempt, temperature in enumerate(temperatures, 1):
        token = _ASKING.set((str(uid), attempt))
        try:
            reply = judge.complete(prompt, temperature=temperature, max_tokens=max_tokens)
        finally:
            _ASKING.reset(token)
        if reply is None:
            continue
        parsed = parse(reply)
        if parsed is not None:
            return parsed
        _count_unusable(judge)
    return None


def _answer(judge: Any, prompt: str, temperature: float, max_tokens: int) -> tuple[str | None, str, bool]:
    """(reply, status, cached) from the judge's `answer`; a plug-in judge with `complete` only: ok or failed."""
    answer = getattr(judge, "answer", None)
    if callable(answer):
        got = answer(prompt, temperature=temperature, max_tokens=max_tokens)
        return got.text, got.status, got.cached
    reply = judge.complete(prompt, temperature=temperature, max_tokens=max_tokens)
    return reply, "ok" if reply is not None else "failed", False


class JudgeRecorder:
    """A suite's judge session that keeps every call the scorer makes, with the sample and try it was for.

    Everything but `complete` is the judge's own (identity, usage counters, `working`, notes), so the
    scorer and scores.json see the judge unchanged. `calls` holds one dict per call in the order made:
    uid and attempt (None for a call made outside `first_accepted`), the judge's identity, the prompt,
    temperature, max_tokens, reply (None when there is none), status (ok, failed, skipped) and cached.
    """

    def __init__(self, judge: Any) -> None:
        self.judge = judge
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.judge, name)

    def complete(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 2048) -> str | None:
        reply, status, cached = _answer(self.judge, prompt, temperature, max_tokens)
        uid, attempt = _ASKING.get() or (None, None)
        call = {"uid": uid, "attempt": attempt, "identity": self.judge.identity, "prompt": prompt,
                "temperature": float(temperature), "max_tokens": int(max_tokens), "reply": reply,
                "status": status, "cached": cached}
        with self._lock:
            self.calls.append(call)
        return reply
