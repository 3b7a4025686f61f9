"""Text → 24 kHz speech with the VITA-1.5 TTS path (§6.1–§6.4).

Per sentence: Qwen2.5 token ids → the VITA LLM's ``embed_tokens`` (not its hidden states) →
each ``llm_hidden``-wide row split into ``llm_hidden / idim`` consecutive decoder frames
(3584 → 4 × 896 for VITA-1.5) → speech decoder → codec codes → TiCodec waveform.
"""

from __future__ import annotations

import wave as wave_io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from vita15.tts.checkpoint import load_tts
from vita15.tts.codec import TiCodec
from vita15.tts.decoder import LLM2TTSCodecAR
from vita15.tts.streaming import as_pcm, stream_decode, to_int16, trim_leading_silence
from vita15.tts.text import tts_sentences

SAMPLE_RATE = 24000


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids from a ``tokenizers.Tokenizer`` (Encoding.ids) or a transformers tokenizer (list)."""
    out = tokenizer.encode(text)
    return list(out.ids if hasattr(out, "ids") else out)


def to_decoder_input(embeds: torch.Tensor, idim: int) -> torch.Tensor:
    """(n, llm_hidden) → (1, n · llm_hidden/idim, idim), row-major, as ``reshape(-1, 896)`` upstream."""
    if embeds.shape[-1] % idim:
        raise ValueError(f"LLM embedding width {embeds.shape[-1]} is not a multiple of decoder idim {idim}")
    return embeds.reshape(1, -1, idim)


@dataclass
class SpeechResult:
    """Everything one synthesis produced, sentence by sentence (for dumps and comparisons)."""

    sentences: list[str]
    input_embeds: list[torch.Tensor]
    codes: list[torch.Tensor]
    waveform: np.ndarray


class TextToSpeech:
    """The demo TTS pipeline around a loaded decoder and codec."""

    def __init__(
        self,
        decoder: LLM2TTSCodecAR,
        codec: TiCodec,
        embed_tokens: Callable[[torch.Tensor], torch.Tensor],
        tokenizer: Any,
        *,
        top_k: int = 2,
        max_tokens: int = 1000,
        lowercase: bool = False,
    ) -> None:
        self.decoder = decoder
        self.codec = codec
        self.embed_tokens = embed_tokens
        self.tokenizer = tokenizer
        self.top_k = top_k
        self.max_tokens = max_tokens
        self.lowercase = lowercase

    @classmethod
    def from_checkpoint(
        cls,
        ckpt_dir: str | Path,
        embed_tokens: Callable[[torch.Tensor], torch.Tensor],
        tokenizer: Any,
        device: str | torch.device = "cpu",
        **kwargs: Any,
    ) -> TextToSpeech:
        """Load ``ckpt_dir`` (a ``vita_tts_ckpt`` folder); ``kwargs`` go to the constructor."""
        decoder, codec = load_tts(ckpt_dir, device=device)
        return cls(decoder, codec, embed_tokens, tokenizer, **kwargs)

    @property
    def sample_rate(self) -> int:
        return self.codec.cfg.sampling_rate

    @property
    def device(self) -> torch.device:
        return self.decoder.embedding.weight.device

    def sentences(self, text: str) -> list[str]:
        return tts_sentences(text, lowercase=self.lowercase)

    @torch.inference_mode()
    def input_embeds(self, sentence: str) -> torch.Tensor:
        """Decoder input (1, L, idim) for one sentence."""
        ids = torch.tensor(encode_text(self.tokenizer, sentence), dtype=torch.long)
        embeds = self.embed_tokens(ids.to(_module_device(self.embed_tokens, self.device)))
        embeds = embeds.to(self.device)
        return to_decoder_input(embeds, self.decoder.cfg.idim)

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    def _infer(self, embeds: torch.Tensor, greedy: bool, generator: torch.Generator) -> Iterator[int]:
        return self.decoder.infer(
            embeds, top_k=self.top_k, greedy=greedy, generator=generator, max_tokens=self.max_tokens
        )

    def run(self, text: str, *, greedy: bool = False, seed: int = 0) -> SpeechResult:
        """One-shot synthesis of all sentences, one RNG stream seeded with ``seed``."""
        generator = self._generator(seed)
        sentences, embeds, codes, waves = [], [], [], []
        for sentence in self.sentences(text):
            x = self.input_embeds(sentence)
            if x.shape[1] == 0:
                continue
            c = torch.tensor(list(self._infer(x, greedy, generator)), dtype=torch.long)
            sentences.append(sentence)
            embeds.append(x.float().cpu())
            codes.append(c)
            if c.numel():
                waves.append(self.codec.decode(c).float().view(-1).cpu().numpy())
        waveform = np.concatenate(waves) if waves else np.zeros(0, dtype=np.float32)
        return SpeechResult(sentences, embeds, codes, waveform.astype(np.float32))

    def synthesize(self, text: str, *, greedy: bool = False, seed: int = 0) -> np.ndarray:
        """Float32 waveform at :attr:`sample_rate`, exactly ``hop`` samples per generated code."""
        return self.run(text, greedy=greedy, seed=seed).waveform

    def stream(
        self,
        text: str,
        *,
        greedy: bool = False,
        seed: int = 0,
        chunk_size: int = 40,
        padding: int = 10,
        threshold: float = 0.01,
        pcm: Literal["float", "int16"] = "float",
        trim_first_sentence: bool = False,
    ) -> Iterator[np.ndarray]:
        """Streamed PCM chunks as the demos produce them (codes decoded while being generated).

        ``trim_first_sentence`` drops leading |x| ≤ 0.03 from every first-sentence piece (demo quirk).
        """
        generator = self._generator(seed)
        for index, sentence in enumerate(self.sentences(text)):
            x = self.input_embeds(sentence)
            if x.shape[1] == 0:
                continue
            pieces = stream_decode(
                self._infer(x, greedy, generator),
                self.codec,
                chunk_size=chunk_size,
                padding=padding,
                threshold=threshold,
            )
            if trim_first_sentence and index == 0:
                pieces = (trim_leading_silence(p) for p in pieces)
            yield from as_pcm(pieces, pcm)


def _module_device(fn: Any, default: torch.device) -> torch.device:
    """Where ``embed_tokens`` keeps its weights (ids must go there); ``default`` for plain callables."""
    param = next(fn.parameters(), None) if isinstance(fn, torch.nn.Module) else None
    return param.device if param is not None else default


def write_wav(path: str | Path, wave: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono 16-bit PCM with the stdlib ``wave`` module (float input is scaled by 32768)."""
    data = np.asarray(wave)
    pcm = data if data.dtype == np.int16 else to_int16(data)
    path = Path(path)
    with wave_io.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.reshape(-1).tobytes())
    return path
