"""Batched generation for VITA-1.5 requests (VLMEvalKit adapter / demo semantics, spec §4, §8.1).

Requests of different lengths and modalities run in one forward: the spliced embeddings are
left-padded, positions restart at 0 on each row's first real token, and decoding runs over
transformers' KV cache. Logits are restricted to the tokenizer's 151665 ids, which is what the
reference's `resize_token_embeddings(len(tokenizer))` does. Sampling uses one seeded generator per
request, so every row gives the same tokens as when it runs alone.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import DynamicCache

from . import audio_features, modeling_vita
from .conversation import (
    IM_END_ID,
    build_prompt,
    strip_markers,
    tokenize_with_placeholders,
    user_content,
)
from .image_processing import preprocess_frames, preprocess_image

STOP_WINDOW = 16  # tokens decoded to look for stop strings (like KeywordsStoppingCriteria)
# cuDNN SDPA builds a new graph for every new key length (≈35 ms per decode step on an H100);
# the flash / memory-efficient kernels have no per-shape setup.
DECODE_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@dataclass
class Generation:
    raw: str  # decoded text up to the stop, special tokens and markers kept
    answer: str  # special tokens skipped, stripped, leading marker dropped (VLMEvalKit rule)
    n_prompt_tokens: int  # spliced sequence length fed to the decoder
    n_new_tokens: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class PreparedRequest:
    """One request turned into ids with placeholders plus its media tensors."""

    prompt: str
    input_ids: torch.Tensor
    pixel_values: torch.Tensor | None
    audio_features: torch.Tensor | None


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def prepare_request(request: Any, tokenizer, dither: float = 0.0) -> PreparedRequest:
    """Tile images, preprocess frames, compute fbank and build the demo prompt for one request."""
    tiles = [preprocess_image(img, max_tiles=getattr(request, "max_tiles", 12)) for img in request.images or []]
    frames = list(request.frames or [])
    pixels = tiles + ([preprocess_frames(frames)] if frames else [])
    audio = getattr(request, "audio", None)
    feats = None
    if audio is not None:
        feats = audio_features.fbank(np.asarray(audio, dtype=np.float32), dither=dither)
    query = user_content(request.text, [len(t) for t in tiles], len(frames), has_audio=feats is not None)
    modality = request.modality if pixels else "lang"
    prompt = build_prompt(query, modality)
    ids = tokenize_with_placeholders(tokenizer, prompt, with_audio=feats is not None)
    return PreparedRequest(
        prompt=prompt,
        input_ids=torch.tensor(ids, dtype=torch.long),
        pixel_values=torch.cat(pixels) if pixels else None,
        audio_features=feats,
    )


def pad_audio(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (T_i, 80) features to (A, T_max, 80) with their lengths."""
    lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
    out = torch.zeros(len(features), int(lengths.max()), features[0].shape[-1])
    for i, f in enumerate(features):
        out[i, : len(f)] = f
    return out, lengths


class VitaInference:
    """Model + tokenizer with request-level batched generation."""

    def __init__(self, model, tokenizer, generation_config: dict | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.vocab_limit = min(len(tokenizer), model.config.vocab_size)
        self.repetition_penalty = float((generation_config or {}).get("repetition_penalty", 1.0))
        self.dither = float(model.model.audio_encoder.cfg.dither)  # the reference's train.yaml fbank dither

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", dtype: str = "fp32") -> "VitaInference":
        from .checkpoint import load_vita

        model, tokenizer = load_vita(path, device=device, dtype=dtype)
        gen_path = Path(path) / "generation_config.json"
        gen_cfg = json.loads(gen_path.read_text()) if gen_path.is_file() else {}
        return cls(model, tokenizer, gen_cfg)

    # ---------------------------------------------------------------- inputs
    @torch.no_grad()
    def embed_requests(self, requests: Sequence[Any]) -> tuple[list[torch.Tensor], list[list[str]]]:
        """Spliced input embeddings per request (media encoded in one batch each)."""
        prepared = []
        for i, req in enumerate(requests):
            try:
                prepared.append(prepare_request(req, self.tokenizer, self.dither))
            except (ValueError, OSError) as exc:
                raise type(exc)(f"request {getattr(req, 'uid', i)}: {exc}") from exc
        pixels = [p.pixel_values for p in prepared if p.pixel_values is not None]
        images = self.model.encode_images(torch.cat(pixels)) if pixels else None
        audio = None
        feats = [p.audio_features for p in prepared if p.audio_features is not None]
        if feats:
            audio = self.model.encode_audio(*pad_audio(feats))
        names = [f"request {getattr(r, 'uid', i)}" for i, r in enumerate(requests)]
        collector = _WarningCollector()  # truncation warnings go to the affected Generation too
        modeling_vita.logger.addHandler(collector)
        try:
            embeds, _ = self.model.splice([p.input_ids for p in prepared], images, audio, None, names)
        finally:
            modeling_vita.logger.removeHandler(collector)
        warnings = [[m for m in collector.messages if m.startswith(name + ":")] for name in names]
        return embeds, warnings

    # ---------------------------------------------------------------- decoding
    @torch.no_grad()
    def generate(
        self,
        requests: Sequence[Any],
        *,
        do_sample: bool = False,
        temperature: float = 0.0,
        top_p: float | None = None,
        max_new_tokens: int = 2048,
        stop: Sequence[str] = ("<|im_end|>",),
        seed: int = 0,
    ) -> list[Generation]:
        """Generate for all requests in one batch; each row equals its single-request run."""
        if not requests:
            return []
        embeds, warnings = self.embed_requests(requests)
        tokens = self.decode(embeds, do_sample=do_sample, temperature=temperature, top_p=top_p,
                             max_new_tokens=max_new_tokens, stop=tuple(stop), seed=seed)
        return [self._finish(t, len(e), w, tuple(stop)) for t, e, w in zip(tokens, embeds, warnings, strict=True)]

    def _stop_ids(self, stop: tuple[str, ...]) -> set[int]:
        ids = {IM_END_ID}
        for s in stop:
            tok = self.tokenizer.convert_tokens_to_ids(s)
            if isinstance(tok, int) and tok >= 0 and self.tokenizer.convert_ids_to_tokens(tok) == s:
                ids.add(tok)
        return ids

    @torch.no_grad()
    @sdpa_kernel(DECODE_BACKENDS)
    def decode(
        self,
        embeds: list[torch.Tensor],
        *,
        do_sample: bool = False,
        temperature: float = 0.0,
        top_p: float | None = None,
        max_new_tokens: int = 2048,
        stop: tuple[str, ...] = ("<|im_end|>",),
        seed: int = 0,
    ) -> list[list[int]]:
        """Left-padded prefill + KV-cached steps; returns the new token ids of each row."""
        model, device = self.model, self.model.device
        batch, length = len(embeds), max(len(e) for e in embeds)
        inputs = embeds[0].new_zeros(batch, length, embeds[0].shape[-1])
        mask = torch.zeros(batch, length, dtype=torch.long, device=device)
        for i, e in enumerate(embeds):
            inputs[i, length - len(e):] = e
            mask[i, length - len(e):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        generators = [torch.Generator(device=device).manual_seed(seed) for _ in range(batch)]
        stop_ids = self._stop_ids(stop)
        out: list[list[int]] = [[] for _ in range(batch)]
        done = [False] * batch
        step_inputs = dict(inputs_embeds=inputs)
        for _ in range(max_new_tokens):
            hidden = model.model(**step_inputs, attention_mask=mask, position_ids=positions,
                                 past_key_values=cache, use_cache=True).last_hidden_state[:, -1]
            logits = model.lm_head(hidden)[:, : self.vocab_limit].float()
            next_ids = []
            for i in range(batch):
                tok = IM_END_ID if done[i] else self._choose(logits[i], out[i], do_sample, temperature, top_p, generators[i])
                next_ids.append(tok)
                if done[i]:
                    continue
                out[i].append(tok)
                tail = self.tokenizer.decode(out[i][-STOP_WINDOW:], skip_special_tokens=False)
                done[i] = tok in stop_ids or any(s and s in tail for s in stop)
            if all(done):
                break
            step_inputs = dict(input_ids=torch.tensor(next_ids, device=device)[:, None])
            mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
            positions = positions[:, -1:] + 1
        return out

    def _choose(self, logits: torch.Tensor, previous: list[int], do_sample: bool, temperature: float,
                top_p: float | None, generator: torch.Generator) -> int:
        """HF order: repetition penalty (generated ids), temperature, top-p, then sample or argmax."""
        if self.repetition_penalty != 1.0 and previous:
            idx = torch.tensor(sorted(set(previous)), device=logits.device)
            picked = logits[idx]
            logits = logits.clone()
            logits[idx] = torch.where(picked < 0, picked * self.repetition_penalty, picked / self.repetition_penalty)
        if not do_sample or temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / temperature, dim=-1)
        if top_p is not None and top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # keep the smallest set reaching top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=generator))

    def _finish(self, tokens: list[int], n_prompt: int, warnings: list[str], stop: tuple[str, ...]) -> Generation:
        raw = _cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=False), stop)
        text = _cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), stop).strip()
        return Generation(raw=raw, answer=strip_markers(text), n_prompt_tokens=n_prompt,
                          n_new_tokens=len(tokens), warnings=list(warnings))


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Text before the first stop string (the reference strips a trailing stop keyword)."""
    cut = min((text.find(s) for s in stop if s and s in text), default=len(text))
    return text[:cut]

