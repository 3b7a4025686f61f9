"""A suite scored through `vita-eval score` with the judge served by `judge serve` on 127.0.0.1: its scores,
the judge calls logged per sample (judge_calls.jsonl, log_samples.jsonl) and shown by the viewer."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest
from headless_chromium import open_page

from vita_eval.judges.local import LocalJudge
from vita_eval.judges.server import JudgeHTTPServer
from vita_eval.reports.compare import write_report
from vita_eval.runner.rescore import rescore
from vita_eval.scorers.judge_prompts import mathvista_prompt
from vita_eval.scorers.mathvista import JUDGE_MAX_TOKENS

SAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "samples"
SUITE = "MathVista_MINI"
PROFILE = "vlmevalkit-2026.08"
SECRET = "sk-SECRET-never-written"
# Rows 1 and 2 are settled by VLMEvalKit's prefetch (the exact integer; the option letter); every other row goes
# to the judge, with markup in the prediction, which the judge prompt carries and the viewer must show as text.
RULE_DECIDED = {"1": "2", "2": "C"}
JUDGED_PREDICTION = "Let me think <b>step</b> by step & look at the picture first."


def _predictions(tmp_path: Path) -> Path:
    table = pd.read_csv(SAMPLES / f"{SUITE}.tsv", sep="\t").drop(columns=["image"])
    table["prediction"] = [RULE_DECIDED.get(str(i), JUDGED_PREDICTION) for i in table["index"]]
    path = tmp_path / f"tiny_{SUITE}.xlsx"
    table.to_excel(path, index=False)
    return path


def _questions() -> dict[str, str]:
    table = pd.read_csv(SAMPLES / f"{SUITE}.tsv", sep="\t")
    return {str(i): q for i, q in zip(table["index"], table["question"])}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@dataclass
class Scored:
    root: Path  # holds the run folders a (fresh judge cache) and b (the same predictions again: all cached)
    first: dict[str, Any]
    second: dict[str, Any]
    requests_for_second: int  # requests the judge server got during the second scoring
    kwargs: dict[str, Any]


@pytest.fixture(scope="module")
def scored(judge_server: JudgeHTTPServer, tmp_path_factory: pytest.TempPathFactory) -> Scored:
    """The same predictions scored twice through the served judge, sharing one judge cache."""
    root = tmp_path_factory.mktemp("judged")
    preds = _predictions(root)
    kwargs = dict(profile=PROFILE, judge="tiny-qwen", judge_base_url=judge_server.base_url,
                  judge_cache=str(root / "judge-cache"))
    with pytest.MonkeyPatch.context() as env:  # a module fixture runs before the per-test environment
        env.setenv("OPENAI_API_KEY", SECRET)
        env.delenv("OPENAI_API_BASE", raising=False)
        env.delenv("LOCAL_LLM", raising=False)
        first = rescore(SUITE, SAMPLES / f"{SUITE}.tsv", preds, out=root / "a" / SUITE, **kwargs)
        before = judge_server.request_count
        second = rescore(SUITE, SAMPLES / f"{SUITE}.tsv", preds, out=root / "b" / SUITE, **kwargs)
    return Scored(root, first, second, judge_server.request_count - before, {**kwargs, "preds": preds})


def test_mathvista_judged_through_the_served_endpoint_then_cached(scored: Scored) -> None:
    first, second = scored.first, scored.second
    judged = first["n"] - len(RULE_DECIDED)
    assert first["judge"]["identity"].startswith("tiny-qwen @ http://127.0.0.1")
    assert first["judge"]["calls"] + first["judge"]["cache_hits"] >= judged  # identical prompts may share a call
    # re-scoring never pays twice: only VLMEvalKit's one 'hello' working() probe goes out, no prompt
    assert second["judge"]["calls"] <= 1 and second["judge"]["cache_hits"] >= judged
    assert scored.requests_for_second <= 1
    assert second["metrics"] == first["metrics"]
    report = write_report([scored.root / "a"], out=scored.root / "report", n_boot=50)
    assert "tiny-qwen @ http://127.0.0.1" in report.read_text()
    written = [p for p in scored.root.rglob("*") if p.is_file()]
    assert written and not any(SECRET.encode() in p.read_bytes() for p in written)
    assert SECRET not in json.dumps(first)


def test_judge_calls_are_logged_with_the_sample_they_were_made_for(scored: Scored,
                                                                   local_judge: LocalJudge) -> None:
    suite_dir = scored.root / "a" / SUITE
    calls = _jsonl(suite_dir / "judge_calls.jsonl")
    log = {r["uid"]: r for r in _jsonl(suite_dir / "log_samples.jsonl")}
    questions = _questions()
    judged = [uid for uid in questions if uid not in RULE_DECIDED]
    assert [c["uid"] for c in calls] == sorted((c["uid"] for c in calls), key=list(questions).index)  # row order
    assert {c["uid"] for c in calls} == set(judged)
    for uid in RULE_DECIDED:
        assert "judge" not in log[uid] and log[uid]["scoring"]["prefetch"] is True
    identity = scored.first["judge"]["identity"]
    for uid in judged:
        own = [{k: v for k, v in c.items() if k != "uid"} for c in calls if c["uid"] == uid]
        assert log[uid]["judge"] == own  # the sample's log line holds exactly its calls
        call = own[0]  # MathVista keeps the first reply it gets, so one call per row here
        assert len(own) == 1 and call["attempt"] == 1 and call["temperature"] == 0.0
        assert call["identity"] == identity and call["status"] == "ok" and call["max_tokens"] == JUDGE_MAX_TOKENS
        assert call["prompt"] == mathvista_prompt(questions[uid], JUDGED_PREDICTION)
        assert call["reply"] == log[uid]["scoring"]["res"]  # the reply the scorer used
        again, _ = local_judge.chat([{"role": "user", "content": call["prompt"]}], max_tokens=JUDGE_MAX_TOKENS)
        assert call["reply"] == again.text  # what the judge model answers to that prompt
    assert sum(c["cached"] for c in calls) == scored.first["judge"]["cache_hits"]  # "3" and "8" share a prompt
    assert not all(c["cached"] for c in calls)


def test_cached_rescoring_marks_calls_cached_and_a_judgeless_one_leaves_none(scored: Scored) -> None:
    fresh = _jsonl(scored.root / "a" / SUITE / "judge_calls.jsonl")
    cached = _jsonl(scored.root / "b" / SUITE / "judge_calls.jsonl")
    same = lambda calls: [(c["uid"], c["prompt"], c["reply"], c["attempt"]) for c in calls]  # noqa: E731
    assert same(cached) == same(fresh) and all(c["cached"] and c["status"] == "ok" for c in cached)
    log = {r["uid"]: r for r in _jsonl(scored.root / "b" / SUITE / "log_samples.jsonl")}
    assert all(call["cached"] for r in log.values() for call in r.get("judge", []))
    rescored = scored.root / "c" / SUITE
    shutil.copytree(scored.root / "b" / SUITE, rescored)
    kwargs = {k: v for k, v in scored.kwargs.items() if k != "preds"}
    rescore(SUITE, SAMPLES / f"{SUITE}.tsv", scored.kwargs["preds"], out=rescored, **{**kwargs, "judge": "none"})
    assert (rescored / "judge_calls.jsonl").read_text() == ""  # rewritten: nothing left of the judged scoring
    assert not any("judge" in r for r in _jsonl(rescored / "log_samples.jsonl"))


def test_failed_and_skipped_judge_calls_are_logged_as_such(scripted: Callable[..., Any], tmp_path: Path) -> None:
    """The probe passes, then every reply is an HTML page: calls fail until the 1 s budget is spent, then are skipped."""
    script = scripted(["ok"], default="html")
    scores = rescore(SUITE, SAMPLES / f"{SUITE}.tsv", _predictions(tmp_path), profile=PROFILE, judge="scripted",
                     judge_base_url=script.base_url, out=tmp_path / "out", judge_cache=str(tmp_path / "cache"),
                     judge_budget_s=1.0)
    calls = _jsonl(tmp_path / "out" / "judge_calls.jsonl")
    statuses = [c["status"] for c in calls]
    assert set(statuses) == {"failed", "skipped"} and all(c["reply"] is None and not c["cached"] for c in calls)
    assert statuses.count("skipped") == scores["judge"]["skipped"]
    assert statuses.count("failed") == scores["judge"]["failures"] - scores["judge"]["skipped"]
    for uid in {c["uid"] for c in calls}:  # MathVista's five tries at rising temperature, none answered
        own = [c for c in calls if c["uid"] == uid]
        assert [(c["attempt"], c["temperature"]) for c in own] == [(1, 0.0), (2, 0.5), (3, 1.0), (4, 1.5), (5, 2.0)]


@pytest.mark.needs_tools("chromium")
def test_viewer_shows_a_samples_judge_calls_when_expanded(scored: Scored, tmp_path: Path) -> None:
    report = write_report([scored.root / "a", scored.root / "b"], out=tmp_path / "report", n_boot=50, html=True)
    call = next(c for c in _jsonl(scored.root / "a" / SUITE / "judge_calls.jsonl") if c["uid"] == "4")
    card = "document.querySelector('article[data-uid=\"4\"]')"
    words = lambda text: " ".join(text.split())  # noqa: E731  (innerText lays out whitespace)
    with open_page((report.parent / "samples.html").resolve().as_uri(), tmp_path / "profile") as evaluate:
        folded = words(evaluate(f"{card}.innerText"))
        assert f"judge: 1 call · {call['identity']}" in folded
        assert "Model respone:" not in folded and "from the cache" not in folded  # closed: not rendered
        assert evaluate(f"{card}.querySelectorAll('details.judge').length") == 2  # one per run
        evaluate(f"{card}.querySelectorAll('details.judge summary').forEach(s => s.click()) || true")
        shown = words(evaluate(f"{card}.innerText"))
        assert shown.count(words(call["prompt"])) == 2 and shown.count(words(call["reply"])) >= 2
        assert f"Model respone: {JUDGED_PREDICTION}" in shown  # markup shown as text, not parsed
        assert evaluate(f"{card}.querySelector('pre.judge-prompt b')") is None
        assert shown.count("from the cache") == 1  # run b's call was answered by the cache
