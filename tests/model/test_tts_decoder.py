"""Speech decoder inference: KV-cached steps, determinism, seeded sampling, special ids."""

import pytest
import torch
from vita15.tts.checkpoint import SIZES
from vita15.tts.decoder import DecoderConfig, LLM2TTSCodecAR, pick_token


@pytest.fixture(scope="module")
def decoder() -> LLM2TTSCodecAR:
    torch.manual_seed(0)
    return LLM2TTSCodecAR(SIZES["tiny"][0]).eval()


@pytest.fixture(scope="module")
def hidden() -> torch.Tensor:
    return torch.randn(1, 12, SIZES["tiny"][0].idim, generator=torch.Generator().manual_seed(1))


def test_token_ids_follow_odim(decoder: LLM2TTSCodecAR) -> None:
    assert (decoder.bos_id, decoder.sos_id, decoder.eos_id, decoder.pad_id) == (1024, 1025, 1026, 1027)
    assert decoder.embedding.padding_idx == 1027
    assert len(decoder.layers_pre_nn) == 1 and len(decoder.layers) == 2 and len(decoder.layers_prefix) == 2


def test_cached_steps_match_teacher_forced_forward(decoder: LLM2TTSCodecAR, hidden: torch.Tensor) -> None:
    codes = decoder.generate(hidden, greedy=True, max_tokens=15)
    assert codes.numel() > 0
    with torch.no_grad():
        logits = decoder(hidden, codes[None])[0]
        cache, offset = decoder.encode_prefix(hidden)
        token = decoder.sos_id
        for j in range(codes.numel()):
            step = decoder.step_logits(token, cache, offset)
            torch.testing.assert_close(step, logits[j], atol=1e-4, rtol=1e-4)
            token = int(codes[j])
    assert torch.equal(logits[:-1].argmax(-1), codes)


def test_greedy_is_deterministic(decoder: LLM2TTSCodecAR, hidden: torch.Tensor) -> None:
    a = decoder.generate(hidden, greedy=True, max_tokens=20)
    b = decoder.generate(hidden, greedy=True, max_tokens=20)
    assert torch.equal(a, b)


def test_sampling_repeats_with_same_seed(decoder: LLM2TTSCodecAR, hidden: torch.Tensor) -> None:
    def run(seed: int) -> torch.Tensor:
        return decoder.generate(hidden, generator=torch.Generator().manual_seed(seed), max_tokens=30)

    first, again, other = run(3), run(3), run(4)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert int(first.max()) < 1024


def test_top_k_sampling_only_draws_top_candidates() -> None:
    logits = torch.tensor([0.0, 5.0, 4.0, -1.0, 3.0])
    gen = torch.Generator().manual_seed(0)
    drawn = {pick_token(logits, top_k=2, greedy=False, generator=gen) for _ in range(50)}
    assert drawn == {1, 2}
    assert pick_token(logits, top_k=2, greedy=True, generator=None) == 1


def test_stops_at_eos_and_max_tokens() -> None:
    torch.manual_seed(0)
    cfg = DecoderConfig(idim=16, attention_dim=16, attention_heads=2, linear_units=32, num_blocks=2,
                        encoder_output_dim=16, kv_cache_prefix_finetune=0)
    dec = LLM2TTSCodecAR(cfg).eval()
    x = torch.randn(1, 4, 16)
    assert dec.generate(x, greedy=True, max_tokens=7).numel() == 7
    with torch.no_grad():
        dec.out_fnn.bias[dec.eos_id] = 1e4
    assert dec.generate(x, greedy=True).numel() == 0


def test_prefix_conditioning_changes_output(decoder: LLM2TTSCodecAR, hidden: torch.Tensor) -> None:
    prefix = torch.randn(1, 5, hidden.shape[-1], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = decoder.step_logits(decoder.sos_id, *decoder.encode_prefix(hidden))
        cache, offset = decoder.encode_prefix(hidden, prefix)
        assert offset == 5 and cache.get_seq_length() == 5 + hidden.shape[1] + 1
        conditioned = decoder.step_logits(decoder.sos_id, cache, offset)
    assert not torch.allclose(plain, conditioned)


def test_rejects_wrong_input_width(decoder: LLM2TTSCodecAR) -> None:
    with pytest.raises(ValueError, match="decoder input"):
        decoder.generate(torch.randn(1, 3, 7), greedy=True)
