"""Every judged scorer files its judge calls under the row it scores, with its retry schedule, over HTTP.

The judge is an OpenAIJudge on the scripted OpenAI-compatible endpoint on 127.0.0.1 (its replies, "OK answer",
never hold a Yes/No or an option, so every try of VLMEvalKit's schedule is made and logged). Each logged
prompt must be the one built from that very row; rows the rules settle have no calls.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from vita_eval.judges.cache import JudgeCache
from vita_eval.judges.openai_judge import OpenAIJudge
from vita_eval.runner.rescore import rescore
from vita_eval.scorers.base import get_scorer
from vita_eval.scorers.judge_prompts import mcq_prompt, yorn_prompt
from vita_eval.scorers.judging import MCQ_TEMPERATURES, RISING_TEMPERATURES, JudgeRecorder

SAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "samples"
HEAD = "vlmevalkit-2026.08"
UNSURE = "I cannot tell from here."


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _score(suite: str, data: Path, predictions: dict[str, str], base_url: str, tmp_path: Path
           ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """`vita-eval score` on the bundled sample; (judge_calls.jsonl, log_samples.jsonl by uid).
    The calls answered by the cache are as many as scores.json counts."""
    table = pd.read_csv(data, sep="\t", usecols=["index"])
    preds = tmp_path / f"{suite}.xlsx"
    pd.DataFrame({"index": table["index"], "prediction": [predictions.get(str(i), UNSURE) for i in table["index"]]}
                 ).to_excel(preds, index=False)
    scores = rescore(suite, data, preds, profile=HEAD, judge="scripted", judge_base_url=base_url, out=tmp_path / suite,
            judge_cache=str(tmp_path / "cache"))
    calls = _jsonl(tmp_path / suite / "judge_calls.jsonl")
    assert sum(c["cached"] for c in calls) == scores["judge"]["cache_hits"]
    return calls, {r["uid"]: r for r in _jsonl(tmp_path / suite / "log_samples.jsonl")}


def _schedule(calls: list[dict[str, Any]], uid: str) -> list[tuple[int, float, bool]]:
    return [(c["attempt"], c["temperature"], c["cached"]) for c in calls if c["uid"] == uid]


def test_mme_calls_are_filed_under_their_row_with_rising_temperatures(scripted: Callable[..., Any],
                                                                      tmp_path: Path) -> None:
    settled = {"0": "Yes", "1": "No"}  # the rules read these; every other row is Unknown
    calls, log = _score("MME", SAMPLES / "MME.tsv", settled, scripted([]).base_url, tmp_path)
    assert {c["uid"] for c in calls} == set(log) - set(settled)
    for uid, entry in log.items():
        if uid in settled:
            assert "judge" not in entry
            continue
        assert entry["judge"] == [{k: v for k, v in c.items() if k != "uid"} for c in calls if c["uid"] == uid]
        # five tries at rising temperature (a row asking what another row asked gets the cached reply)
        assert [s[:2] for s in _schedule(calls, uid)] == list(enumerate(RISING_TEMPERATURES, 1))
        assert {c["prompt"] for c in entry["judge"]} == {yorn_prompt(entry["question"], UNSURE)}
        assert all(c["reply"] == "OK answer" and c["status"] == "ok" for c in entry["judge"])


def test_mmbench_circular_copies_get_their_own_calls(scripted: Callable[..., Any], tmp_path: Path) -> None:
    calls, log = _score("MMBench_DEV_EN", SAMPLES / "MMBench_DEV_EN.tsv", {}, scripted([]).base_url, tmp_path)
    assert calls and any(int(c["uid"]) >= 1_000_000 for c in calls)  # a circular copy (k*1e6+index) was judged
    for uid in {c["uid"] for c in calls}:
        entry = log[uid]
        # the prompt shows that copy's own option order
        assert {c["prompt"] for c in entry["judge"]} == {mcq_prompt(entry["question"], entry["choices"], UNSURE)}
        # VLMEvalKit's three tries at temperature 0: the second and third are the first's cached reply
        assert _schedule(calls, uid) == [(n, t, n > 1) for n, t in enumerate(MCQ_TEMPERATURES, 1)]
    assert not any("judge" in entry for uid, entry in log.items() if uid not in {c["uid"] for c in calls})


def test_videomme_calls_are_filed_under_their_row(scripted: Callable[..., Any], tmp_path: Path) -> None:
    """July-2024 layout (options in `question`): unparsed answers go to the judge, one row at a time."""
    questions = [f"Which shape is number {i}?\nA. Circle.\nB. Square.\nC. Star.\nD. Cross." for i in range(4)]
    data = pd.DataFrame({"index": range(4), "video": ["v0", "v0", "v1", "v1"], "duration": "short",
                         "domain": "Knowledge", "sub_category": "Astronomy", "task_type": "Counting Problem",
                         "question": questions, "answer": "B"})
    predictions = pd.DataFrame({"index": range(4), "prediction": ["B", UNSURE, "C", UNSURE]})
    session = OpenAIJudge("scripted", scripted([]).base_url, cache=JudgeCache(tmp_path), sleep=lambda s: None
                          ).session(None)
    recorder = JudgeRecorder(session)
    get_scorer("videomme").score(data, predictions, profile=HEAD, judge=recorder)
    assert sorted({c["uid"] for c in recorder.calls}) == ["1", "3"]  # "B" and "C" are parsed by the rules
    for uid in ("1", "3"):
        prompts = {c["prompt"] for c in recorder.calls if c["uid"] == uid}
        assert len(prompts) == 1 and f"Which shape is number {uid}?" in prompts.pop()
    assert recorder.stats is session.stats and recorder.identity == session.identity  # the judge, unchanged


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (the answers are spoken)")
def test_speech_out_scoring_records_the_judge_calls_of_both_passes(scripted: Callable[..., Any],
                                                                   tmp_path: Path) -> None:
    """MME spoken: the text answers and the transcripts of their speech each need the judge (neither says
    Yes or No), so speech/judge_calls.jsonl holds both scorings' calls, marked by pass, each under its row."""
    from vita15.synthetic import read_audio, synthesize_speech
    from vita_eval.speech.suite import SpeechOptions, speak_suite
    from vita_eval.suites import get_suite, load_suite_data

    def espeak(uid: str, text: str):
        path = tmp_path / f"espeak-{uid}.wav"
        synthesize_speech(text, path, seed=0)
        return read_audio(path), 16000, {"synth_s": 0.01}

    spec = get_suite("MME")
    data = load_suite_data(spec, SAMPLES / spec.path)
    answers = {s.uid: "I cannot tell from here." for s in data.samples}
    judge = OpenAIJudge("scripted", scripted([]).base_url, cache=JudgeCache(tmp_path / "cache"),
                        sleep=lambda s: None).session(None)
    speak_suite(spec, data, answers, tmp_path / "MME", synthesize=espeak,
                options=SpeechOptions(limit=2, mos=False, n_boot=20), profile=HEAD, judge=judge)
    calls = _jsonl(tmp_path / "MME" / "speech" / "judge_calls.jsonl")
    spoken = [s.uid for s in data.samples][:2]
    for name in ("text", "speech"):
        mine = [c for c in calls if c["pass"] == name]
        assert {c["uid"] for c in mine} == set(spoken), name
        assert all(c["identity"] == judge.identity and c["attempt"] >= 1 for c in mine)
    row = data.table[data.table["index"].astype(str) == spoken[0]].iloc[0]
    text_prompts = [c["prompt"] for c in calls if c["pass"] == "text" and c["uid"] == spoken[0]]
    assert text_prompts[0] == yorn_prompt(str(row["question"]), "I cannot tell from here.")
