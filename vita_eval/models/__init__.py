"""Models the runner can drive: VITA checkpoints, and a Whisper baseline for ASR suites."""
from __future__ import annotations

from typing import Any


def load_model(spec: str, *, device: str, dtype: str, name: str | None = None) -> Any:
    """`whisper:tiny.en` / `whisper:DIR` -> WhisperModel; anything else -> a VITA checkpoint (or builtin:tiny)."""
    if spec.startswith("whisper:"):
        from vita_eval.models.whisper import WhisperModel

        return WhisperModel(spec, device=device, name=name)
    from vita_eval.models.vita import VitaModel, resolve_model_path

    return VitaModel(resolve_model_path(spec), device=device, dtype=dtype, name=name)
