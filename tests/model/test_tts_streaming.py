"""Chunked streaming decode and the quiet-point splitter."""

import numpy as np
import pytest
import torch
from vita15.tts.checkpoint import SIZES
from vita15.tts.codec import TiCodec
from vita15.tts.streaming import (
    as_pcm,
    find_quiet_split,
    stream_decode,
    to_int16,
    trim_leading_silence,
)

N_CODES = 33


@pytest.fixture(scope="module")
def codec() -> TiCodec:
    torch.manual_seed(0)
    return TiCodec(SIZES["tiny"][1]).eval()


@pytest.fixture(scope="module")
def codes() -> list[int]:
    return torch.randint(0, 1024, (N_CODES,), generator=torch.Generator().manual_seed(5)).tolist()


@pytest.fixture(scope="module")
def one_shot(codec: TiCodec, codes: list[int]) -> np.ndarray:
    return codec.decode(torch.tensor(codes)).view(-1).numpy()


def test_quiet_split_cuts_at_silence() -> None:
    seg = torch.ones(10000)
    seg[7000:7500] = 0.0
    seg[7200] = 0.0
    held, emitted = find_quiet_split(torch.full((3,), 0.5), seg, window=401, threshold=0.01)
    assert emitted is not None and held is not None
    assert emitted.numel() + held.numel() == 10003
    cut = emitted.numel() - 3
    assert 7000 <= cut < 7500 and torch.all(emitted[:3] == 0.5)


def test_quiet_split_holds_loud_or_short_segments() -> None:
    held, emitted = find_quiet_split(torch.zeros(2), torch.ones(5000), window=401, threshold=0.01)
    assert emitted is None and held.numel() == 5002
    held, emitted = find_quiet_split(torch.zeros(0), torch.zeros(100), window=401, threshold=0.01)
    assert emitted is None and held.numel() == 100


@pytest.mark.parametrize("chunk,padding", [(10, 10), (8, 3)])
def test_stream_total_length_and_closeness(
    codec: TiCodec, codes: list[int], one_shot: np.ndarray, chunk: int, padding: int
) -> None:
    pieces = [p.numpy() for p in stream_decode(iter(codes), codec, chunk_size=chunk, padding=padding, threshold=1.0)]
    assert len(pieces) > 2
    streamed = np.concatenate(pieces)
    assert streamed.shape == (600 * N_CODES,)
    diff = np.abs(streamed - one_shot)
    away = np.ones_like(diff, dtype=bool)
    for seam in range(chunk, N_CODES, chunk):
        away[max(0, (seam - 2) * 600) : (seam + 2) * 600] = False
    assert diff[away].max() < 1e-4
    assert diff.max() < 0.1 * np.abs(one_shot).max()


def test_stream_with_strict_threshold_still_emits_everything(codec: TiCodec, codes: list[int]) -> None:
    pieces = list(stream_decode(codes, codec, chunk_size=10, padding=5, threshold=0.0))
    assert len(pieces) == 1 and pieces[0].numel() == 600 * N_CODES


def test_stream_validates_sizes(codec: TiCodec) -> None:
    with pytest.raises(ValueError, match="padding"):
        list(stream_decode([1, 2, 3], codec, chunk_size=4, padding=10))


def test_pcm_conversions() -> None:
    wave = torch.tensor([0.0, 0.01, -0.5, 0.5, 1.0, -1.0])
    assert to_int16(wave).tolist() == [0, 327, -16384, 16384, 32767, -32768]
    assert trim_leading_silence(wave).tolist() == wave[2:].tolist()
    chunks = list(as_pcm([wave], "int16"))
    assert chunks[0].dtype == np.int16
    assert next(as_pcm([wave])).dtype == np.float32
    with pytest.raises(ValueError):
        list(as_pcm([wave], "int8"))  # type: ignore[arg-type]


def test_first_window_policy_emits_early_and_keeps_every_sample() -> None:
    """A small first window cut at once: sound after first_chunk + padding codes, nothing lost or repeated."""
    import math

    from vita15.tts.codec import CodecConfig, TiCodec

    torch.manual_seed(0)
    codec = TiCodec(CodecConfig(upsample_initial_channel=64, code_dim=64, encoder_base_channels=4,
                                global_feature_conv=(16, 8, 16, 3, 1)), with_encoder=False).eval()
    codes = [int(c) for c in torch.randint(0, 1024, (57,))]
    produced = []

    def source():
        for code in codes:
            produced.append(code)
            yield code

    pieces = stream_decode(source(), codec, chunk_size=20, padding=4, first_chunk_size=6, first_threshold=math.inf)
    first = next(pieces)
    assert len(produced) == 6 + 4 and 0 < first.numel() <= 6 * 600
    rest = list(pieces)
    assert first.numel() + sum(p.numel() for p in rest) == 600 * len(codes)
    whole = torch.cat([first, *rest])
    plain = torch.cat(list(stream_decode(iter(codes), codec, chunk_size=20, padding=4, threshold=math.inf)))
    assert whole.numel() == plain.numel()
