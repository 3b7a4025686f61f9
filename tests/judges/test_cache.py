"""JudgeCache: atomic one-file-per-key entries under concurrent threads."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vita_eval.judges.cache import Generation, JudgeCache, cache_key


def test_key_covers_every_parameter() -> None:
    base = cache_key("m @ u", "p", {"temperature": 0.0, "max_tokens": 8})
    assert base == cache_key("m @ u", "p", {"max_tokens": 8, "temperature": 0.0})
    assert len({base, cache_key("m @ v", "p", {"temperature": 0.0, "max_tokens": 8}),
                cache_key("m @ u", "q", {"temperature": 0.0, "max_tokens": 8}),
                cache_key("m @ u", "p", {"temperature": 0.5, "max_tokens": 8}),
                cache_key("m @ u", "p", {"temperature": 0.0, "max_tokens": 9})}) == 5


def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path)
    keys = [cache_key("j", f"p{i % 4}", {}) for i in range(64)]  # many writers per key

    def work(i: int) -> Generation | None:
        cache.put(keys[i], Generation(f"a{i % 4}", 1, 2), {"i": i % 4})
        return cache.get(keys[i])

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(work, range(64)))
    assert [g.text if g else None for g in got] == [f"a{i % 4}" for i in range(64)]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 4 and not any(p.name.startswith(".tmp-") for p in files)


def test_unreadable_entry_is_a_miss(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path)
    key = cache_key("j", "p", {})
    cache.put(key, Generation("x"), {})
    next(tmp_path.rglob("*.json")).write_text("{truncated")
    assert cache.get(key) is None
