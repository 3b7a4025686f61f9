"""The static-cache speech decoder gives the reference decoder's codes (greedy and sampled)."""
import torch

from vita15.tts.decoder import DecoderConfig, LLM2TTSCodecAR
from vita15.tts.fast_decoder import FastDecoder

TINY = DecoderConfig(idim=32, attention_dim=32, attention_heads=2, linear_units=64, num_blocks=2, encoder_output_dim=32)


def _decoder() -> LLM2TTSCodecAR:
    torch.manual_seed(0)
    return LLM2TTSCodecAR(TINY).eval()


def test_greedy_codes_equal_reference() -> None:
    decoder = _decoder()
    hidden = torch.randn(1, 9, 32, generator=torch.Generator().manual_seed(1))
    reference = list(decoder.infer(hidden, greedy=True, max_tokens=120))
    fast = FastDecoder(decoder, capacity=256)
    assert list(fast.infer(hidden, greedy=True, max_tokens=120)) == reference
    # the buffers are reused: a second, shorter utterance is not disturbed by the first
    short = hidden[:, :4]
    assert list(fast.infer(short, greedy=True, max_tokens=50)) == list(decoder.infer(short, greedy=True, max_tokens=50))


def test_sampled_codes_equal_reference_with_the_same_generator() -> None:
    decoder = _decoder()
    hidden = torch.randn(1, 6, 32, generator=torch.Generator().manual_seed(2))
    a = list(decoder.infer(hidden, top_k=2, generator=torch.Generator().manual_seed(5), max_tokens=80))
    b = list(FastDecoder(decoder).infer(hidden, top_k=2, generator=torch.Generator().manual_seed(5), max_tokens=80))
    assert a == b and len(a) == 80


def test_cache_capacity_bounds_the_utterance() -> None:
    decoder = _decoder()
    hidden = torch.randn(1, 5, 32)
    codes = list(FastDecoder(decoder, capacity=16).infer(hidden, greedy=True, max_tokens=100))
    assert len(codes) == 16 - 6  # BOS + 5 prefix positions fill the rest
