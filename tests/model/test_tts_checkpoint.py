"""vita_tts_ckpt write → load round trip and clear errors for broken checkpoints."""

import json
import logging
from pathlib import Path

import pytest
import torch

from vita15.tts.checkpoint import TTSCheckpointError, absent_codec_parts, load_codec, load_tts, write_tts_checkpoint
from vita15.tts.codec import CodecConfig
from vita15.tts.decoder import DecoderConfig


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tts_checkpoint(tmp_path_factory.mktemp("tts") / "vita_tts_ckpt", seed=3)


def test_layout_on_disk(ckpt: Path) -> None:
    for sub in ("decoder", "codec"):
        assert (ckpt / sub / "model.json").is_file() and (ckpt / sub / "final.pt").is_file()
    idim, odim, args = json.loads((ckpt / "decoder" / "model.json").read_text())
    assert (idim, odim) == (args["idim"], args["odim"]) and odim == 1024
    assert args["transformer_num_blocks"] == 2 and args["kv_cache_prefix_finetune"] == 1
    codec_json = json.loads((ckpt / "codec" / "model.json").read_text())
    assert codec_json["upsample_rates"] == [8, 5, 5, 3] and codec_json["global_tokens"][0] == 473
    parts = torch.load(ckpt / "codec" / "final.pt", weights_only=True)
    assert set(parts) == {"generator", "quantizer", "encoder"}
    assert "conv_pre.weight_g" in parts["generator"] and "conv_pre.weight" not in parts["generator"]
    size = sum(f.stat().st_size for f in ckpt.rglob("*"))
    assert size < 8_000_000


def test_round_trip_restores_weights(ckpt: Path, tmp_path: Path) -> None:
    decoder, codec = load_tts(ckpt)
    assert not decoder.training and not codec.training
    stored = torch.load(ckpt / "decoder" / "final.pt", weights_only=True)
    for key, value in decoder.state_dict().items():
        assert torch.equal(value, stored[key]), key
    again = load_tts(write_tts_checkpoint(tmp_path / "again", seed=3))
    for a, b in zip(codec.state_dict().values(), again.codec.state_dict().values()):
        assert torch.equal(a, b)
    other = load_tts(write_tts_checkpoint(tmp_path / "other", seed=4))
    assert not torch.equal(decoder.embedding.weight, other.decoder.embedding.weight)


def test_configs_round_trip() -> None:
    cfg = DecoderConfig(idim=64, attention_dim=64, num_blocks=6)
    assert DecoderConfig.from_model_json(json.loads(json.dumps(cfg.to_model_json()))) == cfg
    codec_cfg = CodecConfig(code_dim=64)
    assert CodecConfig.from_json(json.loads(json.dumps(codec_cfg.to_json()))) == codec_cfg
    assert CodecConfig.from_json({"segment_size": 8000, "num_mels": 80}) == CodecConfig()


def test_missing_final_pt_is_named(ckpt: Path, tmp_path: Path) -> None:
    broken = write_tts_checkpoint(tmp_path / "broken")
    (broken / "codec" / "final.pt").unlink()
    with pytest.raises(TTSCheckpointError, match=r"codec[/\\]final\.pt: file not found"):
        load_tts(broken)


def test_wrong_decoder_key_is_named(tmp_path: Path) -> None:
    broken = write_tts_checkpoint(tmp_path / "broken")
    path = broken / "decoder" / "final.pt"
    state = torch.load(path, weights_only=True)
    state["layers.0.extra.weight"] = state.pop("norm.weight")
    torch.save(state, path)
    with pytest.raises(TTSCheckpointError, match=r"final\.pt: missing key 'norm\.weight'"):
        load_tts(broken)
    state["norm.weight"] = torch.ones(32)
    torch.save(state, path)
    with pytest.raises(TTSCheckpointError, match="unexpected key 'layers.0.extra.weight'"):
        load_tts(broken)


def test_wrong_codec_shape_is_named(tmp_path: Path) -> None:
    broken = write_tts_checkpoint(tmp_path / "broken")
    path = broken / "codec" / "final.pt"
    parts = torch.load(path, weights_only=True)
    parts["generator"]["conv_post.weight_v"] = torch.zeros(1, 2, 7)
    torch.save(parts, path)
    with pytest.raises(TTSCheckpointError, match=r"'generator\.conv_post\.weight_v' has shape \(1, 2, 7\)"):
        load_tts(broken)
    parts["generator"]["conv_post.weight_v"] = torch.zeros(1, 4, 7)
    del parts["quantizer"]
    torch.save(parts, path)
    with pytest.raises(TTSCheckpointError, match="missing section 'quantizer'"):
        load_tts(broken)


def _without_encoder(tmp_path: Path) -> Path:
    """A codec final.pt holding only generator + quantizer (what upstream's VQVAE loads without `with_encoder`)."""
    ckpt = write_tts_checkpoint(tmp_path / "vita_tts_ckpt", seed=3)
    path = ckpt / "codec" / "final.pt"
    parts = torch.load(path, weights_only=True)
    torch.save({k: parts[k] for k in ("generator", "quantizer")}, path)
    return ckpt


def test_codec_without_encoder_loads_for_inference_and_says_so(tmp_path: Path, caplog) -> None:
    full = load_tts(write_tts_checkpoint(tmp_path / "full", seed=3))
    with caplog.at_level(logging.WARNING, logger="vita15.tts.checkpoint"):
        codec = load_tts(_without_encoder(tmp_path)).codec
    assert codec.encoder is None and absent_codec_parts(codec) == ["encoder"] and absent_codec_parts(full.codec) == []
    assert "no 'encoder' section" in caplog.text and "decoding only" in caplog.text
    codes = torch.tensor([3, 1, 4, 1, 5])
    assert torch.equal(codec.decode(codes), full.codec.decode(codes))  # same generator + quantizer weights
    with pytest.raises(RuntimeError, match="without its encoder"):
        codec.encode(torch.zeros(1, 2400))


def test_training_still_requires_the_codec_encoder(tmp_path: Path) -> None:
    ckpt = _without_encoder(tmp_path)
    with pytest.raises(TTSCheckpointError, match="missing section 'encoder'.*training stages 3.1/3.2"):
        load_codec(ckpt)  # what stage 3.1's CodecObjective (and 3.2's TTSObjective) load


def test_unknown_size_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        write_tts_checkpoint(tmp_path / "x", size="huge")
