"""TiCodec: 600 samples per code, weight-norm layout conversion, encoder path."""

import pytest
import torch
from vita15.tts.checkpoint import SIZES
from vita15.tts.codec import (
    GLOBAL_TOKENS,
    TiCodec,
    fold_weight_norm,
    stored_state_dict,
    weight_norm_layers,
)


@pytest.fixture(scope="module")
def codec() -> TiCodec:
    torch.manual_seed(0)
    return TiCodec(SIZES["tiny"][1]).eval()


def test_hop_and_global_tokens(codec: TiCodec) -> None:
    assert codec.hop_length == 600 and codec.cfg.sampling_rate == 24000
    assert codec.cfg.global_tokens == GLOBAL_TOKENS == (473, 975, 419, 219, 565, 121, 550, 616)
    assert codec.generator.global_stages == {1}


@pytest.mark.parametrize("n_codes", [1, 7, 25])
def test_decode_gives_600_samples_per_code(codec: TiCodec, n_codes: int) -> None:
    wave = codec.decode(torch.randint(0, 1024, (n_codes,), generator=torch.Generator().manual_seed(n_codes)))
    assert wave.shape == (1, 1, 600 * n_codes)
    assert float(wave.abs().max()) <= 1.0 and float(wave.abs().max()) > 0


def test_global_tokens_change_the_voice(codec: TiCodec) -> None:
    codes = torch.randint(0, 1024, (1, 6, 1), generator=torch.Generator().manual_seed(0))
    other = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    assert not torch.allclose(codec.decode(codes), codec.decode(codes, other))


def test_weight_norm_round_trip(codec: TiCodec) -> None:
    gen = codec.generator
    stored = stored_state_dict(gen)
    names = weight_norm_layers(gen)
    assert "conv_pre" in names and "ups.0" in names and "resblocks.0.convs1.0" in names
    assert stored["ups.0.weight_g"].shape == (gen.ups[0].weight.shape[0], 1, 1)
    # Rescaling v leaves the folded weight unchanged (weight = g * v / |v|).
    stored = {k: v * 3.0 if k.endswith("weight_v") else v for k, v in stored.items()}
    folded = fold_weight_norm(gen, stored)
    for key, value in gen.state_dict().items():
        torch.testing.assert_close(folded[key], value, atol=1e-6, rtol=1e-5)


def test_encoder_produces_codes_at_codec_rate(codec: TiCodec) -> None:
    wave = torch.randn(1, 600 * 5, generator=torch.Generator().manual_seed(0)) * 0.1
    codes, global_tokens = codec.encode(wave)
    assert codes.shape == (1, 5, 1) and global_tokens.shape == (1, 8)
    assert int(codes.max()) < 1024 and int(global_tokens.max()) < 1024
    assert codec.decode(codes, global_tokens).shape == (1, 1, 3000)
