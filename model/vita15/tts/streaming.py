"""Chunked codec decoding with quiet-point splitting (§6.4, ``llm2TTS.run``).

Codes arrive one by one from the speech decoder. Windows of ``left + chunk + padding`` codes are
decoded; the ``left`` and right ``padding`` parts are only context and are cut off, so every code's
600 samples are emitted exactly once. Each decoded piece is cut at its quietest point (second half)
and the rest is held back, so seams fall into near-silence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from vita15.tts.codec import TiCodec

QUIET_WINDOW = 2401
LEADING_SILENCE = 0.03


def find_quiet_split(
    held: torch.Tensor, segment: torch.Tensor, window: int = QUIET_WINDOW, threshold: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Equivalent of upstream ``find_min_sum_index`` on 1-D waveforms.

    Returns ``(held, emitted)``: if the quietest ``window``-sample stretch in the second half of
    ``segment`` has mean |x| below ``threshold``, emit ``held + segment[:cut]`` (cut = quietest
    sample inside that stretch) and hold ``segment[cut:]``; otherwise hold everything and emit
    ``None``. A segment shorter than ``window`` (upstream would fail) is held whole.
    """
    n = segment.numel()
    if n < window:
        return torch.cat([held, segment]), None
    sums = F.conv1d(segment.abs().view(1, 1, -1), torch.ones(1, 1, window, dtype=segment.dtype)).view(-1)
    offset = n // 2 - window // 2
    min_sum, idx = torch.min(sums[offset:], dim=0)
    start = max(0, int(idx) + offset)
    # Upstream computes the end from the already-shifted start (idx counted twice); kept as is.
    end = min(n, int(idx) + window + start)
    cut = start + int(torch.argmin(segment[start:end].abs()))
    if float(min_sum) / window < threshold:
        return segment[cut:].clone(), torch.cat([held, segment[:cut]])
    return torch.cat([held, segment]), None


def stream_decode(
    codes: Iterable[int],
    codec: TiCodec,
    *,
    chunk_size: int = 40,
    padding: int = 10,
    window: int = QUIET_WINDOW,
    threshold: float = 0.01,
    first_chunk_size: int | None = None,
    first_threshold: float | None = None,
) -> Iterator[torch.Tensor]:
    """Yield 1-D float waveform pieces while ``codes`` (e.g. ``decoder.infer(...)``) are produced.

    The pieces concatenate to exactly ``hop · n_codes`` samples. Needs ``1 <= padding <= chunk_size``
    (the reference bookkeeping would skip codes otherwise). ``first_chunk_size`` / ``first_threshold``
    apply to the first window only (a first-chunk policy: fewer codes before the first sound, and
    ``first_threshold=inf`` cuts it at its quietest point instead of waiting for a quiet one);
    ``None`` keeps the reference values for every window.
    """
    first_chunk = chunk_size if first_chunk_size is None else first_chunk_size
    for size in {chunk_size, first_chunk}:
        if not 1 <= padding <= size:
            raise ValueError(f"need 1 <= padding <= chunk_size, got padding={padding}, chunk_size={size}")
    hop = codec.hop_length
    left = 0
    pending: list[int] = []
    held = torch.zeros(0)
    for code in codes:
        pending.append(int(code))
        first = left == 0
        if len(pending) < left + (first_chunk if first else chunk_size) + padding:
            continue
        wave = _decode(codec, pending)
        wave = wave[left * hop : wave.numel() - padding * hop]
        left = padding
        pending = pending[-(left + padding) :]
        cut = first_threshold if first and first_threshold is not None else threshold
        held, piece = find_quiet_split(held, wave, window, cut)
        if piece is not None:
            yield piece
    if pending:
        yield torch.cat([held, _decode(codec, pending)[left * hop :]])


def _decode(codec: TiCodec, codes: list[int]) -> torch.Tensor:
    return codec.decode(torch.tensor(codes, dtype=torch.long)).float().view(-1).cpu()


def trim_leading_silence(wave: torch.Tensor, level: float = LEADING_SILENCE) -> torch.Tensor:
    """Drop samples before the first |x| > level (the demos do this to every first-sentence piece)."""
    loud = torch.nonzero(wave.abs() > level)
    return wave[int(loud[0]) :] if loud.numel() else wave


def to_int16(wave: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float [-1, 1] → int16 PCM by ×32768 as the real-time server, clipped instead of wrapping."""
    x = np.asarray(wave, dtype=np.float32) * 32768.0
    return np.clip(x, -32768, 32767).astype(np.int16)


def as_pcm(pieces: Iterable[torch.Tensor], pcm: Literal["float", "int16"] = "float") -> Iterator[np.ndarray]:
    """Convert streamed pieces to numpy float32 or int16 chunks."""
    if pcm not in ("float", "int16"):
        raise ValueError(f"pcm must be 'float' or 'int16', got {pcm!r}")
    for piece in pieces:
        yield to_int16(piece) if pcm == "int16" else piece.numpy().astype(np.float32)
