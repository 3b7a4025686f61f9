"""Full-size decoder/codec parameter names and shapes equal the released checkpoint layout."""

import json
from pathlib import Path

import pytest
import torch
from vita15.tts.codec import CodecConfig, TiCodec, stored_state_dict
from vita15.tts.decoder import DecoderConfig, LLM2TTSCodecAR

REFERENCE = Path("/work/shared/reference/vita15_tts_state_dict.json")


@pytest.fixture(scope="module")
def reference() -> dict:
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not available")
    return json.loads(REFERENCE.read_text())


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def _expected(reference: dict, section: str) -> dict[str, list[int]]:
    return {e["key"]: e["shape"] for e in reference[section]["entries"]}


@pytest.mark.parametrize("kv_prefix", [0, 1])
def test_decoder_layout_matches_release(reference: dict, kv_prefix: int) -> None:
    with torch.device("meta"):
        decoder = LLM2TTSCodecAR(DecoderConfig(kv_cache_prefix_finetune=kv_prefix))
    section = f"decoder_kv_cache_prefix_finetune={kv_prefix}"
    assert _shapes(decoder.state_dict()) == _expected(reference, section)
    assert sum(p.numel() for p in decoder.parameters()) == reference[section]["n_params"]


@pytest.mark.parametrize("part", ["generator", "quantizer", "encoder"])
def test_codec_layout_matches_release(reference: dict, part: str) -> None:
    with torch.device("meta"):
        codec = TiCodec(CodecConfig())
    stored = stored_state_dict(getattr(codec, part))
    assert _shapes(stored) == _expected(reference, f"codec.{part}")
    if part == "generator":
        assert "conv_pre.weight_g" in stored and "conv_pre.weight" not in stored
    buffers = sum(b.numel() for b in getattr(codec, part).buffers())  # BatchNorm statistics
    counted = sum(v.numel() for v in stored.values()) - buffers
    assert counted == reference[f"codec.{part}"]["n_params"]
