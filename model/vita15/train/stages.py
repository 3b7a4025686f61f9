"""Training stages of VITA-1.5 (spec §7.1, §7.2): which parameters each stage trains, and how.

A stage is a sequence of phases; each phase has one objective and one set of trainable parameter
prefixes (names relative to the module the objective trains). Everything else is frozen
(`requires_grad=False`) and therefore stays bit-identical: the optimizer never sees it.

Objectives: `lm` (next-token CE of `VITAQwen2ForCausalLM`), `ctc` (audio encoder + CTC head on
ASR), `codec` (TiCodec reconstruction + VQ), `tts` (NAR+AR speech decoder CE on codec codes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LLM = ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.")
PROJECTOR = ("model.mm_projector.",)
VIT = ("model.vision_tower.",)
AUDIO_ENCODER = ("model.audio_encoder.encoder.",)
AUDIO_ADAPTER = ("model.audio_encoder.adpter.",)
CTC_HEAD = ("ctc_head.",)  # lives only in the 2.1 training module, never in the released checkpoint
PROJECTOR_LR_PREFIXES = PROJECTOR


@dataclass(frozen=True)
class Phase:
    """One optimisation run: a name (used for output folders), an objective and its trainable prefixes."""

    name: str
    objective: str
    trainable: tuple[str, ...]


STAGES: dict[str, tuple[Phase, ...]] = {
    "1.1": (Phase("1.1", "lm", PROJECTOR),),
    "1.2": (Phase("1.2", "lm", VIT + PROJECTOR + LLM),),
    "1.3": (Phase("1.3", "lm", LLM + PROJECTOR),),
    "2.1": (Phase("2.1-ctc", "ctc", AUDIO_ENCODER + CTC_HEAD), Phase("2.1-adapter", "lm", AUDIO_ADAPTER)),
    "2.2": (Phase("2.2", "lm", LLM + PROJECTOR + AUDIO_ADAPTER),),
    "3.1": (Phase("3.1", "codec", ("encoder.", "quantizer.", "generator.")),),
    "3.2": (Phase("3.2", "tts", ("",)),),  # the whole speech decoder; the LLM only supplies embeddings
}


def phases(stage: str) -> tuple[Phase, ...]:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {sorted(STAGES)}")
    return STAGES[stage]


def apply_trainable(module: nn.Module, prefixes: tuple[str, ...]) -> list[str]:
    """Set `requires_grad` from the prefixes (names relative to the VITA model, or to the trained
    module for the TTS objectives); returns the trainable names (error if none match)."""
    names = []
    for name, param in module.named_parameters():
        train = _strip(name).startswith(prefixes)
        param.requires_grad_(train)
        if train:
            names.append(name)
    if not names:
        raise ValueError(f"no parameter matches the trainable prefixes {prefixes}")
    return names


def param_groups(module: nn.Module, lr: float, weight_decay: float,
                 projector_lr: float | None = None) -> list[dict]:
    """AdamW groups: the projector may get its own LR (`mm_projector_lr`); biases/norms get no decay."""
    groups: dict[tuple[float, float], list[torch.Tensor]] = {}
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        group_lr = projector_lr if projector_lr is not None and _strip(name).startswith(PROJECTOR_LR_PREFIXES) else lr
        decay = 0.0 if param.ndim < 2 else weight_decay
        groups.setdefault((group_lr, decay), []).append(param)
    return [{"params": p, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), p in groups.items()]


def _strip(name: str) -> str:
    """Parameter name relative to the VITA model inside a training wrapper (`vita.` prefix)."""
    return name.removeprefix("vita.")
