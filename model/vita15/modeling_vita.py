"""VITA-1.5 model: transformers' Qwen2 plus the InternViT tower, projector and Whale audio encoder.

Parameter names equal the official checkpoint (`vita15_state_dict.json`). Multimodal splicing
(spec §4.4): every −200 placeholder consumes the next image/frame feature block (256 tokens), every
−500 the next audio row cut to its LLM length; the text ids around them are embedded normally and
the spliced sequence is truncated to `tokenizer_model_max_length` (6200) afterwards.

The reference always passes a dummy zero image / audio for samples without one; those dummies are
encoded but spliced as zero-length slices, so they cannot change the outputs. Here only real media
are passed, and the number of placeholders must equal the number of features.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, Qwen2ForCausalLM, Qwen2Model
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.qwen2.modeling_qwen2 import Qwen2PreTrainedModel

from .audio_whale import AudioEncoder, WhaleConfig, split_audio
from .configuration_vita import (
    InternViTConfig,
    VitaModelConfig,
    VITAQwen2Config,
    resolve_audio_config,
    resolve_vision_config,
)
from .conversation import AUDIO_TOKEN_INDEX, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from .image_processing import normalize_pixels
from .vision_projector import InternViTVisionTower, build_projector

logger = logging.getLogger(__name__)


@dataclass
class SplicedBatch:
    """Right-padded spliced inputs, ready for the decoder."""

    inputs_embeds: torch.Tensor  # (B, L, hidden)
    attention_mask: torch.Tensor  # (B, L) long
    position_ids: torch.Tensor  # (B, L)
    labels: torch.Tensor | None  # (B, L), −100 on media spans and padding


class VITAQwen2Model(Qwen2Model):
    """Qwen2 decoder + `vision_tower`, `mm_projector`, `audio_encoder` (keys under `model.`)."""

    config_class = VITAQwen2Config

    def __init__(self, config: VITAQwen2Config, vision_config: InternViTConfig, audio_config: WhaleConfig) -> None:
        super().__init__(config)
        self.vision_tower = InternViTVisionTower(vision_config)
        if self.vision_tower.hidden_size != config.mm_hidden_size:
            raise ValueError(
                f"config.json: mm_hidden_size={config.mm_hidden_size} but the vision tower gives "
                f"{self.vision_tower.hidden_size} (= 4 × ViT hidden)"
            )
        self.mm_projector = build_projector(config.mm_projector_type, config.mm_hidden_size, config.hidden_size)
        self.audio_encoder = AudioEncoder(audio_config)
        self.post_init()


class VITAQwen2ForCausalLM(Qwen2ForCausalLM):
    """Causal LM with multimodal splicing; `forward` gives plain shifted cross-entropy."""

    config_class = VITAQwen2Config

    def __init__(
        self,
        config: VITAQwen2Config,
        vision_config: InternViTConfig | None = None,
        audio_config: WhaleConfig | None = None,
    ) -> None:
        Qwen2PreTrainedModel.__init__(self, config)  # skip Qwen2ForCausalLM.__init__: no plain Qwen2Model
        vision_config = vision_config or resolve_vision_config(config, None)
        audio_config = audio_config or resolve_audio_config(config, None)
        self.model = VITAQwen2Model(config, vision_config, audio_config)
        self.vocab_size = config.vocab_size
        self.lm_head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    # ---------------------------------------------------------------- media encoders
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, 448, 448) → (N, 256, hidden): ViT, ×0.5, pixel shuffle, projector.

        uint8 pixels (what inference prepares: a quarter of the bytes to move) are normalised here,
        on the model's device, to the same float32 values `preprocess_image` gives."""
        dtype = self.model.mm_projector[0].weight.dtype
        pixel_values = pixel_values.to(self.device, non_blocking=True)
        if pixel_values.dtype == torch.uint8:
            pixel_values = normalize_pixels(pixel_values)
        features = self.model.vision_tower(pixel_values.to(dtype))
        return self.model.mm_projector(features)

    def encode_audio(self, features: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """(A, T, 80) fbank + frame counts → one (llm_length, hidden) tensor per row."""
        dtype = self.model.mm_projector[0].weight.dtype
        embeds, llm_lengths = self.model.audio_encoder(features.to(self.device, dtype), lengths.to(self.device))
        return split_audio(embeds, llm_lengths, lengths)

    # ---------------------------------------------------------------- splicing
    def splice(
        self,
        input_ids: list[torch.Tensor],
        image_embeds: torch.Tensor | None = None,
        audio_embeds: list[torch.Tensor] | None = None,
        labels: list[torch.Tensor] | None = None,
        names: list[str] | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Per sample: replace placeholders by media embeddings, truncate to the model max length."""
        all_ids = torch.cat(input_ids) if input_ids else torch.zeros(0, dtype=torch.long)
        n_img, n_aud = int((all_ids == IMAGE_TOKEN_INDEX).sum()), int((all_ids == AUDIO_TOKEN_INDEX).sum())
        have_img = 0 if image_embeds is None else len(image_embeds)
        have_aud = 0 if audio_embeds is None else len(audio_embeds)
        if n_img != have_img or n_aud != have_aud:
            raise ValueError(
                f"placeholders do not match media: {n_img} <image> for {have_img} image features, "
                f"{n_aud} <audio> for {have_aud} audio rows"
            )
        embed = self.model.embed_tokens
        media = {IMAGE_TOKEN_INDEX: iter(image_embeds if image_embeds is not None else []),
                 AUDIO_TOKEN_INDEX: iter(audio_embeds or [])}
        max_len = self.config.tokenizer_model_max_length
        out_embeds, out_labels = [], []
        for row, ids in enumerate(input_ids):
            kinds = {p: int(ids[p]) for p in torch.nonzero(ids < 0).flatten().tolist()}  # on the ids' own device
            ids = ids.to(self.device, non_blocking=True)  # (CPU ids at inference: no GPU sync)
            text = embed(ids.clamp(min=0))
            row_labels = labels[row].to(self.device) if labels is not None else None
            parts, label_parts, start = [], [], 0
            for pos, kind in kinds.items():
                if kind not in media:
                    raise ValueError(f"input_ids contain unknown negative id {kind} at position {pos}")
                block = next(media[kind]).to(text.dtype)
                parts += [text[start:pos], block]
                if row_labels is not None:
                    label_parts += [row_labels[start:pos], row_labels.new_full((len(block),), IGNORE_INDEX)]
                start = pos + 1
            parts.append(text[start:])
            spliced = torch.cat(parts)
            if row_labels is not None:
                label_parts.append(row_labels[start:])
                spliced_labels = torch.cat(label_parts)
            if len(spliced) > max_len:
                name = names[row] if names else f"batch row {row}"
                logger.warning("%s: %d spliced tokens truncated to %d (tokenizer_model_max_length)", name, len(spliced), max_len)
                spliced = spliced[:max_len]
                if row_labels is not None:
                    spliced_labels = spliced_labels[:max_len]
            out_embeds.append(spliced)
            if row_labels is not None:
                out_labels.append(spliced_labels)
        return out_embeds, (out_labels if labels is not None else None)

    def build_batch(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
        names: list[str] | None = None,
    ) -> SplicedBatch:
        """Right-padded (training layout) batch from padded ids with placeholders."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        keep = attention_mask.bool()
        ids = [input_ids[i][keep[i]] for i in range(len(input_ids))]
        labs = [labels[i][keep[i]] for i in range(len(labels))] if labels is not None else None
        images = self.encode_images(pixel_values) if pixel_values is not None and len(pixel_values) else None
        audio = None
        if audio_features is not None and len(audio_features):
            if audio_lengths is None:
                audio_lengths = torch.full((len(audio_features),), audio_features.shape[1], dtype=torch.long)
            audio = self.encode_audio(audio_features, audio_lengths)
        embeds, labs = self.splice(ids, images, audio, labs, names)
        return pad_right(embeds, labs)

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        sample_names: list[str] | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Full-sequence pass. With `input_ids` (may hold −200/−500), media are spliced first.

        Loss: plain next-token cross-entropy, mean over labels ≠ −100 (computed in fp32).
        """
        if input_ids is not None:
            if inputs_embeds is not None:
                raise ValueError("pass either input_ids or inputs_embeds, not both")
            batch = self.build_batch(input_ids, attention_mask, labels, pixel_values, audio_features, audio_lengths, sample_names)
            inputs_embeds, attention_mask, position_ids, labels = (
                batch.inputs_embeds, batch.attention_mask, batch.position_ids, batch.labels)
        outputs = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten().to(logits.device), ignore_index=IGNORE_INDEX
            )
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values)


AutoModelForCausalLM.register(VITAQwen2Config, VITAQwen2ForCausalLM, exist_ok=True)


def pad_right(embeds: list[torch.Tensor], labels: list[torch.Tensor] | None = None) -> SplicedBatch:
    """Stack variable-length sequences with right padding (zeros / mask 0 / label −100)."""
    length = max(len(e) for e in embeds)
    first = embeds[0]
    out = first.new_zeros(len(embeds), length, first.shape[-1])
    mask = torch.zeros(len(embeds), length, dtype=torch.long, device=first.device)
    lab = torch.full((len(embeds), length), IGNORE_INDEX, dtype=torch.long, device=first.device) if labels else None
    for i, e in enumerate(embeds):
        out[i, : len(e)] = e
        mask[i, : len(e)] = 1
        if lab is not None:
            lab[i, : len(e)] = labels[i]
    positions = torch.arange(length, device=first.device).expand(len(embeds), -1)
    return SplicedBatch(out, mask, positions, lab)


def build_model(cfg: VitaModelConfig) -> VITAQwen2ForCausalLM:
    """Construct (in the current default device/dtype) with SDPA attention."""
    cfg.llm._attn_implementation = "sdpa"
    return VITAQwen2ForCausalLM(cfg.llm, cfg.vision, cfg.audio)
