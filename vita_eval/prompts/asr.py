"""ASR prompt preset.

VITA never published the prompt behind its ASR numbers (VITA#60, VITA#86), so this
preset uses the instruction lmms-eval and Qwen2-Audio use for LibriSpeech, followed by
the audio placeholder as VITA's demo places it (at the end of the user turn, lang system
prompt). Override it per suite with `preset_args: {prompt: "..."}`; the text used is
recorded in every result through the resolved config.
"""
from __future__ import annotations

from typing import Any

from vita_eval.registry import register
from vita_eval.types import GenerationParams, Request, Sample, SampleError

DEFAULT_ASR_PROMPT = "Please recognize the speech and only output the recognized content:"


@register("preset", "asr")
def build(sample: Sample, suite: Any, args: dict[str, Any]) -> Request:
    """Speech recognition: instruction text then the utterance, greedy decoding."""
    if sample.audio is None:
        raise SampleError(f"{sample.suite} utterance {sample.uid}: no audio")
    return Request(
        uid=sample.uid,
        text=str(args.get("prompt", DEFAULT_ASR_PROMPT)),
        audio=sample.audio.load(),
        modality="lang",
        gen=GenerationParams(do_sample=False, max_new_tokens=int(args.get("max_new_tokens", 256))),
    )
