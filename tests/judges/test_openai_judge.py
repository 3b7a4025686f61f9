"""OpenAIJudge with the real openai client against real HTTP servers on 127.0.0.1."""
from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any, Callable

import pytest

from vita_eval.judges.cache import JudgeCache
from vita_eval.judges.factory import build_judge
from vita_eval.judges.openai_judge import OpenAIJudge, redact
from vita_eval.judges.server import JudgeHTTPServer

SECRET = "sk-SECRET-0123456789abcdefXYZ"


def make_judge(base_url: str, cache_dir: Path, model: str = "tiny-qwen", **kw: Any) -> OpenAIJudge:
    opts: dict[str, Any] = {"retry": 3, "timeout": 10.0, "wait": 0.01, "sleep": lambda s: None}
    return OpenAIJudge(model, base_url, cache=JudgeCache(cache_dir), **{**opts, **kw})


def test_completes_against_served_local_model(judge_server: JudgeHTTPServer, tmp_path: Path) -> None:
    judge = make_judge(judge_server.base_url, tmp_path)
    before = judge_server.request_count
    text = judge.complete("Is the answer A? Reply Yes or No.", max_tokens=6)
    assert isinstance(text, str) and text.strip()
    assert judge_server.request_count - before == 1
    s = judge.stats
    assert (s.calls, s.cache_hits, s.failures) == (1, 0, 0)
    assert s.prompt_tokens > 10 and 1 <= s.completion_tokens <= 6


def test_identical_call_is_served_from_disk_cache(judge_server: JudgeHTTPServer, tmp_path: Path) -> None:
    judge = make_judge(judge_server.base_url, tmp_path)
    first = judge.complete("cache me", max_tokens=4)
    before = judge_server.request_count
    assert judge.complete("cache me", max_tokens=4) == first
    rescored = make_judge(judge_server.base_url, tmp_path)  # a later re-score, same cache dir
    assert rescored.complete("cache me", max_tokens=4) == first
    assert judge_server.request_count == before  # nothing was paid twice
    assert (judge.stats.cache_hits, rescored.stats.cache_hits, rescored.stats.calls) == (1, 1, 0)
    judge.complete("cache me", max_tokens=5)  # other parameters, other key
    assert judge_server.request_count == before + 1


def test_full_chat_completions_url_is_accepted(judge_server: JudgeHTTPServer, tmp_path: Path) -> None:
    judge = make_judge(judge_server.base_url + "/chat/completions/", tmp_path)
    assert judge.identity == f"tiny-qwen @ {judge_server.base_url}"
    assert judge.complete("hi", max_tokens=3)


def test_complete_many_keeps_order_and_caches(judge_server: JudgeHTTPServer, tmp_path: Path) -> None:
    judge = make_judge(judge_server.base_url, tmp_path, max_concurrency=2)
    prompts = [f"question {i}" for i in range(4)]
    answers = judge.complete_many(prompts, max_tokens=3)
    assert answers == [judge.complete(p, max_tokens=3) for p in prompts]
    assert (judge.stats.calls, judge.stats.cache_hits) == (4, 4)


def test_429_then_500_then_ok_is_retried(scripted: Callable[..., Any], tmp_path: Path) -> None:
    script = scripted([429, 500, "ok"])
    sleeps: list[float] = []
    judge = make_judge(script.base_url, tmp_path, wait=0.01, sleep=sleeps.append)
    assert judge.complete("q") == "OK answer"
    assert script.count == 3
    assert (judge.stats.calls, judge.stats.failures) == (3, 0)
    assert (judge.stats.prompt_tokens, judge.stats.completion_tokens) == (7, 3)
    # VLMEvalKit's schedule: one 0-0.5 s jitter, then 0-2*wait s after each failed try
    assert len(sleeps) == 3 and sleeps[0] <= 0.5 and all(s <= 0.02 for s in sleeps[1:])


def test_all_500_gives_none_and_is_not_cached(scripted: Callable[..., Any], tmp_path: Path) -> None:
    script = scripted([500] * 3)
    judge = make_judge(script.base_url, tmp_path, retry=3)
    assert judge.complete("q") is None
    assert (script.count, judge.stats.calls, judge.stats.failures) == (3, 3, 1)
    assert judge.last_error and "Error code: 500 - scripted failure" in judge.last_error
    assert not list(tmp_path.rglob("*.json"))
    assert judge.complete("q") == "OK answer"  # the failure was not cached: asked again
    assert script.count == 4


def test_empty_reply_counts_as_failure(scripted: Callable[..., Any], tmp_path: Path) -> None:
    script = scripted(["empty", "ok"])
    judge = make_judge(script.base_url, tmp_path)
    assert judge.complete("q") == "OK answer"
    assert (script.count, judge.stats.calls) == (2, 2)


def test_timeout_is_retried_and_counted(scripted: Callable[..., Any], tmp_path: Path) -> None:
    script = scripted([("sleep", 1.0), "ok"])
    judge = make_judge(script.base_url, tmp_path, timeout=0.3)
    assert judge.complete("q") == "OK answer"
    assert (script.count, judge.stats.calls, judge.stats.failures) == (2, 2, 0)
    assert judge.last_error and "timed out" in judge.last_error


def test_client_errors_are_not_retried(scripted: Callable[..., Any], tmp_path: Path) -> None:
    script = scripted([400, "ok"])
    judge = make_judge(script.base_url, tmp_path)
    assert judge.complete("q") is None
    assert (script.count, judge.stats.failures) == (1, 1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_working_probes_are_bounded(judge_server: JudgeHTTPServer, tmp_path: Path) -> None:
    assert make_judge(judge_server.base_url, tmp_path).working()
    dead = make_judge(f"http://127.0.0.1:{_closed_port()}/v1", tmp_path, probe_tries=2)
    assert not dead.working()
    assert dead.stats.calls == 2 and dead.last_error and "connection error" in dead.last_error
    assert dead.stats.failures == 1  # the failed probe is counted: stats agree with "not working"
    wrong_model = make_judge(judge_server.base_url, tmp_path, model="gpt-4o-mini-2024-07-18")
    assert not wrong_model.working() and wrong_model.stats.calls == 1  # a 404 will not heal
    assert "tiny-qwen" in (wrong_model.last_error or "")


def test_key_never_leaks(judge_server: JudgeHTTPServer, scripted: Callable[..., Any], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("LOCAL_LLM", judge_server.model_name)  # VLMEvalKit's way to name a local model
    caplog.set_level(logging.DEBUG)
    cache_dir = tmp_path / "cache"
    judge = build_judge("gpt-4o-mini", base_url=judge_server.base_url, cache_dir=cache_dir, retry=2, timeout=10)
    assert isinstance(judge, OpenAIJudge) and judge.working()
    assert judge.complete("leak test", max_tokens=3) and judge.complete("leak test", max_tokens=3)
    # An endpoint that echoes the key fragment the way OpenAI's 401 does.
    script = scripted([401], error_text=f"Incorrect API key provided: {SECRET[:8]}****{SECRET[-4:]} / {SECRET}")
    rejected = make_judge(script.base_url, cache_dir)
    assert rejected.complete("q") is None
    written = "".join(p.read_text() for p in cache_dir.rglob("*") if p.is_file())
    assert written and judge.stats.cache_hits == 1
    for text in (written, caplog.text, judge.identity, str(judge.stats.as_dict()), str(rejected.last_error),
                 rejected.identity, str(vars(judge.stats))):
        assert SECRET not in text and SECRET[-4:] not in text and "SECRET" not in text


def test_redact_and_identity_strip_credentials(tmp_path: Path) -> None:
    assert redact(f"bad key {SECRET}", SECRET) == "bad key ***"
    assert redact("Incorrect API key provided: sk-SECRE****0XYZ.", None) == "Incorrect API key provided: sk-***."
    judge = make_judge("http://user:pw@127.0.0.1:9/v1?key=abc", tmp_path)
    assert judge.identity == "tiny-qwen @ http://127.0.0.1:9/v1"
