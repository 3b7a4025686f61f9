"""Batched generation for VITA-1.5 requests (VLMEvalKit adapter / demo semantics, spec §4, §8.1).

Requests of different lengths and modalities run in one forward: the spliced embeddings are
left-padded, positions restart at 0 on each row's first real token, and decoding runs over
transformers' KV cache. Logits are restricted to the tokenizer's 151665 ids, which is what the
reference's `resize_token_embeddings(len(tokenizer))` does. Sampling uses one seeded generator per
request, so every row gives the same tokens as when it runs alone.

This is the reference engine (`--engine reference`, run one request at a time as VLMEvalKit's
VITA adapter drives the model); `vita15.engine` is the fast one. Both share the request
preparation, token choice and answer finishing defined here.
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

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
from .image_processing import frame_pixels, image_pixels
from .stopping import STOP_WINDOW, stop_ids
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
    token_ids: list[int] = field(default_factory=list)  # the generated ids (stop token included)


@dataclass
class PreparedRequest:
    """One request turned into ids with placeholders plus its media tensors."""

    prompt: str
    input_ids: torch.Tensor
    pixel_values: torch.Tensor | None  # uint8 tiles and frames; `encode_images` normalises them on its device
    audio_features: torch.Tensor | None
    # Content identity of each placeholder's block, in placeholder order (image tiles and frames,
    # then the audio): equal keys mean equal embeddings, which is what prefix sharing relies on.
    media_keys: list[bytes] = field(default_factory=list)


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def splice_warnings(names: Sequence[str]) -> Iterator[list[list[str]]]:
    """Collect the splicer's per-request warnings (truncation) so each Generation carries its own."""
    collector, per_name = _WarningCollector(), [[] for _ in names]
    modeling_vita.logger.addHandler(collector)
    try:
        yield per_name
    finally:
        modeling_vita.logger.removeHandler(collector)
        for i, name in enumerate(names):
            per_name[i].extend(m for m in collector.messages if m.startswith(name + ":"))


def _digest(*parts: bytes | str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
    return h.digest()


def image_key(image, max_tiles: int) -> bytes:
    """Identity of an image's tiles: its pixels, mode, size and the tile budget."""
    return _digest(f"img|{image.mode}|{image.size}|{max_tiles}|", image.tobytes())


def prepare_request(request: Any, tokenizer, dither: float = 0.0,
                    tiles_cache: dict[bytes, torch.Tensor] | None = None, fbank=audio_features.fbank) -> PreparedRequest:
    """Tile images, preprocess frames, compute fbank and build the demo prompt for one request.

    `tiles_cache` (image key -> tiles) lets the questions of one image share its tiling; `fbank`
    may be an `audio_features.FbankPool`.
    """
    max_tiles = getattr(request, "max_tiles", 12)
    tiles, keys = [], []
    for img in request.images or []:
        key = image_key(img, max_tiles)
        found = tiles_cache.get(key) if tiles_cache is not None else None
        if found is None:
            found = image_pixels(img, max_tiles=max_tiles)
            if tiles_cache is not None:
                tiles_cache[key] = found
        tiles.append(found)
        keys += [_digest(key, f"|tile{i}") for i in range(len(found))]
    frames = list(request.frames or [])
    if frames:
        video = _digest("frames|", *(image_key(f, 0) for f in frames))
        keys += [_digest(video, f"|frame{i}") for i in range(len(frames))]
    pixels = tiles + ([frame_pixels(frames)] if frames else [])
    audio = getattr(request, "audio", None)
    feats = None
    if audio is not None:
        wave = np.asarray(audio, dtype=np.float32)
        feats = fbank(wave, dither=dither)
        keys.append(_digest(f"audio|{dither}|", wave.tobytes()))
    query = user_content(request.text, [len(t) for t in tiles], len(frames), has_audio=feats is not None)
    modality = request.modality if pixels else "lang"
    prompt = build_prompt(query, modality)
    ids = tokenize_with_placeholders(tokenizer, prompt, with_audio=feats is not None)
    return PreparedRequest(
        prompt=prompt,
        input_ids=torch.tensor(ids, dtype=torch.long),
        pixel_values=torch.cat(pixels) if pixels else None,
        audio_features=feats,
        media_keys=keys,
    )


def penalize(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """HF repetition penalty on the ids marked in `seen` (bool, same shape as logits)."""
    return torch.where(seen, torch.where(logits < 0, logits * penalty, logits / penalty), logits)


def select_token(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float | None,
                 generator: torch.Generator | None) -> torch.Tensor:
    """HF order after the penalty: temperature, top-p, then sample (seeded) or argmax; a 0-d id tensor."""
    if not do_sample or temperature <= 0:
        return torch.argmax(logits)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # keep the smallest set reaching top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator)[0]


def finish_generation(tokenizer, tokens: list[int], n_prompt: int, warnings: list[str],
                      stop: tuple[str, ...]) -> Generation:
    """Decoded raw text and the answer the scorer sees, from a row's generated ids."""
    raw = _cut_at_stop(tokenizer.decode(tokens, skip_special_tokens=False), stop)
    text = _cut_at_stop(tokenizer.decode(tokens, skip_special_tokens=True), stop).strip()
    return Generation(raw=raw, answer=strip_markers(text), n_prompt_tokens=n_prompt,
                      n_new_tokens=len(tokens), warnings=list(warnings), token_ids=list(tokens))


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
        with splice_warnings(names) as warnings:  # truncation warnings go to the affected Generation too
            embeds, _ = self.model.splice([p.input_ids for p in prepared], images, audio, None, names)
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
        return [finish_generation(self.tokenizer, t, len(e), w, tuple(stop))
                for t, e, w in zip(tokens, embeds, warnings, strict=True)]

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
        stops = stop_ids(self.tokenizer, stop)
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
                done[i] = tok in stops or any(s and s in tail for s in stop)
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
            seen = torch.zeros_like(logits, dtype=torch.bool)
            seen[torch.tensor(sorted(set(previous)), device=logits.device)] = True
            logits = penalize(logits, seen, self.repetition_penalty)
        return int(select_token(logits, do_sample, temperature, top_p, generator))


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Text before the first stop string (the reference strips a trailing stop keyword)."""
    cut = min((text.find(s) for s in stop if s and s in text), default=len(text))
    return text[:cut]

