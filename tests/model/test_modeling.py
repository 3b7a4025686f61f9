"""Full-size key layout, splicing, truncation and the training forward (spec §4.4, §5)."""
import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vita15.checkpoint import build_random, empty_model
from vita15.configuration_vita import tiny_config, vita15_config
from vita15.conversation import AUDIO_TOKEN_INDEX, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from vita15.image_processing import normalize_pixels

REFERENCE = Path("/work/shared/reference/vita15_state_dict.json")


@pytest.fixture(scope="module")
def model():
    return build_random(tiny_config(), "cpu", torch.float32, seed=0)


@pytest.mark.skipif(not REFERENCE.is_file(), reason="reference state-dict listing not available")
def test_full_size_state_dict_equals_reference():
    ref = json.loads(REFERENCE.read_text())
    meta = empty_model(vita15_config(), "meta", torch.bfloat16)
    got = {k: list(v.shape) for k, v in meta.state_dict().items()}
    assert got == ref["keys"]
    assert sum(p.numel() for p in meta.parameters()) == ref["total_parameters"]
    assert not any("rotary_emb" in k for k in got)


def test_splice_counts_labels_and_order(model):
    hidden = model.config.hidden_size
    images = torch.randn(3, 256, hidden)
    audio = [torch.randn(7, hidden), torch.randn(4, hidden)]
    ids = [torch.tensor([5, IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX, 6, AUDIO_TOKEN_INDEX, 7]),
           torch.tensor([8, IMAGE_TOKEN_INDEX, AUDIO_TOKEN_INDEX])]
    labels = [torch.arange(6) + 100, torch.arange(3) + 200]
    embeds, labs = model.splice(ids, images, audio, labels)
    assert [len(e) for e in embeds] == [1 + 512 + 1 + 7 + 1, 1 + 256 + 4]
    emb = model.model.embed_tokens.weight
    assert torch.equal(embeds[0][0], emb[5]) and torch.equal(embeds[0][513], emb[6])
    assert torch.equal(embeds[0][1:257], images[0]) and torch.equal(embeds[0][257:513], images[1])
    assert torch.equal(embeds[0][514:521], audio[0]) and torch.equal(embeds[1][1:257], images[2])
    assert torch.equal(embeds[1][257:], audio[1])
    assert labs[0][0] == 100 and labs[0][513] == 103 and labs[0][-1] == 105
    assert (labs[0][1:513] == IGNORE_INDEX).all() and (labs[0][514:521] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="2 <image> for 1 image"):
        model.splice(ids[:1], images[:1], audio[:1])


def test_truncation_after_splicing_warns(model, caplog):
    model.config.tokenizer_model_max_length = 300
    try:
        with caplog.at_level(logging.WARNING):
            embeds, _ = model.splice([torch.tensor([1, IMAGE_TOKEN_INDEX, 2] * 2)], torch.randn(2, 256, 64), None,
                                     names=["sample-42"])
    finally:
        model.config.tokenizer_model_max_length = 6200
    assert len(embeds[0]) == 300
    assert "sample-42" in caplog.text and "truncated to 300" in caplog.text


def test_forward_loss_and_right_padding(model):
    torch.manual_seed(0)
    pixels = torch.randn(1, 3, 448, 448)
    ids = torch.tensor([[11, IMAGE_TOKEN_INDEX, 12, 13, 14], [21, 22, 23, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    labels = torch.tensor([[-100, -100, 12, 13, 14], [-100, 22, 23, -100, -100]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=labels, pixel_values=pixels)
        assert out.logits.shape == (2, 4 + 256, model.config.vocab_size)
        alone = model(input_ids=ids[1:, :3]).logits
        assert torch.allclose(out.logits[1, :3], alone[0], atol=1e-5)
        # plain shifted CE over the two sequences' kept labels
        row0 = F.cross_entropy(out.logits[0, 257:259], torch.tensor([13, 14]), reduction="sum")
        row1 = F.cross_entropy(out.logits[1, 0:2], torch.tensor([22, 23]), reduction="sum")
        # row 0: label 12 follows the image block (position 256 predicts it)
        row0 = row0 + F.cross_entropy(out.logits[0, 256:257], torch.tensor([12]), reduction="sum")
        assert torch.allclose(out.loss, (row0 + row1) / 5, atol=1e-5)


def test_encode_images_normalises_uint8_tiles_like_the_float_path(model):
    pixels = torch.randint(0, 256, (2, 3, 448, 448), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.encode_images(pixels), model.encode_images(normalize_pixels(pixels)))
