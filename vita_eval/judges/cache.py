"""On-disk judge cache and the caching base class every judge builds on.

Why one file per key (JSON, written by `vita_eval.fsio`: temp file, fsync, ``os.replace``) and
not sqlite3 in WAL mode: WAL needs shared memory and is documented as unsafe
on network filesystems, and ``~/.cache`` sits on NFS on many clusters. A
rename within one directory is atomic on POSIX and on NFS, so concurrent
threads *and* processes (several scoring jobs sharing one cache) never see a
torn entry; two writers of the same key write the same answer, and the last
rename wins harmlessly. Entries are plain JSON that a person can inspect.

Only successful answers are stored: a failure is retried on the next score.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vita_eval import fsio
from vita_eval.judges.base import Answer, JudgeStats

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/vita-eval/judge")
_KEY_VERSION = 1  # bump when the meaning of a cached entry changes


@dataclass(frozen=True)
class Generation:
    """One successful reply and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


def cache_key(identity: str, prompt: str, params: dict[str, Any]) -> str:
    """sha256 over everything that determines the reply (identity holds no secret)."""
    payload = {"v": _KEY_VERSION, "identity": identity, "prompt": prompt, "params": params}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """Directory of ``<key[:2]>/<key>.json`` entries."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root if root is not None else DEFAULT_CACHE_DIR).expanduser()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Generation | None:
        """The stored reply, or None when absent or unreadable (then it is re-asked)."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
            return Generation(entry["text"], entry["prompt_tokens"], entry["completion_tokens"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("ignoring unreadable judge cache entry %s: %s", key, err)
            return None

    def put(self, key: str, gen: Generation, meta: dict[str, Any]) -> None:
        """Write atomically: a reader sees the old state or the whole new entry."""
        entry = {**meta, "text": gen.text, "prompt_tokens": gen.prompt_tokens,
                 "completion_tokens": gen.completion_tokens}
        fsio.write_text(self._path(key), json.dumps(entry, ensure_ascii=False))


class CachedJudge(ABC):
    """Cache lookup, thread-safe stats, per-suite sessions and ``complete_many`` shared by all judges.

    Subclasses implement ``_generate`` (including their own retries, each try bounded by
    ``time_left()``) and report every request they send through ``_record``.
    """

    identity: str
    stats: JudgeStats
    max_concurrency: int = 1
    budget_s: float | None = None  # a session's judge time; None: unlimited
    deadline: float | None = None  # time.monotonic() after which the session sends nothing

    def __init__(self, identity: str, cache: JudgeCache) -> None:
        self.identity = identity
        self.stats = JudgeStats()
        self.cache = cache
        self._stats_lock = threading.Lock()
        self._shared: dict[str, Any] = {}  # one dict for every session of this judge (a failed probe)

    def session(self, budget_s: float | None = None) -> "CachedJudge":
        """This judge for one suite: the same endpoint, model and cache, its own counters and time budget.

        Usage is then reported per suite (not summed over the run), and a judge that hangs costs a
        suite at most `budget_s` seconds: after that no prompt is sent and each counts as a failure
        (an in-process judge finishes the generation it is in).
        """
        view = copy.copy(self)
        view.stats = JudgeStats()
        view._stats_lock = threading.Lock()
        view.budget_s = budget_s
        view.deadline = None if budget_s is None else time.monotonic() + budget_s
        return view

    def time_left(self) -> float | None:
        """Seconds of the session's budget left (None: no budget)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def budget_spent(self) -> bool:
        left = self.time_left()
        return left is not None and left <= 0

    def notes(self) -> list[str]:
        """scores.json notes on this session's failures, built from the counters they report."""
        s, out = self.stats, []
        unanswered = s.failures - s.skipped
        if unanswered:
            last = getattr(self, "last_error", None)
            out.append(f"judge {self.identity}: {unanswered} prompts got no answer"
                       + (f" (last error: {last})" if last else ""))
        if s.skipped:
            out.append(f"judge {self.identity}: time budget of {self.budget_s:g} s spent; {s.skipped} prompts "
                       "were not sent and count as judge failures (scored by the suite's no-judge rule)")
        if s.unusable:
            out.append(f"judge {self.identity}: {s.unusable} replies could not be parsed by the scorer")
        return out

    def note_unusable(self) -> None:
        """A reply the scorer could not parse (counted, so the notes can say how often)."""
        self._record(unusable=1)

    @abstractmethod
    def _generate(self, prompt: str, temperature: float, max_tokens: int) -> Generation | None:
        """Ask the model (retrying as the judge sees fit); None when it failed."""

    def _key_params(self) -> dict[str, Any]:
        """Extra parameters that change replies (e.g. a sampling seed)."""
        return {}

    def _record(self, *, calls: int = 0, cache_hits: int = 0, failures: int = 0, skipped: int = 0,
                unusable: int = 0, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        with self._stats_lock:
            self.stats.calls += calls
            self.stats.cache_hits += cache_hits
            self.stats.failures += failures
            self.stats.skipped += skipped
            self.stats.unusable += unusable
            self.stats.prompt_tokens += prompt_tokens
            self.stats.completion_tokens += completion_tokens

    def complete(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 2048) -> str | None:
        """The reply, or None when there is none (see `answer`)."""
        return self.answer(prompt, temperature=temperature, max_tokens=max_tokens).text

    def answer(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 2048) -> Answer:
        """Answer from the cache when possible so a re-score never pays twice; say where the reply came from."""
        params = {"temperature": float(temperature), "max_tokens": int(max_tokens), **self._key_params()}
        key = cache_key(self.identity, prompt, params)
        hit = self.cache.get(key)
        if hit is not None:
            self._record(cache_hits=1)
            return Answer(hit.text, "ok", cached=True)
        if self.budget_spent():
            self._record(failures=1, skipped=1)
            return Answer(None, "skipped")
        gen = self._generate(prompt, float(temperature), int(max_tokens))
        if gen is None:
            self._record(failures=1)
            return Answer(None, "failed")
        self.cache.put(key, gen, {"identity": self.identity, "params": params, "prompt": prompt})
        return Answer(gen.text, "ok")

    def complete_many(self, prompts: Sequence[str], *, temperature: float = 0.0,
                      max_tokens: int = 2048) -> list[str | None]:
        """``complete`` over many prompts with ``max_concurrency`` threads, in order."""
        with ThreadPoolExecutor(max_workers=max(1, self.max_concurrency)) as pool:
            return list(pool.map(lambda p: self.complete(p, temperature=temperature,
                                                         max_tokens=max_tokens), prompts))
