"""Whale audio encoder + adapter: checkpoint layout, masks, padding invariance, lengths, train.yaml."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vita15.audio_features import AudioError, llm_length
from vita15.audio_whale import (
    MAX_AUDIO_SECONDS,
    MAX_FBANK_FRAMES,
    AudioEncoder,
    RelPositionAttention,
    WhaleConfig,
    attention_mask,
    chunk_mask,
    fused_attention,
    pad_mask,
    read_global_cmvn,
    write_global_cmvn,
)

REFERENCE = Path("/work/shared/reference/vita15_state_dict.json")
PREFIX = "model.audio_encoder."


def _tiny(mode: str = "full", chunk: int = -1, left: int = -1, seed: int = 0) -> AudioEncoder:
    torch.manual_seed(seed)
    cfg = WhaleConfig.tiny(llm_hidden=48)
    cfg = WhaleConfig(**{**cfg.__dict__, "mask_mode": mode, "chunk_size": chunk, "left_chunks": left})
    model = AudioEncoder(cfg).eval()
    with torch.no_grad():  # non-trivial CMVN so the buffers take part
        model.set_global_cmvn(torch.randn(80), torch.rand(80) + 0.5)
    return model


# --------------------------------------------------------------------------- layout


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference state-dict dump not available")
def test_state_dict_matches_vita15_checkpoint_layout() -> None:
    keys = json.loads(REFERENCE.read_text())["keys"]
    want = {k[len(PREFIX) :]: list(v) for k, v in keys.items() if k.startswith(PREFIX)}
    with torch.device("meta"):
        model = AudioEncoder(WhaleConfig.vita15_default())
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == want
    buffers = dict(model.named_buffers())
    assert set(buffers) == {"encoder.global_cmvn.mean", "encoder.global_cmvn.istd"}
    assert isinstance(model.adpter.bn2, torch.nn.LayerNorm) and model.adpter.bn2.eps == 1e-3


def test_tiny_config_is_small_and_same_architecture() -> None:
    model = AudioEncoder(WhaleConfig.tiny(llm_hidden=64))
    n = sum(p.numel() for p in model.parameters())
    assert 20_000 < n < 1_000_000
    with torch.device("meta"):
        big = AudioEncoder(WhaleConfig.vita15_default(llm_hidden=64))
    strip = lambda k: ".".join(p for p in k.split(".") if not p.isdigit())  # noqa: E731
    assert {strip(k) for k in model.state_dict()} == {strip(k) for k in big.state_dict()}


# --------------------------------------------------------------------------- masks


def _formula(size: int, c: int, left: int) -> np.ndarray:
    out = np.zeros((size, size), bool)
    for i in range(size):
        start = 0 if left < 0 else max((i // c - left) * c, 0)
        out[i, start : min((i // c + 1) * c, size)] = True
    return out


@pytest.mark.parametrize(("c", "left"), [(1, -1), (3, -1), (3, 0), (3, 1), (4, 2), (20, 1)])
def test_chunk_mask_formula(c: int, left: int) -> None:
    assert np.array_equal(chunk_mask(11, c, left).numpy(), _formula(11, c, left))


def test_static_and_full_masks_and_with_padding() -> None:
    valid = pad_mask(torch.tensor([9, 5]), 9)
    assert valid.shape == (2, 1, 9)
    assert torch.equal(attention_mask(valid, "full", -1, -1), valid)
    static = attention_mask(valid, "static_chunk", 4, 1)
    expect = torch.from_numpy(_formula(9, 4, 1))[None] & valid
    assert static.shape == (2, 9, 9) and torch.equal(static, expect)
    assert not static[1, :, 5:].any()


def _wenet_dynamic(size: int, gen: torch.Generator) -> np.ndarray:
    """WeNet add_optional_chunk_mask(use_dynamic_chunk, use_dynamic_left_chunk, 0, 0, -1), as written upstream."""
    chunk = int(torch.randint(1, size, (1,), generator=gen))
    left = -1
    if chunk > size // 2:
        chunk = size
    else:
        chunk = chunk % 25 + 1
        left = int(torch.randint(0, (size - 1) // chunk, (1,), generator=gen))
    return _formula(size, chunk, left)


@pytest.mark.parametrize("size", [3, 7, 30, 120])
def test_dynamic_chunk_mask_follows_wenet_draws(size: int) -> None:
    valid = torch.ones(1, 1, size, dtype=torch.bool)
    seen = set()
    for seed in range(25):
        got = attention_mask(valid, "dynamic_chunk", -1, -1, torch.Generator().manual_seed(seed))[0].numpy()
        want = _wenet_dynamic(size, torch.Generator().manual_seed(seed))
        assert np.array_equal(got, want), seed
        seen.add(got.tobytes())
    assert len(seen) > 1  # it really is random


def test_dynamic_chunk_degenerate_sizes_use_full_attention() -> None:
    for size in (1, 2):
        valid = torch.ones(1, 1, size, dtype=torch.bool)
        assert attention_mask(valid, "dynamic_chunk", -1, -1).all()


def test_static_chunk_blocks_future_context_full_does_not() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 16, 32)
    x2 = x.clone()
    x2[:, 8:] += 1.0  # change encoder frames of chunks 2 and 3 (chunk 4)
    valid = torch.ones(1, 1, 16, dtype=torch.bool)
    for mode, unaffected in (("static_chunk", True), ("full", False)):
        transformer = _tiny(mode, chunk=4, left=1).encoder.enc[1]
        with torch.no_grad():
            a, b = transformer(x, valid), transformer(x2, valid)
        assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6) == unaffected


def test_positional_term_depends_on_absolute_key_index_only() -> None:
    torch.manual_seed(0)
    attn = RelPositionAttention(16, 2)
    with torch.no_grad():
        attn.linear_k.weight.zero_(), attn.linear_k.bias.zero_()  # only the positional term remains
        attn.linear_q.weight.zero_()  # every query is the bias: identical rows, values still differ
        x = torch.randn(1, 6, 16)
        pos = torch.randn(1, 6, 16)
        out = attn(x, torch.ones(1, 1, 6, dtype=torch.bool), pos)
        uniform = attn.linear_out(attn.linear_v(x).mean(1, keepdim=True)).expand_as(out)
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-6)  # no rel_shift: rows identical
    assert not torch.allclose(out, uniform, atol=1e-4)  # and the position term is not a no-op


# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize(("mode", "chunk", "left"), [("full", -1, -1), ("static_chunk", 4, 2)])
def test_padded_batch_rows_equal_single_runs(mode: str, chunk: int, left: int) -> None:
    model = _tiny(mode, chunk, left)
    lengths = [233, 101, 16]
    feats = [torch.randn(t, 80) * 3 + 5 for t in lengths]
    batch = torch.randn(len(lengths), max(lengths), 80) * 100  # garbage in the padding
    for i, f in enumerate(feats):
        batch[i, : len(f)] = f
    with torch.no_grad():
        out, out_len = model(batch, torch.tensor(lengths))
        assert out.shape == (3, llm_length(max(lengths)), 48)
        assert out_len.tolist() == [llm_length(t) for t in lengths]
        for i, f in enumerate(feats):
            alone, alone_len = model(f[None], torch.tensor([len(f)]))
            assert alone.shape[1] == alone_len.item() == llm_length(len(f))
            torch.testing.assert_close(out[i, : alone.shape[1]], alone[0], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize(("mode", "chunk", "left"), [("full", -1, -1), ("static_chunk", 4, 2)])
def test_fused_attention_equals_upstream_scores(mode: str, chunk: int, left: int) -> None:
    """The fast engine's one-SDPA relative-position attention gives upstream's outputs (fp32), padding
    rows included: an all-padding row (length 0) is finite and equal too."""
    model = _tiny(mode, chunk, left)
    lengths = torch.tensor([233, 101, 0])
    batch = torch.randn(3, 233, 80, generator=torch.Generator().manual_seed(3)) * 3 + 5
    with torch.no_grad():
        upstream, n = model(batch, lengths)
        with fused_attention():
            fused, n_fused = model(batch, lengths)
    assert torch.equal(n, n_fused) and torch.isfinite(fused).all()
    torch.testing.assert_close(fused, upstream, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("t", [7, 8, 9, 10, 98, 100, 101, 398])
def test_output_length_is_ceil_half_of_subsampled(t: int) -> None:
    model = _tiny()
    with torch.no_grad():
        out, n = model(torch.randn(1, t, 80), torch.tensor([t]))
    sub = ((t - 1) // 2 - 1) // 2
    assert out.shape[1] == math.ceil(sub / 2) == n.item() == llm_length(t)


def test_reduced_precisions_track_fp32() -> None:
    model = _tiny()
    feats, lens = torch.randn(2, 120, 80), torch.tensor([120, 77])
    with torch.no_grad():
        ref, ref_len = model(feats, lens)
        for dtype in (torch.bfloat16, torch.float16):
            out, n = model.to(dtype)(feats, lens)
            assert out.dtype == dtype and torch.equal(n, ref_len)
            assert torch.isfinite(out).all()
            assert (out.float() - ref).abs().max() < 0.15 * ref.abs().max()
            model.float()


def test_too_long_audio_is_a_clear_error_and_the_limit_itself_works() -> None:
    assert 200.0 < MAX_AUDIO_SECONDS < 200.1
    with torch.device("meta"):
        model = AudioEncoder(WhaleConfig.tiny(llm_hidden=8))
        out, _ = model(torch.zeros(1, MAX_FBANK_FRAMES, 80), torch.tensor([MAX_FBANK_FRAMES]))
        assert out.shape == (1, 2500, 8)
        with pytest.raises(AudioError, match=r"max 200\.0\d s"):
            model(torch.zeros(1, MAX_FBANK_FRAMES + 1, 80), torch.tensor([MAX_FBANK_FRAMES + 1]))


# --------------------------------------------------------------------------- CMVN and train.yaml


def test_global_cmvn_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.normal(3.0, 2.0, size=(500, 80))
    frames[:, 0] = 7.0  # zero variance -> floored at 1e-20
    path = tmp_path / "global_cmvn"
    write_global_cmvn(path, frames.sum(0), (frames**2).sum(0), len(frames))
    mean, istd = read_global_cmvn(path)
    assert mean.dtype == istd.dtype == torch.float32 and mean.shape == (80,)
    np.testing.assert_allclose(mean.numpy(), frames.mean(0), rtol=1e-5)
    np.testing.assert_allclose(istd[1:].numpy(), 1 / frames[:, 1:].std(0), rtol=1e-4)
    assert istd[0].item() == pytest.approx(1e10, rel=1e-3)
    model = _tiny()
    with torch.no_grad():
        model.set_global_cmvn(mean, istd)
    x = torch.randn(2, 5, 80)
    assert torch.allclose(model.encoder.global_cmvn(x), (x - mean) * istd)


def test_read_global_cmvn_bad_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "cmvn.json"
    bad.write_text('{"mean_stat": [1, 2]}')
    with pytest.raises(ValueError, match="cmvn.json"):
        read_global_cmvn(bad)


@pytest.mark.parametrize(
    ("mode", "chunk", "left", "dither"),
    [("full", -1, -1, 0.0), ("static_chunk", 4, 16, 0.0), ("dynamic_chunk", -1, -1, 1.0)],
)
def test_train_yaml_round_trip(tmp_path: Path, mode: str, chunk: int, left: int, dither: float) -> None:
    cfg = WhaleConfig(mask_mode=mode, chunk_size=chunk, left_chunks=left, dither=dither)
    path = tmp_path / "train.yaml"
    cfg.to_train_yaml(path)
    assert WhaleConfig.from_train_yaml(path, llm_hidden=3584) == cfg
    raw = yaml.safe_load(path.read_text())
    assert set(raw) == {"input_dim", "is_json_cmvn", "encoder_conf", "model_conf", "dataset_conf"}
    assert raw["encoder_conf"]["overview_conf"]["encoder-layer-config"] == "subsampling-transformer"
    assert raw["dataset_conf"]["fbank_conf"]["dither"] == dither
    tiny = WhaleConfig.tiny(llm_hidden=48)
    tiny.to_train_yaml(path)
    assert WhaleConfig.from_train_yaml(path, llm_hidden=48) == tiny


FREEZE_OMNI_STYLE = """
input_dim: 80
output_dim: 5538
is_json_cmvn: true
encoder_conf:
  overview_conf:
    encoder-input-dim: 80
    encoder-output-dim: 1024
    encoder-layer-config: subsampling-transformer
  para_conf:
    subsampling:
      subsampling-rate: 4
      subsampling-input-dim: 80
      subsampling-output-dim: 1024
    transformer:
      transformer-input-dim: 1024
      transformer-output-dim: 1024
      transformer-attention-dim: 1024
      transformer-attention-heads: 16
      transformer-linear-units: 4096
      transformer-num-blocks: 24
      transformer-input-layer: linear
      transformer-pos-enc-class: rel-enc
      transformer-normalize-before: true
      transformer-chunk_size: 4
      transformer-left_chunks: 16
      transformer-dynamic-chunks: false
model_conf:
  llm_path: ""
  enc_out_dim: 1024
  llm_embed_dim: 3584
  kernel_size: 5
  adpter_type: subsampling
  activation_func: gelu
  norm: layer
dataset_conf:
  fbank_conf: {num_mel_bins: 80, frame_shift: 10, frame_length: 25, dither: 0.0}
  resample_conf: {resample_rate: 16000}
"""


def test_from_upstream_style_yaml_and_argparse_defaults(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(FREEZE_OMNI_STYLE)
    cfg = WhaleConfig.from_train_yaml(path, llm_hidden=3584)
    assert (cfg.mask_mode, cfg.chunk_size, cfg.left_chunks, cfg.dither) == ("static_chunk", 4, 16, 0.0)
    assert (cfg.d_model, cfg.heads, cfg.ffn, cfg.blocks, cfg.adapter_hidden) == (1024, 16, 4096, 24, 2048)
    path.write_text(FREEZE_OMNI_STYLE.replace("      transformer-dynamic-chunks: false\n", ""))
    assert WhaleConfig.from_train_yaml(path, llm_hidden=3584).mask_mode == "dynamic_chunk"  # argparse default
    path.write_text(FREEZE_OMNI_STYLE.replace("chunk_size: 4", "chunk_size: -1"))
    assert WhaleConfig.from_train_yaml(path, llm_hidden=3584).mask_mode == "full"


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("chunk_size: 4", "chunk_size: 0", "chunk_size 0"),
        ("rel-enc", "abs-enc", "pos-enc-class"),
        ("norm: layer", "norm: batch", "norm"),
        ("llm_embed_dim: 3584", "llm_embed_dim: 4096", "llm_embed_dim"),
        ("encoder_conf:", "encoder_confX:", "encoder_conf"),
        ("  adpter_type: subsampling\n", "", "adpter_type='cnn'"),  # upstream's default adapter
    ],
)
def test_bad_train_yaml_names_the_file(tmp_path: Path, old: str, new: str, match: str) -> None:
    path = tmp_path / "bad_train.yaml"
    path.write_text(FREEZE_OMNI_STYLE.replace(old, new))
    with pytest.raises(ValueError, match=f"bad_train.yaml.*{match}"):
        WhaleConfig.from_train_yaml(path, llm_hidden=3584)
