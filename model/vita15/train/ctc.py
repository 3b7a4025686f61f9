"""Stage 2.1, first phase: the Whale audio encoder pre-trained with CTC on ASR pairs (spec §3.5, §7.2).

The CTC head exists only during this phase: it is saved next to the phase output
(`ctc_head.safetensors`, with its vocabulary in the metadata) but never in the released
checkpoint, which has no CTC head. Targets are the Qwen2.5 token ids of the transcripts, mapped
to a compact vocabulary (the ids that occur in the data; blank last): a head over all 151k ids
would cost more than the encoder itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset

from vita15.conversation import load_tokenizer
from vita15.modeling_vita import VITAQwen2ForCausalLM

from .data import DataConfig, VitaJsonDataset, fbank_file
from .model_io import default_tokenizer_dir, export_vita, load_model
from .stages import Phase, apply_trainable

HEAD_FILE = "ctc_head.safetensors"


@dataclass
class AsrBatch:
    sample_ids: list[str]
    features: torch.Tensor  # (B, T, 80)
    lengths: torch.Tensor  # (B,)
    targets: torch.Tensor  # (sum of target lengths,)
    target_lengths: torch.Tensor  # (B,)


class AsrDataset(Dataset):
    """(fbank, transcript ids) from VITA-JSON samples with one audio and one answer turn."""

    def __init__(self, cfg: DataConfig, tokenizer) -> None:
        self.base = VitaJsonDataset(cfg, tokenizer)
        self.tokenizer = tokenizer
        self.transcripts = [self._token_ids(raw) for raw in self.base.samples]
        self.vocab = sorted({i for ids in self.transcripts for i in ids})
        self._index = {tok: i for i, tok in enumerate(self.vocab)}

    def _token_ids(self, raw: dict) -> list[int]:
        return self.tokenizer(raw["conversations"][1]["value"], add_special_tokens=False)["input_ids"]

    @property
    def skipped(self) -> dict[str, str]:
        return self.base.skipped

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        raw = self.base.samples[index]
        (path,) = self.base.audio_paths(raw)[:1]
        feats = self.base.media(path, fbank_file)
        ids = torch.tensor([self._index[t] for t in self.transcripts[index]], dtype=torch.long)
        return str(raw.get("id", index)), feats, ids


def collate_asr(items: list[tuple[str, torch.Tensor, torch.Tensor]]) -> AsrBatch:
    lengths = torch.tensor([len(f) for _, f, _ in items], dtype=torch.long)
    feats = torch.zeros(len(items), int(lengths.max()), items[0][1].shape[-1])
    for i, (_, f, _) in enumerate(items):
        feats[i, : len(f)] = f
    return AsrBatch([sid for sid, _, _ in items], feats, lengths, torch.cat([t for _, _, t in items]),
                    torch.tensor([len(t) for _, _, t in items], dtype=torch.long))


class EncoderCTC(nn.Module):
    """Whale encoder (inside the full VITA model, for a lossless export) + CTC head."""

    def __init__(self, vita: VITAQwen2ForCausalLM, n_classes: int) -> None:
        super().__init__()
        self.vita = vita
        self.ctc_head = nn.Linear(vita.model.audio_encoder.cfg.d_model, n_classes)
        self.blank = n_classes - 1

    def forward(self, batch: AsrBatch) -> tuple[torch.Tensor, torch.Tensor]:
        encoder = self.vita.model.audio_encoder.encoder
        hidden, valid = encoder(batch.features.to(self.ctc_head.weight.dtype), batch.lengths)
        log_probs = F.log_softmax(self.ctc_head(hidden).float(), dim=-1)
        frames = valid.squeeze(1).sum(-1)
        loss = F.ctc_loss(log_probs.transpose(0, 1), batch.targets, frames, batch.target_lengths,
                          blank=self.blank, reduction="mean", zero_infinity=True)
        return loss, frames.sum()

    def shard_units(self) -> list[nn.Module]:
        return [self.vita.model.audio_encoder]

    def enable_grad_checkpointing(self) -> None:
        """The encoder is small next to the LLM; CTC pre-training runs it without recomputation."""


class CTCObjective:
    """Phase `2.1-ctc`: ASR data, `EncoderCTC`, export = VITA layout (no head) + head file aside."""

    def __init__(self, phase: Phase, cfg: dict[str, Any], init: Path | None, distributed: bool) -> None:
        vita, tokenizer, self.config = load_model(cfg.get("model", {}), init)
        self.tokenizer = tokenizer or load_tokenizer(default_tokenizer_dir())
        self.dataset = AsrDataset(DataConfig.from_dict(cfg["data"]), self.tokenizer)
        self.module = EncoderCTC(vita, len(self.dataset.vocab) + 1)
        self.trainable = apply_trainable(self.module, phase.trainable)
        self.collate = collate_asr

    @property
    def skipped(self) -> dict[str, str]:
        return self.dataset.skipped

    def export(self, state: dict[str, torch.Tensor], out_dir: Path, dtype: torch.dtype, max_shard_bytes: int) -> Path:
        head = {k: v.contiguous() for k, v in state.items() if k.startswith("ctc_head.")}
        model = {k.removeprefix("vita."): v for k, v in state.items() if k.startswith("vita.")}
        export_vita(model, self.config, out_dir, dtype, max_shard_bytes)
        save_file(head, str(out_dir.parent / HEAD_FILE), metadata={"vocab": json.dumps(self.dataset.vocab)})
        return out_dir
