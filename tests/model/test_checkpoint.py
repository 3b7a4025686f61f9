"""Official-layout checkpoints: clean load, round trip, random_init folders, and error messages."""
import json
import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from vita15.checkpoint import CheckpointError, build_random, load_vita, write_checkpoint
from vita15.configuration_vita import AUDIO_FOLDER, VISION_FOLDER, resolve_audio_config, tiny_config
from vita15.conversation import IMAGE_TOKEN_INDEX


def _link_copy(src, dst, skip=()):
    """Copy a checkpoint folder cheaply: small files copied, shards symlinked."""
    dst.mkdir()
    for item in src.iterdir():
        if item.name in skip:
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name)
        elif item.suffix == ".safetensors":
            (dst / item.name).symlink_to(item)
        else:
            shutil.copyfile(item, dst / item.name)
    return dst


def test_layout(tiny_ckpt):
    names = {p.name for p in tiny_ckpt.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json", "vocab.json",
            "merges.txt", "tokenizer_config.json", AUDIO_FOLDER, VISION_FOLDER} <= names
    assert len([n for n in names if n.endswith(".safetensors")]) > 1
    assert (tiny_ckpt / AUDIO_FOLDER / "train.yaml").is_file() and (tiny_ckpt / AUDIO_FOLDER / "global_cmvn").is_file()
    assert json.loads((tiny_ckpt / "config.json").read_text())["model_type"] == "vita-Qwen2"


def test_round_trip_gives_identical_logits(tiny_ckpt):
    loaded, tokenizer = load_vita(tiny_ckpt, "cpu", "fp32")
    fresh = build_random(tiny_config(), "cpu", torch.float32, seed=0)
    assert len(tokenizer) == 151665
    ids = torch.tensor([[151644, 872, 198, IMAGE_TOKEN_INDEX, 13048, 151645]])
    pixels = torch.randn(1, 3, 448, 448)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids, pixel_values=pixels).logits, fresh(input_ids=ids, pixel_values=pixels).logits)


def test_missing_audio_yaml_falls_back_with_warning(tmp_path, caplog):
    llm = tiny_config().llm
    (tmp_path / AUDIO_FOLDER).mkdir()
    with caplog.at_level(logging.WARNING):
        audio = resolve_audio_config(llm, tmp_path)
    assert "train.yaml not found" in caplog.text and "full attention, dither 0" in caplog.text
    assert audio.mask_mode == "full" and audio.dither == 0.0 and audio.llm_hidden == llm.hidden_size


def test_random_init_folder_with_tts(tmp_path):
    path = write_checkpoint(tmp_path / "ri", tiny_config(), seed=3, with_weights=False, with_tts=True)
    for part in ("decoder", "codec"):
        assert (path / "vita_tts_ckpt" / part / "model.json").is_file() and (path / "vita_tts_ckpt" / part / "final.pt").is_file()
    assert json.loads((path / "random_init.json").read_text()) == {"seed": 3}
    assert not list(path.glob("*.safetensors"))
    model, _ = load_vita(path, "cpu", "bf16")
    ref = build_random(tiny_config(), "cpu", torch.bfloat16, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True))
    assert model.dtype == torch.bfloat16


def test_stored_152064_rows_are_accepted(tmp_path):
    cfg = tiny_config()
    cfg.llm.vocab_size = 152064
    path = write_checkpoint(tmp_path / "big_vocab", cfg, seed=0, dtype=torch.bfloat16)
    (path / "config.json").write_text((path / "config.json").read_text().replace("152064", "151665"))
    model, tokenizer = load_vita(path)
    assert model.lm_head.weight.shape[0] == 152064 and model.config.vocab_size == 152064


def test_missing_shard_names_file_and_key(tiny_ckpt, tmp_path):
    shard = sorted(tiny_ckpt.glob("model-*.safetensors"))[-1]
    broken = _link_copy(tiny_ckpt, tmp_path / "ms", skip={shard.name})
    with pytest.raises(CheckpointError, match=rf"{shard.name}: shard missing .* for key "):
        load_vita(broken)


def test_shape_mismatch_unexpected_and_missing_keys(tiny_ckpt, tmp_path):
    state = {}
    for shard in sorted(tiny_ckpt.glob("model-*.safetensors")):
        state.update(load_file(shard))
    base = _link_copy(tiny_ckpt, tmp_path / "sm", skip={p.name for p in tiny_ckpt.glob("model*")})
    key = "model.mm_projector.0.weight"
    bad = dict(state, **{key: torch.zeros(3, 3)})
    save_file(bad, str(base / "model.safetensors"))
    with pytest.raises(CheckpointError, match=rf"model.safetensors: key {key} has shape \[3, 3\]"):
        load_vita(base)
    save_file(dict(state, extra=torch.zeros(1)), str(base / "model.safetensors"))
    with pytest.raises(CheckpointError, match="model.safetensors: unexpected key extra"):
        load_vita(base)
    save_file({k: v for k, v in state.items() if k != key}, str(base / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"missing key {key}"):
        load_vita(base)


def test_wrong_model_type(tiny_ckpt, tmp_path):
    broken = _link_copy(tiny_ckpt, tmp_path / "mt")
    cfg = json.loads((broken / "config.json").read_text())
    cfg["model_type"] = "qwen2"
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config.json: model_type is 'qwen2', expected 'vita-Qwen2'"):
        load_vita(broken)
