"""Batched generation equals single-request runs; stops, sampling, dtypes (spec §4.6, §8.1)."""
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from vita15.audio_features import AudioError
from vita15.conversation import IM_END_ID

from .conftest import Req, random_image


@pytest.fixture(scope="module")
def requests_mixed():
    rng = np.random.default_rng(0)
    img = random_image(rng, 700, 300)
    return [
        Req("img", "What is in the picture?", images=[img], max_tiles=2),  # 2 tiles + thumbnail
        Req("txt", "Tell me a long story about a cat who lives on the moon and eats cheese."),
        Req("aud", "", audio=(0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)),
        Req("vid", "What happens?", frames=[img] * 2, modality="video"),
    ]


@pytest.fixture(scope="module")
def embeds(inference, requests_mixed):
    return inference.embed_requests(requests_mixed)[0]


def test_batched_equals_single(inference, requests_mixed, embeds):
    batched = inference.decode(embeds, max_new_tokens=6)
    lengths = [len(e) for e in embeds]
    assert len(set(lengths)) == len(lengths)  # really different lengths → left padding in play
    for i, tokens in enumerate(batched):
        assert inference.decode([embeds[i]], max_new_tokens=6)[0] == tokens, requests_mixed[i].uid
    alone, _ = inference.embed_requests(requests_mixed[1:2])
    assert torch.equal(alone[0], embeds[1])  # splicing is per row


def test_prompt_token_counts(inference, requests_mixed, tokenizer):
    outs = inference.generate(requests_mixed[:3], max_new_tokens=2)
    assert [o.n_new_tokens for o in outs] == [2, 2, 2]
    outs = outs[:1] + outs[2:]
    # image: 2 tiles + thumbnail → 3 × 256 visual tokens replace 3 placeholders
    from vita15.conversation import build_prompt, tokenize_with_placeholders

    text_ids = tokenize_with_placeholders(tokenizer, build_prompt("<image>" * 3 + "\nWhat is in the picture?", "image"))
    assert outs[0].n_prompt_tokens == len(text_ids) - 3 + 3 * 256
    lang_ids = tokenize_with_placeholders(tokenizer, build_prompt("<audio>", "lang"))
    assert outs[1].n_prompt_tokens == len(lang_ids) - 1 + 24  # 2 s → 198 fbank frames → 24 LLM tokens


def test_sampling_is_seeded_and_batch_independent(inference, embeds):
    kw = dict(do_sample=True, temperature=1.0, top_p=0.9, max_new_tokens=5)
    a = inference.decode(embeds[1:3], seed=7, **kw)
    assert inference.decode(embeds[1:3], seed=7, **kw) == a
    assert inference.decode(embeds[2:3], seed=7, **kw)[0] == a[1]
    assert inference.decode(embeds[1:3], seed=8, **kw) != a


@contextmanager
def forced_token(model, token):
    """Make `token` the argmax of every step (a huge logit bias through a forward hook)."""

    def hook(module, args, out):
        out[..., token] += 1e4
        return out

    handle = model.lm_head.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def test_stop_strings_and_eos(inference, requests_mixed, embeds):
    (tokens,) = inference.decode(embeds[1:2], max_new_tokens=4)
    third = inference.tokenizer.decode(tokens[2:3])
    (cut,) = inference.decode(embeds[1:2], max_new_tokens=4, stop=(third,))
    assert cut == tokens[: len(cut)] and len(cut) <= 3
    out = inference.generate(requests_mixed[1:2], max_new_tokens=4, stop=(third,))[0]
    assert third not in out.raw
    # eos ends a row: force <|im_end|> as the argmax
    with forced_token(inference.model, IM_END_ID):
        out = inference.generate(requests_mixed[1:2], max_new_tokens=5)[0]
    assert out.n_new_tokens == 1 and out.raw == "" and out.answer == ""


def test_answer_drops_leading_marker(inference, requests_mixed):
    marker = inference.tokenizer("☞", add_special_tokens=False)["input_ids"][0]
    with forced_token(inference.model, marker):
        out = inference.generate(requests_mixed[1:2], max_new_tokens=2)[0]
    assert out.raw == "☞☞" and out.answer == "☞"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs(inference, requests_mixed, dtype):
    from vita15.inference import VitaInference

    half = VitaInference(inference.model.to(dtype), inference.tokenizer)
    try:
        outs = half.generate(requests_mixed[1:3], max_new_tokens=2)
    finally:
        inference.model.to(torch.float32)
    assert all(o.n_new_tokens == 2 for o in outs)


def test_audio_errors_surface_with_request_id(inference):
    with pytest.raises(AudioError, match="request short"):
        inference.generate([Req("short", "", audio=np.zeros(100, dtype=np.float32))], max_new_tokens=1)


def test_truncation_warning_reaches_the_request(inference, requests_mixed):
    inference.model.config.tokenizer_model_max_length = 300
    try:
        outs = inference.generate(requests_mixed[:2], max_new_tokens=1)
    finally:
        inference.model.config.tokenizer_model_max_length = 6200
    assert outs[0].n_prompt_tokens == 300 and "request img" in outs[0].warnings[0]
    assert outs[1].warnings == [] and outs[1].n_prompt_tokens < 300
