"""Each stage changes exactly its trainable modules: one optimizer step, state dicts compared."""
from __future__ import annotations

import pytest
import torch
from vita15.train.objectives import LMObjective, build_objective
from vita15.train.stages import apply_trainable, param_groups, phases

from .conftest import data_config

VITA_PARTS = {
    "llm": ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head."),
    "projector": ("model.mm_projector.",),
    "vit": ("model.vision_tower.",),
    "encoder": ("model.audio_encoder.encoder.",),
    "adapter": ("model.audio_encoder.adpter.",),
}
EXPECTED = {
    "1.1": {"projector"},
    "1.2": {"vit", "projector", "llm"},
    "1.3": {"llm", "projector"},
    "2.1-ctc": {"encoder"},
    "2.1-adapter": {"adapter"},
    "2.2": {"llm", "projector", "adapter"},
}


def _one_step(objective) -> None:
    """A plain AdamW step on a batch of the whole data set (every modality present)."""
    module = objective.module.train()
    optimizer = torch.optim.AdamW(param_groups(module, 1e-2, 0.0), lr=1e-2)
    batch = objective.collate([objective.dataset[i] for i in range(len(objective.dataset))])
    loss, _ = module(batch)
    loss.backward()
    optimizer.step()


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.parametrize("phase", [p for s in ("1.1", "1.2", "1.3", "2.1", "2.2") for p in phases(s)], ids=lambda p: p.name)
def test_vita_stage_changes_only_its_modules(phase, mini_data) -> None:
    files = ("asr.json",) if phase.objective == "ctc" else ("good.json",)
    cfg = {"data": data_config(mini_data, *files), "model": {"size": "tiny", "seed": 0}, "output_dir": "unused"}
    objective = build_objective(phase, cfg, None, distributed=False)
    vita = objective.module.vita
    before = {k: v.clone() for k, v in vita.state_dict().items()}
    _one_step(objective)
    changed = _changed(before, vita.state_dict())
    parts = {name for name, prefixes in VITA_PARTS.items() if any(k.startswith(prefixes) for k in changed)}
    assert parts == EXPECTED[phase.name]
    allowed = tuple(p for name in EXPECTED[phase.name] for p in VITA_PARTS[name])
    assert all(k.startswith(allowed) for k in changed)
    assert not any("global_cmvn" in k for k in changed)  # buffers are never trained


def test_lm_loss_equals_the_model_forward_loss(mini_data) -> None:
    phase = phases("2.2")[0]
    objective = LMObjective(phase, data_config(mini_data, "good.json"), {"size": "tiny", "seed": 1}, None, False)
    batch = objective.collate([objective.dataset[1], objective.dataset[2]])  # image + audio; the reference
    # forward materialises logits over the 151k vocabulary at every position, so keep it short
    module = objective.module.eval()
    with torch.no_grad():
        ours, _ = module(batch)
        ref = module.vita(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels,
                          pixel_values=batch.pixel_values, audio_features=batch.audio_features,
                          audio_lengths=batch.audio_lengths).loss
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    # the FSDP dummy-media path adds exact zeros
    module.dummy_media = True
    text_only = objective.collate([objective.dataset[1]])
    text_only.pixel_values = None
    text_only.input_ids[text_only.input_ids < 0] = 0
    with torch.no_grad():
        module.dummy_media = False
        plain, _ = module(text_only)
        module.dummy_media = True
        padded, _ = module(text_only)
    assert torch.equal(plain, padded)


def test_codec_stage_trains_encoder_quantizer_generator(mini_data, tmp_path) -> None:
    phase = phases("3.1")[0]
    cfg = {"data": data_config(mini_data, "asr.json"), "tts": {"size": "tiny", "seed": 0},
           "output_dir": str(tmp_path), "segment_codes": 8}
    objective = build_objective(phase, cfg, None, distributed=False)
    codec = objective.module.codec
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    _one_step(objective)
    changed = _changed(before, codec.state_dict())
    assert {k.split(".")[0] for k in changed} == {"encoder", "quantizer", "generator"}
    assert any(k.startswith("quantizer.quantizer_modules_globaltokens") for k in changed)


def test_decoder_stage_keeps_llm_and_codec_frozen(mini_data, tiny_vita_ckpt, tmp_path) -> None:
    phase = phases("3.2")[0]
    cfg = {"data": data_config(mini_data, "asr.json"), "tts": {"size": "tiny", "seed": 0},
           "output_dir": str(tmp_path), "llm": str(tiny_vita_ckpt)}
    objective = build_objective(phase, cfg, None, distributed=False)
    module = objective.module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    embed = module.embed.clone()
    _one_step(objective)
    changed = _changed(before, module.state_dict())
    assert changed and all(k.startswith("decoder.") for k in changed)
    assert any(k.startswith("decoder.layers_pre_nn.") for k in changed) and "decoder.out_fnn.weight" in changed
    assert torch.equal(embed, module.embed)


def test_unknown_prefix_is_an_error() -> None:
    with pytest.raises(ValueError, match="no parameter"):
        apply_trainable(torch.nn.Linear(2, 2), ("model.nothing.",))


def test_speech_stages_chain_into_a_loadable_tts_checkpoint(mini_data, tiny_vita_ckpt, tmp_path) -> None:
    """3.1 then 3.2 through the CLI's stage runner; each export is a complete `vita_tts_ckpt`."""
    from vita15.train.cli import run_stage
    from vita15.train.engine import DistContext
    from vita15.tts.checkpoint import load_tts

    ctx = DistContext(0, 1, torch.device("cpu"))
    train = {"lr": 1e-3, "batch_size": 2, "grad_accum": 1, "max_steps": 2, "export_dtype": "fp32"}
    common = {"data": data_config(mini_data, "asr.json"), "tts": {"size": "tiny", "seed": 0}, "train": train}
    codec_dir = run_stage("3.1", {**common, "output_dir": str(tmp_path / "s31"), "segment_codes": 8}, tmp_path, ctx)
    tts_dir = run_stage("3.2", {**common, "output_dir": str(tmp_path / "s32"), "init": str(codec_dir),
                                "llm": str(tiny_vita_ckpt)}, tmp_path, ctx)
    trained_codec = load_tts(codec_dir).codec.state_dict()
    final = load_tts(tts_dir)
    assert all(torch.equal(v, final.codec.state_dict()[k]) for k, v in trained_codec.items())  # 3.2 keeps it
    assert final.decoder.generate(torch.zeros(1, 4, 32), greedy=True, max_tokens=3).numel() <= 3
