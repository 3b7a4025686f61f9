"""Stages 3.1 (TiCodec) and 3.2 (NAR+AR speech decoder): losses, data and objectives (spec §6, §7.2).

3.1 trains the codec encoder, quantizer and generator on 24 kHz speech with a log-mel L1 loss, a
multi-resolution STFT loss (spectral convergence + log magnitude) and VQ-VAE codebook/commitment
losses through a straight-through estimator. HiFi-GAN discriminators are NOT implemented
(reconstruction-only training; upstream's adversarial terms are missing).
3.2 trains the speech decoder to predict the frozen codec's codes of an utterance from the frozen
LLM's `embed_tokens` rows of its transcript (`vita15.tts.synthesize.to_decoder_input` layout),
with per-token cross-entropy (upstream sums it; the mean keeps the LR scale-free).
Both export a complete `vita_tts_ckpt` folder; the part a stage does not train is copied as is.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from torch.utils.data import Dataset
from vita15.checkpoint import INDEX_FILE, SINGLE_FILE
from vita15.conversation import load_tokenizer
from vita15.tts.checkpoint import (
    CODEC_DIR,
    CODEC_PARTS,
    CONFIG_FILE,
    DECODER_DIR,
    WEIGHTS_FILE,
    load_codec,
    load_decoder,
    write_tts_checkpoint,
)
from vita15.tts.codec import TiCodec, stored_state_dict
from vita15.tts.decoder import LLM2TTSCodecAR
from vita15.tts.synthesize import to_decoder_input

from .data import DataConfig, VitaJsonDataset
from .stages import Phase, apply_trainable

STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))  # (n_fft, hop, window)


# ---------------------------------------------------------------------- losses
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0) -> torch.Tensor:
    """(n_mels, n_fft//2+1) triangular HTK-mel filters (no torchaudio in this project)."""
    def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    mels = torch.linspace(float(hz_to_mel(torch.tensor(f_min))), float(hz_to_mel(torch.tensor(sample_rate / 2))), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (bins - lower) / (centre - lower)
    down = (upper - bins) / (upper - centre)
    return torch.clamp(torch.minimum(up, down), min=0.0)


def _magnitude(wave: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    window = torch.hann_window(win, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave, n_fft, hop, win, window, return_complex=True)
    return spec.abs().clamp(min=1e-7)


def mel_l1(pred: torch.Tensor, target: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 256,
           n_mels: int = 80) -> torch.Tensor:
    """L1 between log-mel spectrograms (HiFi-GAN's reconstruction term)."""
    fb = mel_filterbank(sample_rate, n_fft, n_mels).to(pred)
    mel = lambda w: torch.log(torch.clamp(fb @ _magnitude(w, n_fft, hop, n_fft), min=1e-5))
    return F.l1_loss(mel(pred), mel(target))


def multi_resolution_stft(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + log-magnitude L1 (Parallel WaveGAN)."""
    total = pred.new_zeros(())
    for n_fft, hop, win in STFT_RESOLUTIONS:
        p, t = _magnitude(pred, n_fft, hop, win), _magnitude(target, n_fft, hop, win)
        convergence = torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp(min=1e-7)
        total = total + convergence + F.l1_loss(torch.log(p), torch.log(t))
    return total / len(STFT_RESOLUTIONS)


def vq_straight_through(features: torch.Tensor, quantised: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(decoder input with straight-through gradient, codebook + 0.25·commitment loss)."""
    codebook = F.mse_loss(quantised, features.detach())
    commitment = F.mse_loss(features, quantised.detach())
    return features + (quantised - features).detach(), codebook + 0.25 * commitment


# ---------------------------------------------------------------------- data
def load_wave(path: Path, sample_rate: int) -> torch.Tensor:
    """Mono float waveform at `sample_rate`, resampled by PyAV (libswresample)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return torch.from_numpy(np.concatenate(chunks).astype(np.float32))


class SpeechDataset(Dataset):
    """(id, 24 kHz waveform, transcript) from VITA-JSON samples with one audio and one answer."""

    def __init__(self, cfg: DataConfig, tokenizer, sample_rate: int) -> None:
        self.base = VitaJsonDataset(cfg, tokenizer)
        self.sample_rate = sample_rate

    @property
    def skipped(self) -> dict[str, str]:
        return self.base.skipped

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, str]:
        raw = self.base.samples[index]
        (path,) = self.base.audio_paths(raw)[:1]
        wave = self.base.media(path, lambda p: load_wave(p, self.sample_rate))
        return str(raw.get("id", index)), wave, raw["conversations"][1]["value"]


@dataclass
class SpeechBatch:
    sample_ids: list[str]
    waves: list[torch.Tensor]
    texts: list[str]


def collate_speech(items: list[tuple[str, torch.Tensor, str]]) -> SpeechBatch:
    return SpeechBatch([i for i, _, _ in items], [w for _, w, _ in items], [t for _, _, t in items])


# ---------------------------------------------------------------------- 3.1 codec
class CodecTrainer(nn.Module):
    """TiCodec encoder → straight-through VQ (frame + global codes) → generator, on random crops."""

    def __init__(self, codec: TiCodec, segment_codes: int) -> None:
        super().__init__()
        self.codec = codec
        self.segment = segment_codes * codec.hop_length

    def _crops(self, waves: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        """One random `segment`-sample crop per utterance (zero-padded if shorter); torch RNG."""
        out = torch.zeros(len(waves), self.segment)
        for i, w in enumerate(waves):
            start = int(torch.randint(0, max(1, len(w) - self.segment + 1), ()))
            piece = w[start : start + self.segment]
            out[i, : len(piece)] = piece
        return out.to(device)

    def forward(self, batch: SpeechBatch) -> tuple[torch.Tensor, torch.Tensor]:
        codec = self.codec
        device = codec.quantizer.quantizer_modules_globaltokens[0].embedding.weight.device
        wave = self._crops(batch.waves, device)
        features, global_vec = codec.encoder(wave.unsqueeze(1))
        with torch.no_grad():
            codes, global_codes = codec.quantizer.encode(features), codec.quantizer.encode_global(global_vec)
        frames, vq_frames = vq_straight_through(features, codec.quantizer.embed(codes))
        glob, vq_global = vq_straight_through(global_vec, codec.quantizer.embed_global(global_codes))
        pred = codec.generator(frames, glob).squeeze(1)
        sr = codec.cfg.sampling_rate
        loss = mel_l1(pred, wave, sr) + multi_resolution_stft(pred, wave) + vq_frames + vq_global
        return loss, torch.tensor(wave.numel())

    def shard_units(self) -> list[nn.Module]:
        return [self.codec.encoder, self.codec.generator]

    def enable_grad_checkpointing(self) -> None:
        """Convolutional codec on short crops: activations are small, nothing to recompute."""


# ---------------------------------------------------------------------- 3.2 decoder
def load_embed_tokens(ckpt: Path) -> torch.Tensor:
    """Only `model.embed_tokens.weight` of a VITA checkpoint (the decoder's frozen input table)."""
    key = "model.embed_tokens.weight"
    index = ckpt / INDEX_FILE
    file = ckpt / json.loads(index.read_text())["weight_map"][key] if index.is_file() else ckpt / SINGLE_FILE
    with safe_open(file, framework="pt") as f:
        return f.get_tensor(key).float()


class DecoderTrainer(nn.Module):
    """Teacher-forced CE of `LLM2TTSCodecAR` on codes of the frozen codec, one utterance at a time
    (the training mask has no padding rows, so utterances are not batched together)."""

    def __init__(self, decoder: LLM2TTSCodecAR, codec: TiCodec, embed: torch.Tensor, tokenizer) -> None:
        super().__init__()
        self.decoder = decoder
        self.codec = codec.requires_grad_(False).eval()
        self.register_buffer("embed", embed, persistent=False)
        self.tokenizer = tokenizer

    def train(self, mode: bool = True) -> DecoderTrainer:
        """The frozen codec stays in eval mode (its BatchNorm must use the running statistics)."""
        super().train(mode)
        self.codec.eval()
        return self

    def forward(self, batch: SpeechBatch) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.decoder.embedding.weight.device
        losses, n_codes = [], 0
        for wave, text in zip(batch.waves, batch.texts):
            with torch.no_grad():
                codes = self.codec.encode(wave.to(device)[None])[0][..., 0].clone()  # (1, T), out of inference mode
            ids = torch.tensor(self.tokenizer(text, add_special_tokens=False)["input_ids"], device=device)
            hidden = to_decoder_input(self.embed[ids], self.decoder.cfg.idim).to(self.decoder.embedding.weight.dtype)
            logits = self.decoder(hidden, codes)
            targets = torch.cat([codes, codes.new_full((1, 1), self.decoder.eos_id)], dim=1)
            losses.append(F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()))
            n_codes += targets.numel()
        return torch.stack(losses).mean(), torch.tensor(n_codes)

    def shard_units(self) -> list[nn.Module]:
        return [*self.decoder.layers_pre_nn, *self.decoder.layers]

    def enable_grad_checkpointing(self) -> None:
        """Four small Llama layers: recomputation would cost more than it saves."""


# ---------------------------------------------------------------------- objectives
def _tts_init(cfg: dict[str, Any], init: Path | None, out_dir: Path) -> Path:
    """The `vita_tts_ckpt` to start from: `init`, or a seeded random one written to `out_dir`."""
    if init is not None:
        return init
    tts = cfg.get("tts", {})
    target = out_dir / "random_init"
    if not (target / DECODER_DIR / WEIGHTS_FILE).is_file():
        write_tts_checkpoint(target, size=tts.get("size", "tiny"), seed=int(tts.get("seed", 0)))
    return target


def _copy_part(src: Path, out_dir: Path, part: str) -> None:
    if (out_dir / part).exists():
        shutil.rmtree(out_dir / part)
    shutil.copytree(src / part, out_dir / part)


class CodecObjective:
    """Phase 3.1: speech files → `CodecTrainer`; export = codec trained, decoder copied."""

    def __init__(self, phase: Phase, cfg: dict[str, Any], init: Path | None) -> None:
        self.source = _tts_init(cfg, init, Path(cfg["output_dir"]))
        codec = load_codec(self.source)
        self.module = CodecTrainer(codec, int(cfg.get("segment_codes", 32)))
        self.trainable = apply_trainable(self.module.codec, phase.trainable)
        tokenizer = load_tokenizer(cfg["tokenizer"]) if cfg.get("tokenizer") else None
        self.dataset = SpeechDataset(DataConfig.from_dict(cfg["data"]), tokenizer, codec.cfg.sampling_rate)
        self.collate = collate_speech

    @property
    def skipped(self) -> dict[str, str]:
        return self.dataset.skipped

    def export(self, state: dict[str, torch.Tensor], out_dir: Path, dtype: torch.dtype, max_shard_bytes: int) -> Path:
        codec = self.module.codec
        codec.load_state_dict({k.removeprefix("codec."): v for k, v in state.items()})
        (out_dir / CODEC_DIR).mkdir(parents=True, exist_ok=True)
        (out_dir / CODEC_DIR / CONFIG_FILE).write_text(json.dumps(codec.cfg.to_json(), indent=2))
        parts = {part: stored_state_dict(getattr(codec, part)) for part in CODEC_PARTS}
        torch.save(parts, out_dir / CODEC_DIR / WEIGHTS_FILE)
        _copy_part(self.source, out_dir, DECODER_DIR)
        return out_dir


class TTSObjective:
    """Phase 3.2: (speech, transcript) pairs → `DecoderTrainer`; export = decoder trained, codec copied."""

    def __init__(self, phase: Phase, cfg: dict[str, Any], init: Path | None) -> None:
        self.source = _tts_init(cfg, init, Path(cfg["output_dir"]))
        llm = Path(cfg["llm"])  # the VITA checkpoint whose embed_tokens feed the decoder
        tokenizer = load_tokenizer(llm)
        codec = load_codec(self.source)
        self.module = DecoderTrainer(load_decoder(self.source), codec, load_embed_tokens(llm), tokenizer)
        self.trainable = apply_trainable(self.module.decoder, phase.trainable)
        self.dataset = SpeechDataset(DataConfig.from_dict(cfg["data"]), tokenizer, codec.cfg.sampling_rate)
        self.collate = collate_speech

    @property
    def skipped(self) -> dict[str, str]:
        return self.dataset.skipped

    def export(self, state: dict[str, torch.Tensor], out_dir: Path, dtype: torch.dtype, max_shard_bytes: int) -> Path:
        decoder = {k.removeprefix("decoder."): v for k, v in state.items() if k.startswith("decoder.")}
        (out_dir / DECODER_DIR).mkdir(parents=True, exist_ok=True)
        (out_dir / DECODER_DIR / CONFIG_FILE).write_text(json.dumps(self.module.decoder.cfg.to_model_json(), indent=2))
        torch.save(decoder, out_dir / DECODER_DIR / WEIGHTS_FILE)
        _copy_part(self.source, out_dir, CODEC_DIR)
        return out_dir
