"""The staged, streaming answer path of one request: text and speech out as they are made.

Shared by `vita-eval ask` (one question, printed as it streams) and `vita-eval latency` (the same
stages timed over a question set). Stages, in order: `prepare` (tiles, fbank, prompt), `image_encoder`,
`audio_encoder`, `prefill` (splice + the prompt forward + the first token), `first_text_chunk` (decode
steps until the first text segment is handed to the speech decoder), `decode` (the other decode
steps), `speech_decoder` (NAR prefix + AR codes) and `codec` (window decoding, §6.4).

All times are on one monotonic clock whose zero is the moment the request is complete (for a spoken
question: the end of its audio). Stage edges synchronise the device, so GPU work is charged to the
stage that launched it. The path is serial: the LLM waits while a segment is spoken, which gives the
earliest first audio in one process (the reference servers put LLM and TTS in separate processes).

Text goes to the speech decoder in segments that close at the demo's sentence punctuation or after a
token budget (a `SpeechPolicy`); each segment is spoken sentence by sentence as `llm2TTS.run` does,
with codec windows of `chunk_size` codes and quiet-point cuts.
"""
from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.attention import sdpa_kernel
from transformers import DynamicCache

from .conversation import remove_markers
from .inference import DECODE_BACKENDS, VitaInference, finish_generation, pad_audio, prepare_request
from .stopping import STOP_WINDOW, stop_ids
from .tts.streaming import stream_decode
from .tts.text import SENTENCE_ENDINGS

STAGES = ("prepare", "image_encoder", "audio_encoder", "prefill", "first_text_chunk", "decode", "speech_decoder",
          "codec")
DEMO_STOP = ("<|im_start|>",)  # video_audio_demo.py's KeywordsStoppingCriteria (<|im_end|> stops too)
MAX_DECODER_TOKENS = 1000  # llm2TTS.run's cap per sentence


class Clock:
    """Stage durations and first-occurrence events, in seconds since `start()`."""

    def __init__(self, device: torch.device | str) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.t0 = time.perf_counter()
        self.stages: dict[str, float] = defaultdict(float)
        self.events: dict[str, float] = {}
        self.counts: dict[str, int] = defaultdict(int)  # e.g. codes produced by the speech decoder
        self.snapshots: dict[str, dict[str, float]] = {}  # stage totals at an event (where the wait went)

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def start(self) -> None:
        self._sync()
        self.t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._sync()
        begin = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.stages[name] += time.perf_counter() - begin

    def mark(self, event: str) -> float:
        """Record `event` the first time only (with the stage totals at that moment); returns its time."""
        if event not in self.events:
            self.events[event] = self.now()
            self.snapshots[event] = dict(self.stages)
        return self.events[event]


@dataclass(frozen=True)
class SpeechPolicy:
    """When text goes to the speech decoder and how the codec streams it.

    `reference` is `llm2TTS.run` (chunk 40, padding 10, quiet threshold 0.01); `server` the real-time
    server (first sentence: chunk 20, threshold 0.1; later 0.015); `fast` adds our first-chunk policy:
    a short first text segment, a small first codec window cut at once, and the graphed decoder.
    Random weights emit no punctuation, so segment budgets stand in for sentence lengths there.
    """

    name: str
    first_segment_tokens: int = 16  # the first segment closes at a sentence end or after this many tokens
    segment_tokens: int = 48  # later segments likewise
    chunk_size: int = 40
    padding: int = 10
    threshold: float = 0.01
    first_sentence_chunk: int | None = None
    first_sentence_threshold: float | None = None
    first_window_chunk: int | None = None  # the answer's very first codec window only
    first_window_threshold: float | None = None  # inf: cut the first window at once, no quiet wait
    max_codes_per_token: int | None = 25  # per sentence: this × its text tokens, at most 1000 (None: 1000)
    fast_decoder: bool = False  # static KV cache, CUDA graph on GPUs (vita15.tts.fast_decoder)

    def as_dict(self) -> dict[str, Any]:
        return {k: "inf" if isinstance(v, float) and math.isinf(v) else v for k, v in asdict(self).items()}


POLICIES: dict[str, SpeechPolicy] = {
    "reference": SpeechPolicy("reference"),
    "server": SpeechPolicy("server", first_sentence_chunk=20, first_sentence_threshold=0.1, threshold=0.015),
    "fast": SpeechPolicy("fast", first_segment_tokens=4, first_sentence_chunk=20, first_sentence_threshold=0.1,
                         threshold=0.015, first_window_chunk=10, first_window_threshold=math.inf, fast_decoder=True),
}
POLICIES["fast-nograph"] = replace(POLICIES["fast"], name="fast-nograph", fast_decoder=False)  # the graph's share


def get_policy(name: str) -> SpeechPolicy:
    if name not in POLICIES:
        raise ValueError(f"unknown speech policy {name!r}; known: {', '.join(POLICIES)}")
    return POLICIES[name]


@dataclass
class AudioChunk:
    index: int
    t: float  # seconds since the request was complete
    n_samples: int
    sentence: int


@dataclass
class Timings:
    """What one request cost, stage by stage, and when its text and audio appeared."""

    stages: dict[str, float] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)
    chunks: list[AudioChunk] = field(default_factory=list)
    sample_rate: int = 24000
    counts: dict[str, int] = field(default_factory=dict)
    at_first_audio: dict[str, float] = field(default_factory=dict)  # stage totals when the first chunk left

    @property
    def audio_s(self) -> float:
        return sum(c.n_samples for c in self.chunks) / self.sample_rate

    @property
    def rtf(self) -> float | None:
        """Speech compute (decoder + codec) per second of audio: below 1 keeps up with playback."""
        if not self.chunks or self.audio_s == 0:
            return None
        return (self.stages.get("speech_decoder", 0.0) + self.stages.get("codec", 0.0)) / self.audio_s

    @property
    def stall_s(self) -> float:
        """Silence a listener hears after the first chunk because a later chunk came late."""
        stall, play = 0.0, None
        for chunk in self.chunks:
            play = chunk.t if play is None else play
            if chunk.t > play:
                stall += chunk.t - play
                play = chunk.t
            play += chunk.n_samples / self.sample_rate
        return stall

    def as_dict(self) -> dict[str, Any]:
        return {"stages": {k: round(v, 6) for k, v in self.stages.items()},
                "events": {k: round(v, 6) for k, v in self.events.items()},
                "audio_s": round(self.audio_s, 4), "rtf": None if self.rtf is None else round(self.rtf, 4),
                "stall_s": round(self.stall_s, 4), "n_chunks": len(self.chunks), "counts": dict(self.counts),
                "at_first_audio": {k: round(v, 6) for k, v in self.at_first_audio.items()},
                "chunks": [asdict(c) | {"t": round(c.t, 6)} for c in self.chunks]}


@dataclass
class Answer:
    prompt: str
    raw: str
    answer: str
    n_prompt_tokens: int
    n_new_tokens: int
    timings: Timings
    segments: list[str] = field(default_factory=list)  # text handed to the speech decoder, in order
    wave: np.ndarray | None = None  # float32 at timings.sample_rate, when spoken


class _TimedCodec:
    """The codec as `stream_decode` sees it, with its decode calls charged to the `codec` stage."""

    def __init__(self, codec, clock: Clock) -> None:
        self.codec, self.clock = codec, clock

    @property
    def hop_length(self) -> int:
        return self.codec.hop_length

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        with self.clock.stage("codec"):
            return self.codec.decode(codes).float().cpu()


def _timed(codes: Iterator[int], clock: Clock, stage: str) -> Iterator[int]:
    """Charge the time spent producing each item to `stage` (the decoder yields code by code)."""
    while True:
        with clock.stage(stage):
            code = next(codes, None)
        if code is None:
            return
        clock.counts["codes"] += 1
        yield code


class Speaker:
    """Text → streamed 24 kHz PCM with the VITA-1.5 speech decoder and codec, under a `SpeechPolicy`."""

    def __init__(self, tts, policy: SpeechPolicy, *, greedy: bool = False) -> None:
        from .tts.fast_decoder import FastDecoder

        self.tts, self.policy, self.greedy = tts, policy, greedy
        self.decoder = FastDecoder(tts.decoder) if policy.fast_decoder else tts.decoder
        width = getattr(tts.embed_tokens, "embedding_dim", tts.decoder.cfg.idim)
        self.frames_per_token = max(1, width // tts.decoder.cfg.idim)

    @classmethod
    def load(cls, model_dir: str | Path, engine: VitaInference, policy: SpeechPolicy, *, dtype: torch.dtype | None = None,
             greedy: bool = False) -> "Speaker":
        """The checkpoint's `vita_tts_ckpt`, fed by the loaded LLM's `embed_tokens` (spec §6.1)."""
        from .checkpoint import TTS_FOLDER
        from .tts.checkpoint import load_tts
        from .tts.synthesize import TextToSpeech

        device = engine.model.device
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        decoder, codec = load_tts(Path(model_dir) / TTS_FOLDER, device=device, dtype=dtype)
        tts = TextToSpeech(decoder, codec, engine.model.model.embed_tokens, engine.tokenizer)
        return cls(tts, policy, greedy=greedy)

    @property
    def sample_rate(self) -> int:
        return self.tts.sample_rate

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.tts.device).manual_seed(seed)

    def speak(self, text: str, clock: Clock, generator: torch.Generator, first_sentence: int = 0
              ) -> Iterator[tuple[int, np.ndarray]]:
        """(sentence index, float32 piece) while decoding; sentence indices continue from `first_sentence`."""
        policy, index = self.policy, first_sentence
        for sentence in self.tts.sentences(text):
            with clock.stage("speech_decoder"):
                x = self.tts.input_embeds(sentence)
            if x.shape[1] == 0:
                continue
            n_tokens = x.shape[1] // self.frames_per_token
            cap = MAX_DECODER_TOKENS if policy.max_codes_per_token is None else min(
                MAX_DECODER_TOKENS, policy.max_codes_per_token * max(n_tokens, 1))
            codes = self.decoder.infer(x, top_k=self.tts.top_k, greedy=self.greedy, generator=generator,
                                       max_tokens=cap)
            first = index == 0
            pieces = stream_decode(
                _timed(iter(codes), clock, "speech_decoder"), _TimedCodec(self.tts.codec, clock),
                chunk_size=(policy.first_sentence_chunk or policy.chunk_size) if first else policy.chunk_size,
                padding=policy.padding,
                threshold=(policy.first_sentence_threshold or policy.threshold) if first else policy.threshold,
                first_chunk_size=policy.first_window_chunk if first else None,
                first_threshold=policy.first_window_threshold if first else None,
            )
            for piece in pieces:
                yield index, piece.numpy().astype(np.float32)
            index += 1

    def synthesize(self, text: str, *, seed: int = 0) -> tuple[np.ndarray, Timings]:
        """The whole waveform of `text` and its timings (streamed internally, as when answering)."""
        clock = Clock(self.tts.device)
        clock.start()
        timings = Timings(sample_rate=self.sample_rate)
        pieces = []
        for sentence, piece in self.speak(text, clock, self.generator(seed)):
            timings.chunks.append(AudioChunk(len(timings.chunks), clock.now(), len(piece), sentence))
            pieces.append(piece)
        timings.stages, timings.events, timings.counts = dict(clock.stages), dict(clock.events), dict(clock.counts)
        return (np.concatenate(pieces) if pieces else np.zeros(0, np.float32)), timings


class Segmenter:
    """Cuts the streamed display text into speech segments: at sentence punctuation or a token budget."""

    def __init__(self, policy: SpeechPolicy) -> None:
        self.policy = policy
        self.cut = 0  # characters of the display text already handed out
        self.tokens = 0  # tokens since the last cut
        self.n_segments = 0

    def feed(self, text: str) -> str | None:
        """Called once per generated token with the whole display text so far."""
        self.tokens += 1
        pending = text[self.cut:]
        ends = list(SENTENCE_ENDINGS.finditer(pending))
        budget = self.policy.first_segment_tokens if self.n_segments == 0 else self.policy.segment_tokens
        if ends:
            end = ends[-1].end()
        elif self.tokens >= budget and pending.strip():
            end = len(pending)
        else:
            return None
        return self._take(pending[:end])

    def flush(self, text: str) -> str | None:
        pending = text[self.cut:]
        return self._take(pending) if pending.strip() else None

    def _take(self, segment: str) -> str | None:
        """Hand out a segment; one with nothing to say (punctuation only) is passed over, uncounted,
        so the short first-segment budget still applies to the first words."""
        self.cut += len(segment)
        self.tokens = 0
        if not any(ch.isalnum() for ch in segment):
            return None
        self.n_segments += 1
        return segment


def display_text(tokenizer, tokens: list[int]) -> str:
    """What a person sees: special tokens skipped, state markers removed, a trailing partial character held back."""
    return re.sub("\ufffd+$", "", remove_markers(tokenizer.decode(tokens, skip_special_tokens=True)))


class StreamingAnswerer:
    """One request at a time through the stages, with text and audio callbacks as they are produced."""

    def __init__(self, engine: VitaInference, speaker: Speaker | None = None) -> None:
        self.engine, self.speaker = engine, speaker

    def _choose(self, hidden: torch.Tensor, previous: list[int]) -> int:
        logits = self.engine.model.lm_head(hidden)[0, : self.engine.vocab_limit].float()
        return self.engine._choose(logits, previous, False, 0.0, None, None)

    @torch.inference_mode()
    @sdpa_kernel(DECODE_BACKENDS)
    def answer(
        self,
        query: Any,
        *,
        max_new_tokens: int = 1024,
        stop: tuple[str, ...] = DEMO_STOP,
        seed: int = 0,
        on_text: Callable[[str], None] | None = None,
        on_audio: Callable[[np.ndarray], None] | None = None,
    ) -> Answer:
        """Greedy decoding as the demo (`do_sample=False`), streamed; speech when a Speaker is set."""
        engine, model = self.engine, self.engine.model
        clock = Clock(model.device)
        clock.start()
        with clock.stage("prepare"):
            prepared = prepare_request(query, engine.tokenizer, engine.dither)
        images = audio = None
        if prepared.pixel_values is not None:
            with clock.stage("image_encoder"):
                images = model.encode_images(prepared.pixel_values)
        if prepared.audio_features is not None:
            with clock.stage("audio_encoder"):
                audio = model.encode_audio(*pad_audio([prepared.audio_features]))
        with clock.stage("prefill"):
            embeds, _ = model.splice([prepared.input_ids], images, audio, None, [getattr(query, "uid", "query")])
            cache = DynamicCache(config=model.config)
            hidden = model.model(inputs_embeds=embeds[0][None], past_key_values=cache,
                                 use_cache=True).last_hidden_state[:, -1]
            token = self._choose(hidden, [])
        clock.mark("first_text_token")
        state = _AnswerState(self, clock, seed, on_text, on_audio)
        tokens, stops = [token], stop_ids(engine.tokenizer, stop)
        while True:
            tail = engine.tokenizer.decode(tokens[-STOP_WINDOW:], skip_special_tokens=False)
            done = token in stops or any(s and s in tail for s in stop) or len(tokens) >= max_new_tokens
            state.on_token(tokens, done)
            if done:
                break
            with clock.stage("first_text_chunk" if self.speaker and not state.segments else "decode"):
                step = torch.tensor([[token]], device=model.device)
                hidden = model.model(input_ids=step, past_key_values=cache, use_cache=True).last_hidden_state[:, -1]
                token = self._choose(hidden, tokens)
            tokens.append(token)
        clock.mark("done")
        gen = finish_generation(engine.tokenizer, tokens, len(embeds[0]), [], tuple(stop))
        timings = Timings(dict(clock.stages), dict(clock.events), state.chunks,
                          self.speaker.sample_rate if self.speaker else 24000, dict(clock.counts),
                          clock.snapshots.get("first_audio", {}))
        wave = np.concatenate(state.pieces) if state.pieces else (np.zeros(0, np.float32) if self.speaker else None)
        return Answer(prepared.prompt, gen.raw, gen.answer, gen.n_prompt_tokens, gen.n_new_tokens, timings,
                      state.segments, wave)


class _AnswerState:
    """Per-request bookkeeping: streamed text, segments, spoken chunks."""

    def __init__(self, owner: StreamingAnswerer, clock: Clock, seed: int, on_text, on_audio) -> None:
        self.owner, self.clock = owner, clock
        self.on_text, self.on_audio = on_text, on_audio
        self.shown = ""
        self.segments: list[str] = []
        self.chunks: list[AudioChunk] = []
        self.pieces: list[np.ndarray] = []
        speaker = owner.speaker
        self.segmenter = Segmenter(speaker.policy) if speaker else None
        self.generator = speaker.generator(seed) if speaker else None
        self.n_sentences = 0

    def on_token(self, tokens: list[int], done: bool) -> None:
        text = display_text(self.owner.engine.tokenizer, tokens)
        if text.startswith(self.shown) and len(text) > len(self.shown):
            if self.on_text:
                self.on_text(text[len(self.shown):])
            self.shown = text
        if self.segmenter is None:
            return
        segment = self.segmenter.flush(text) if done else self.segmenter.feed(text)
        if segment is not None:
            self._speak(segment)

    def _speak(self, segment: str) -> None:
        self.segments.append(segment)
        self.clock.mark("first_text_chunk")
        speaker = self.owner.speaker
        for sentence, piece in speaker.speak(segment, self.clock, self.generator, self.n_sentences):
            self.n_sentences = sentence + 1
            t = self.clock.mark("first_audio") if not self.chunks else self.clock.now()
            self.chunks.append(AudioChunk(len(self.chunks), t, len(piece), sentence))
            self.clock.events["last_audio"] = t
            self.pieces.append(piece)
            if self.on_audio:
                self.on_audio(piece)
