"""What a phase optimises: the module, its data and its export (`lm` objective here; `ctc` in
`ctc.py`; `codec` / `tts` in `tts_losses.py`). `build_objective` picks one from the phase.

Every objective is an `nn.Module` whose `forward(batch)` returns `(loss, n_tokens)`, so the engine
can wrap it as the FSDP root and every sub-module runs inside the root's forward.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vita15.conversation import IGNORE_INDEX, load_tokenizer
from vita15.modeling_vita import VITAQwen2ForCausalLM, pad_right

from .data import Batch, DataConfig, VitaJsonDataset, collate
from .model_io import default_tokenizer_dir, export_vita, load_model
from .stages import Phase, apply_trainable

logger = logging.getLogger(__name__)

DUMMY_AUDIO_FRAMES = 400  # upstream's dummy fbank (400 × 80, llm length 60 after its own rule)


class VitaLM(nn.Module):
    """Next-token CE of `VITAQwen2ForCausalLM` on a VITA-JSON batch.

    The loss equals `VITAQwen2ForCausalLM.forward(...).loss` (mean CE over labels ≠ −100) but the
    LM head runs only on label positions: with a 151k vocabulary that is most of the compute.
    `dummy_media=True` (set under FSDP) encodes a zero image / zero audio when a batch has none and
    adds 0 × their sum, as upstream does: every rank then runs every sharded tower each step (the
    collectives stay matched) while the loss and gradients are unchanged.
    """

    def __init__(self, vita: VITAQwen2ForCausalLM, dummy_media: bool = False) -> None:
        super().__init__()
        self.vita = vita
        self.dummy_media = dummy_media

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        vita = self.vita
        images, audio, dummy = self._encode_media(batch)
        keep = batch.attention_mask.bool()
        ids = [row[m] for row, m in zip(batch.input_ids, keep)]
        labels = [row[m] for row, m in zip(batch.labels, keep)]
        embeds, labels = vita.splice(ids, images, audio, labels, batch.sample_ids)
        spliced = pad_right(embeds, labels)
        hidden = vita.model(inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask,
                            position_ids=spliced.position_ids).last_hidden_state
        targets = spliced.labels[:, 1:]
        mask = targets != IGNORE_INDEX
        logits = vita.lm_head(hidden[:, :-1][mask]).float()
        loss = F.cross_entropy(logits, targets[mask]) if mask.any() else hidden.sum() * 0.0
        return loss + dummy, spliced.attention_mask.sum()

    def _encode_media(self, batch: Batch) -> tuple[torch.Tensor | None, list[torch.Tensor] | None, torch.Tensor]:
        """Vision tower first, audio encoder second, on every rank (dummies where a batch has none),
        so the FSDP all-gathers of all ranks happen in the same order."""
        vita = self.vita
        device = vita.lm_head.weight.device
        dummy = torch.zeros((), device=device)
        images = audio = None
        if batch.pixel_values is not None:
            images = vita.encode_images(batch.pixel_values)
        elif self.dummy_media:
            size = vita.model.vision_tower.vision_tower.config.image_size
            dummy = dummy + vita.encode_images(torch.zeros(1, 3, size, size, device=device)).sum() * 0.0
        if batch.audio_features is not None:
            audio = vita.encode_audio(batch.audio_features, batch.audio_lengths)
        elif self.dummy_media:
            feats = torch.zeros(1, DUMMY_AUDIO_FRAMES, vita.model.audio_encoder.cfg.input_dim, device=device)
            lengths = torch.tensor([DUMMY_AUDIO_FRAMES], device=device)
            dummy = dummy + torch.cat(vita.encode_audio(feats, lengths)).sum() * 0.0
        return images, audio, dummy

    def shard_units(self) -> list[nn.Module]:
        """Sub-modules that FSDP shards on their own (the root keeps embeddings, head, projector)."""
        model = self.vita.model
        return [*model.layers, model.vision_tower, model.audio_encoder]

    def enable_grad_checkpointing(self) -> None:
        self.vita.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


class LMObjective:
    """Phase with the `lm` objective: VITA-JSON data, `VitaLM` module, official-layout export."""

    def __init__(self, phase: Phase, data: dict[str, Any], model_cfg: dict[str, Any], init: Path | None,
                 distributed: bool) -> None:
        vita, tokenizer, self.config = load_model(model_cfg, init)
        self.tokenizer = tokenizer or load_tokenizer(default_tokenizer_dir())
        self.trainable = apply_trainable(vita, phase.trainable)
        self.module = VitaLM(vita, dummy_media=distributed)
        self.dataset = VitaJsonDataset(DataConfig.from_dict(data), self.tokenizer)
        self.collate = collate

    @property
    def skipped(self) -> dict[str, str]:
        return self.dataset.skipped

    def export(self, state: dict[str, torch.Tensor], out_dir: Path, dtype: torch.dtype, max_shard_bytes: int) -> Path:
        state = {k.removeprefix("vita."): v for k, v in state.items()}
        return export_vita(state, self.config, out_dir, dtype, max_shard_bytes)


def build_objective(phase: Phase, cfg: dict[str, Any], init: Path | None, distributed: bool):
    """The objective object of a phase (see module docstring)."""
    if phase.objective == "lm":
        return LMObjective(phase, cfg["data"], cfg.get("model", {}), init, distributed)
    if phase.objective == "ctc":
        from .ctc import CTCObjective

        return CTCObjective(phase, cfg, init, distributed)
    if phase.objective in ("codec", "tts"):
        from .tts_losses import CodecObjective, TTSObjective

        cls = CodecObjective if phase.objective == "codec" else TTSObjective
        return cls(phase, cfg, init)
    raise ValueError(f"unknown objective {phase.objective!r}")
