"""Judges that misbehave (non-JSON 200 replies, hangs, dead endpoints) cost a bounded time, and
every failure is counted where the notes report it; usage per suite; the key never reaches a log."""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from vita_eval.judges.cache import JudgeCache
from vita_eval.judges.openai_judge import OpenAIJudge
from vita_eval.runner.rescore import rescore
from vita_eval.scorers.base import get_scorer

SAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "samples"
TOLERANT = "ms-vlmeval-0.0.20"  # its MME_rating skips the categories these small tables leave out


def make_judge(base_url: str, cache_dir: Path, **kw: Any) -> OpenAIJudge:
    opts: dict[str, Any] = {"retry": 2, "timeout": 10.0, "wait": 0.01, "sleep": lambda s: None, "probe_tries": 2}
    return OpenAIJudge("scripted", base_url, cache=JudgeCache(cache_dir), **{**opts, **kw})


def _mme_unknowns(n_images: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MME rows whose predictions are all Unknown, so each one goes to the judge."""
    rows = [{"index": 2 * i + j, "question": f"Is there a shape {i}-{j}?", "answer": ("Yes", "No")[j],
             "category": "color", "image_path": f"color/{i}.png"} for i in range(n_images) for j in range(2)]
    data = pd.DataFrame(rows)
    return data, pd.DataFrame({"index": data["index"], "prediction": "I cannot tell from here."})


def test_reply_that_is_not_json_is_a_failed_try(scripted: Callable[..., Any], tmp_path: Path) -> None:
    script = scripted(["html", "badjson", "ok"])
    judge = make_judge(script.base_url, tmp_path, retry=3)
    assert judge.complete("q") == "OK answer"
    assert (script.count, judge.stats.calls, judge.stats.failures) == (3, 3, 0)
    script = scripted([], default="badjson")
    judge = make_judge(script.base_url, tmp_path / "b", retry=3)
    assert judge.complete("q") is None
    assert (script.count, judge.stats.failures) == (3, 1)
    assert "not JSON" in (judge.last_error or "")


def test_score_with_a_judge_answering_html_scores_the_suite(scripted: Callable[..., Any], tmp_path: Path) -> None:
    """The probe passes, then every reply is an HTML page with status 200: `vita-eval score` still scores."""
    table = pd.read_csv(SAMPLES / "MathVista_MINI.tsv", sep="\t").drop(columns=["image"])
    table["prediction"] = "Let me think step by step about the picture first."  # nothing to prefetch
    preds = tmp_path / "tiny_MathVista_MINI.xlsx"
    table.to_excel(preds, index=False)
    script = scripted(["ok"], default="html")
    scores = rescore("MathVista_MINI", SAMPLES / "MathVista_MINI.tsv", preds, profile="vlmevalkit-2026.08",
                     judge="scripted", judge_base_url=script.base_url, out=tmp_path / "out",
                     judge_cache=str(tmp_path / "cache"), judge_budget_s=1.0)
    assert scores["metrics"]["Overall"] == 0.0 and scores["n"] == len(table)
    judge = scores["judge"]
    assert judge["failures"] >= 1 and judge["calls"] >= 2
    unanswered = _count(scores["notes"], r"(\d+) prompts got no answer")
    skipped = _count(scores["notes"], r"(\d+) prompts were not sent")
    assert unanswered + skipped == judge["failures"] and skipped == judge["skipped"]  # the notes and counters agree


def _count(notes: list[str], pattern: str) -> int:
    found = [int(m.group(1)) for note in notes if (m := re.search(pattern, note))]
    return sum(found)


def test_hanging_judge_costs_one_budget_per_suite(scripted: Callable[..., Any], tmp_path: Path) -> None:
    script = scripted(["ok"], default=("sleep", 20))  # passes the probe, then never answers in time
    base = make_judge(script.base_url, tmp_path, retry=6, timeout=120.0, max_concurrency=4)
    data, preds = _mme_unknowns()
    session = base.session(1.0)
    started = time.monotonic()
    result = get_scorer("mme").score(data, preds, profile=TOLERANT, judge=session)
    assert time.monotonic() - started < 15  # not rows x 5 temperatures x 6 tries x 120 s
    stats = session.stats
    assert stats.failures == len(data) * 5 and stats.skipped >= 1
    notes = session.notes()
    assert any("time budget of 1 s spent" in n for n in notes)
    assert _count(notes, r"(\d+) prompts got no answer") + _count(notes, r"(\d+) prompts were not sent") == stats.failures
    assert "8 of 8 Unknown answers remain after the judge" in " ".join(result.notes)


def test_scorers_call_the_judge_concurrently_with_the_same_result(scripted: Callable[..., Any],
                                                                  tmp_path: Path) -> None:
    data, preds = _mme_unknowns()
    script = scripted([], default=("sleep", 0.1))
    parallel = make_judge(script.base_url, tmp_path / "a", max_concurrency=4).session(None)
    a = get_scorer("mme").score(data, preds, profile=TOLERANT, judge=parallel)
    assert 2 <= script.max_in_flight <= 4
    serial_script = scripted([], default="ok")
    serial = make_judge(serial_script.base_url, tmp_path / "b", max_concurrency=1).session(None)
    b = get_scorer("mme").score(data, preds, profile=TOLERANT, judge=serial)
    assert serial_script.max_in_flight == 1
    assert a.metrics == b.metrics and a.per_sample.equals(b.per_sample)
    assert parallel.stats.calls == serial.stats.calls == 1 + len(data) * 5  # probe + 5 temperatures per row


def test_usage_is_counted_per_suite_and_a_dead_probe_once(scripted: Callable[..., Any], tmp_path: Path) -> None:
    script = scripted([])
    base = make_judge(script.base_url, tmp_path)
    mme, mmbench = base.session(None), base.session(None)
    assert mme.complete("a") and mmbench.complete("b") and mmbench.complete("a")
    assert (mme.stats.calls, mme.stats.cache_hits) == (1, 0)
    assert (mmbench.stats.calls, mmbench.stats.cache_hits) == (1, 1)
    dead_script = scripted([], default=503)
    dead = make_judge(dead_script.base_url, tmp_path)
    first, second = dead.session(None), dead.session(None)
    assert not first.working() and first.stats.calls == 2 and first.stats.failures == 1
    assert not second.working() and second.stats.calls == 0 and second.stats.failures == 1  # not probed again
    assert dead_script.count == 2


def test_key_is_redacted_from_every_log_record(scripted: Callable[..., Any], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-proj-UNPREFIXEDbody0123456789"
    body = key[3:]
    monkeypatch.setenv("OPENAI_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    script = scripted([401], error_text=f"Incorrect API key provided: {body}")  # echoed without the sk- prefix
    judge = make_judge(script.base_url, tmp_path)
    assert judge.complete("q") is None
    logging.getLogger("httpx").warning("request with key %s", body)  # another library's logger
    logging.getLogger("some.plugin").error("Authorization: Bearer %s", key)
    for text in (caplog.text, str(judge.last_error), " ".join(judge.notes())):
        assert body not in text and key not in text
    assert "***" in caplog.text
