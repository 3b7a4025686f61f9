"""The fast engine gives exactly the reference engine's token ids (fp32, CPU), and fails alone."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from vita15.engine import FastEngine, Job
from vita15.prefix import atoms, common_prefix, plan_prefixes
from vita15.stopping import StopMatcher

from .conftest import Req, random_image


@dataclass(frozen=True)
class Gen:
    """Duck-typed like vita_eval.types.GenerationParams."""

    do_sample: bool = False
    temperature: float = 0.0
    top_p: float | None = None
    max_new_tokens: int = 6
    stop: tuple[str, ...] = ("<|im_end|>",)
    seed: int = 0


@pytest.fixture(scope="module")
def media():
    rng = np.random.default_rng(1)
    return {"wide": random_image(rng, 700, 300), "square": random_image(rng, 448, 448),
            "frame": random_image(rng, 320, 240), "speech": (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32),
            "speech2": (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32)}


@pytest.fixture(scope="module")
def fast(inference):
    """Three slots, so ten requests need refills while others decode (continuous batching); fbank in a
    worker process, as on a GPU machine."""
    return FastEngine(inference.model, inference.tokenizer, max_slots=3, sync_every=4, min_shared=4, fbank_workers=1)


def reference(inference, request, gen: Gen):
    (out,) = inference.generate([request], do_sample=gen.do_sample, temperature=gen.temperature, top_p=gen.top_p,
                                max_new_tokens=gen.max_new_tokens, stop=gen.stop, seed=gen.seed)
    return out


def run_fast(fast, groups):
    jobs = []
    for group in groups:
        tiles: dict = {}
        jobs.append([Job(r.uid, fast.prepare(r, tiles), g) for r, g in group])
    return fast.generate(jobs)


def assert_same(inference, fast, groups):
    got = run_fast(fast, groups)
    for group in groups:
        for request, gen in group:
            want = reference(inference, request, gen)
            out = got[request.uid]
            assert not isinstance(out, Exception), (request.uid, out)
            assert out.token_ids == want.token_ids, request.uid
            assert (out.raw, out.answer, out.n_prompt_tokens) == (want.raw, want.answer, want.n_prompt_tokens)
    return got


def test_prefix_shared_groups_and_every_modality(inference, fast, media):
    g = Gen()
    groups = [
        [(Req("img-a", "What is in the picture?", images=[media["wide"]], max_tiles=2), g),
         (Req("img-b", "What colour is the biggest shape?", images=[media["wide"]], max_tiles=2), g),
         (Req("img-c", "What is in the picture? Answer briefly.", images=[media["wide"]], max_tiles=2), g)],
        [(Req("vid-a", "What happens?", frames=[media["frame"]] * 3, modality="video"), g),
         (Req("vid-b", "Who moves?", frames=[media["frame"]] * 3, modality="video"), g)],
        [(Req("aud-a", "", audio=media["speech"], modality="lang"), g),
         (Req("aud-b", "Please repeat:", audio=media["speech"], modality="lang"), g)],
        [(Req("txt", "Tell me a long story about a cat who lives on the moon."), g)],
        [(Req("sq", "Is there a circle?", images=[media["square"]]), g)],
        [(Req("aud-c", "", audio=media["speech2"], modality="lang"), g)],
    ]
    before = dict(fast.stats)
    assert_same(inference, fast, groups)
    assert fast.stats["shared_positions"] - before["shared_positions"] > 2 * 3 * 256  # image and video prefixes


def test_mixed_prompt_and_answer_lengths_with_refills(inference, fast, media):
    (probe,) = inference.decode(inference.embed_requests([Req("p", "Count to ten.")])[0], max_new_tokens=4)
    third = inference.tokenizer.decode(probe[2:3])  # a stop string hit at the 3rd token of that prompt
    groups = [
        [(Req("n1", "Count to ten."), Gen(max_new_tokens=1))],
        [(Req("stop", "Count to ten."), Gen(max_new_tokens=9, stop=("<|im_end|>", third)))],
        [(Req("n11", "Say something long about the sea and the sky."), Gen(max_new_tokens=11))],
        [(Req("i2", "Name the shapes.", images=[media["wide"]], max_tiles=2), Gen(max_new_tokens=2)),
         (Req("i7", "Describe the colours.", images=[media["wide"]], max_tiles=2), Gen(max_new_tokens=7))],
        [(Req("a5", "", audio=media["speech2"], modality="lang"), Gen(max_new_tokens=5))],
    ]
    got = assert_same(inference, fast, groups)
    assert got["stop"].n_new_tokens <= 3 and third not in got["stop"].raw
    assert [got[u].n_new_tokens for u in ("n1", "n11", "i2", "i7", "a5")] == [1, 11, 2, 7, 5]


def test_sampling_stop_strings_and_repetition_penalty_match(inference, media):
    engine = FastEngine(inference.model, inference.tokenizer, {"repetition_penalty": 1.3}, max_slots=4)
    inference.repetition_penalty = 1.3
    try:
        sampled = Gen(do_sample=True, temperature=1.0, top_p=0.9, max_new_tokens=6, seed=3)
        multi = Gen(max_new_tokens=8, stop=("<|im_end|>", "e", "ing"))
        groups = [[(Req("s1", "Tell me a story."), sampled), (Req("s2", "Tell me a joke."), sampled)],
                  [(Req("g1", "Tell me a story."), multi)],
                  [(Req("v", "What happens?", frames=[media["frame"]] * 2, modality="video"), sampled)]]
        assert_same(inference, engine, groups)
    finally:
        inference.repetition_penalty = 1.0


def test_a_failing_request_fails_alone(inference, fast, media):
    poison = inference.tokenizer(" zebra", add_special_tokens=False)["input_ids"][0]

    def hook(module, args):
        if (args[0] == poison).any():
            raise RuntimeError("poisoned request")

    g = Gen(max_new_tokens=3)
    groups = [[(Req("ok-1", "Where is the square?", images=[media["wide"]], max_tiles=2), g),
               (Req("bad", "Where is the zebra?", images=[media["wide"]], max_tiles=2), g),
               (Req("ok-2", "Where is the circle?", images=[media["wide"]], max_tiles=2), g)],
              [(Req("ok-3", "Tell me about cats."), g)]]
    handle = inference.model.model.embed_tokens.register_forward_pre_hook(hook)
    try:
        got = run_fast(fast, groups)
    finally:
        handle.remove()
    assert isinstance(got["bad"], RuntimeError) and "poisoned" in str(got["bad"])
    for request, gen in [groups[0][0], groups[0][2], groups[1][0]]:
        assert got[request.uid].token_ids == reference(inference, request, gen).token_ids


def test_truncation_warning_reaches_the_request(inference, fast, media):
    inference.model.config.tokenizer_model_max_length = 300
    try:
        got = run_fast(fast, [[(Req("long", "What is it?", images=[media["wide"]], max_tiles=2), Gen(max_new_tokens=2)),
                               (Req("long2", "Why?", images=[media["wide"]], max_tiles=2), Gen(max_new_tokens=2))],
                              [(Req("short", "Hi."), Gen(max_new_tokens=2))]])
    finally:
        inference.model.config.tokenizer_model_max_length = 6200
    assert got["long"].n_prompt_tokens == 300 and "request long" in got["long"].warnings[0]
    assert got["short"].warnings == []


def test_stop_matcher_equals_decoding_the_window(tokenizer):
    rng = np.random.default_rng(0)
    words = tokenizer("the cat sat on the mat, singing loudly; then it ate <|im_end|> 猫在唱歌",
                      add_special_tokens=False)["input_ids"]
    stops = ("at", "ing", ";", "唱", "<|im_end|>", "t th")
    matcher = StopMatcher(tokenizer, stops)
    for _ in range(200):
        tokens = [int(t) for t in rng.choice(words, size=12)]
        want = next((i for i in range(len(tokens)) if tokens[i] in matcher.ids or any(
            s in tokenizer.decode(tokens[max(0, i - 15): i + 1], skip_special_tokens=False) for s in stops)), None)
        assert matcher.first_stop(tokens) == want, tokens


def test_prefix_plan_shares_root_and_groups():
    key = b"k" * 16
    img = [(key, 256)]
    a = atoms([1, 2, 3, -200, 7, 8], [key], [256])
    b = atoms([1, 2, 3, -200, 7, 9, 9], [key], [256])
    c = atoms([1, 2, 3, 4, 5], [], [])
    assert a[3] == img[0] and common_prefix([a, b]) == 3 + 256 + 1
    plan = plan_prefixes([a, b, c], [261, 262, 5], [[0, 1], [2]], min_shared=2)
    assert plan.root == 3 and plan.shared == [260, 3]
    other = atoms([1, 2, 3, -200, 7, 8], [b"x" * 16], [256])
    assert common_prefix([a, other]) == 3  # another image breaks the prefix at its block
    assert plan_prefixes([a, a], [261, 261], [[0, 1]], min_shared=2).shared == [260]  # suffix never empty


def test_prepare_keys_name_content(inference, media):
    from vita15.inference import prepare_request

    tok = inference.tokenizer
    one = prepare_request(Req("x", "Q1", images=[media["wide"]], max_tiles=2), tok)
    two = prepare_request(Req("y", "Q2", images=[media["wide"].copy()], max_tiles=2), tok)
    three = prepare_request(Req("z", "Q1", images=[media["wide"]], max_tiles=1), tok)
    assert one.media_keys == two.media_keys and len(one.media_keys) == len(one.pixel_values) == 3
    assert three.media_keys[0] != one.media_keys[0]  # another tile budget, other tiles
    assert torch.equal(one.pixel_values, two.pixel_values)


def test_generation_params_are_per_request(inference, fast, media):
    """Rows of one round may decode with different budgets and stops (replace() keeps dataclass semantics)."""
    g = Gen(max_new_tokens=4)
    groups = [[(Req("r1", "One."), g), (Req("r2", "One."), replace(g, max_new_tokens=2))]]
    got = assert_same(inference, fast, groups)
    assert got["r1"].token_ids[:2] == got["r2"].token_ids


def test_slots_grow_when_prompts_are_longer_than_estimated(inference, media, monkeypatch):
    """A round whose spliced prompts exceed the slot length goes back to the queue; longer slots follow."""
    import vita15.engine as engine_module

    monkeypatch.setattr(engine_module, "_estimate_positions", lambda prepared: 1)
    engine = FastEngine(inference.model, inference.tokenizer, max_slots=2)
    g = Gen(max_new_tokens=3)
    groups = [[(Req("short", "Hi."), g)], [(Req("long", "What is it?", images=[media["wide"]], max_tiles=2), g)]]
    assert_same(inference, engine, groups)
    assert engine._slots.capacity >= 925


def test_fbank_pool_equals_inline(media):
    from vita15.audio_features import AudioError, FbankPool, fbank

    pool = FbankPool(1)
    try:
        assert torch.equal(pool(media["speech"]), fbank(media["speech"]))
        with pytest.raises(AudioError, match="too short"):
            pool(np.zeros(100, dtype=np.float32))
    finally:
        pool.close()


def test_transformers_prefill_alternative_gives_the_same_tokens(inference, media):
    """`fused_prefill=False` (transformers' own Qwen2 layers over the slot cache, the bench's baseline)."""
    plain = FastEngine(inference.model, inference.tokenizer, max_slots=3, sync_every=4, min_shared=4,
                       fbank_workers=0, fused_prefill=False)
    g = Gen()
    assert_same(inference, plain, [
        [(Req("img-a", "What is in the picture?", images=[media["wide"]], max_tiles=2), g),
         (Req("img-b", "Name a colour.", images=[media["wide"]], max_tiles=2), g)],
        [(Req("aud", "Please repeat:", audio=media["speech"], modality="lang"), g)],
        [(Req("txt", "Tell me a story."), g)],
    ])


def test_long_sequence_kernel_path_gives_the_same_tokens(inference, media, monkeypatch):
    """The GPU's split attention (long sequences by their own kernel after the short ones; here the
    same SDPA call on the math kernel, every sequence of 12+ positions counted long) changes no token."""
    from torch.nn.attention import SDPBackend

    from vita15 import kv_slots

    monkeypatch.setattr(kv_slots, "LONG_BACKENDS", [SDPBackend.MATH])
    pack = kv_slots.SlotCache.pack

    def pack_long(cache, *args, **kwargs):
        cache.long_tokens = 12
        return pack(cache, *args, **kwargs)

    monkeypatch.setattr(kv_slots.SlotCache, "pack", pack_long)
    calls, attend = [], kv_slots.end_aligned_causal
    monkeypatch.setattr(kv_slots, "end_aligned_causal", lambda *a: calls.append(len(a[0])) or attend(*a))
    monkeypatch.setattr(kv_slots, "LONG_BUCKET", 16)
    engine = FastEngine(inference.model, inference.tokenizer, max_slots=4, sync_every=4, min_shared=4, fbank_workers=0)
    g = Gen()
    assert_same(inference, engine, [
        [(Req("img-a", "What is in the picture?", images=[media["wide"]], max_tiles=2), g),
         (Req("img-b", "Name a colour.", images=[media["wide"]], max_tiles=2), g)],
        [(Req("vid", "What happens?", frames=[media["frame"]] * 3, modality="video"), g)],
        [(Req("txt", "Hi."), g)],
    ])
    assert engine._slots.cache.long_tokens == 12 and min(calls) >= 12  # the long path ran and stayed on


def test_fused_prefill_step_equals_transformers_layers(inference):
    """Hidden states and written keys of `PrefillStep` match `Qwen2Model.forward` over the same packed
    plan (two sequences of 9 and 6 tokens after pasts of 3 and 5 positions, fp32)."""
    from vita15.kv_slots import SlotCache, SlotPlan
    from vita15.prefill_step import PrefillStep

    model = inference.model
    FastEngine(model, inference.tokenizer, fbank_workers=0).decode_step.prepare()  # fused projections
    cfg, hidden = model.config, model.config.hidden_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 15, hidden, generator=gen)
    outs = []
    for fused in (True, False):
        cache = SlotCache(cfg, 3, 32, x.device, x.dtype)
        for layer in cache.layers:  # the pasts
            layer.k_store.copy_(torch.randn(layer.k_store.shape, generator=torch.Generator().manual_seed(1)))
        cache.plan = plan = SlotPlan.packed([0, 2], [3, 5], [9, 6], 32, x.device)
        with torch.no_grad():
            if fused:
                out = PrefillStep(model)(x, plan.positions, cache)
            else:
                out = model.model(inputs_embeds=x, position_ids=plan.positions, attention_mask=torch.ones(1, 1, 1, 1),
                                  past_key_values=cache, use_cache=True, slot_cache=cache).last_hidden_state
        outs.append((out, cache.layers[-1].k_store.clone()))
    (fused_out, fused_keys), (plain_out, plain_keys) = outs
    assert torch.allclose(fused_out, plain_out, atol=1e-5, rtol=1e-5)
    assert torch.allclose(fused_keys, plain_keys, atol=1e-5, rtol=1e-5)


def _dense_attention(query, keys, values, n, used, groups):
    """Reference: each of the last `n` of `used` positions attends causally, by an explicit softmax."""
    keys, values = keys[:used].repeat_interleave(groups, dim=1), values[:used].repeat_interleave(groups, dim=1)
    rows = []
    for i in range(n):
        seen = used - n + i + 1
        scores = torch.einsum("hd,khd->hk", query[i], keys[:seen]) * query.shape[-1] ** -0.5
        rows.append(torch.einsum("hk,khd->hd", scores.softmax(-1), values[:seen]))
    return torch.stack(rows)


def test_slot_plan_packs_sequences_and_attends_causally_to_each_past():
    """`SlotPlan.packed` places every token at its slot and position, and `SlotLayer.attend` gives each
    sequence causal attention over its own slot only (checked against a dense softmax per sequence)."""
    from types import SimpleNamespace

    from vita15.kv_slots import SlotCache, SlotPlan

    cfg = SimpleNamespace(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=1)
    cache = SlotCache(cfg, 4, 16, torch.device("cpu"), torch.float32)
    plan = SlotPlan.packed([3, 1], [2, 0], [3, 4], 16, torch.device("cpu"))
    assert plan.write_rows.tolist() == [[3, 3, 3, 1, 1, 1, 1]] and plan.write_src is None
    assert plan.write_pos.tolist() == plan.positions.tolist() == [[2, 3, 4, 0, 1, 2, 3]]
    assert plan.last.tolist() == [2, 6] and plan.used.tolist() == [5, 4] and plan.lengths == {3: 5, 1: 4}
    assert plan.cu_q.tolist() == [0, 3, 7] and plan.cu_k.tolist()[:2] == [48, 16]
    gen = torch.Generator().manual_seed(0)
    layer = cache.layers[0]
    layer.k_store.copy_(torch.randn(layer.k_store.shape, generator=gen))
    layer.v_store.copy_(torch.randn(layer.v_store.shape, generator=gen))
    cache.plan = plan
    new_k, new_v = torch.randn(1, 7, 2, 8, generator=gen), torch.randn(1, 7, 2, 8, generator=gen)
    layer.write(new_k, new_v)
    assert torch.equal(layer.k_store[3, 2:5], new_k[0, :3]) and torch.equal(layer.v_store[1, :4], new_v[0, 3:])
    query = torch.randn(7, 4, 8, generator=gen)
    out = layer.attend(query, 8 ** -0.5)
    for slot, first, n, used in plan.spans:
        want = _dense_attention(query[first : first + n], layer.k_store[slot], layer.v_store[slot], n, used, 2)
        assert torch.allclose(out[first : first + n], want, atol=1e-5)


def test_mirrored_prefix_is_read_by_its_suffixes_in_the_same_pass():
    """A shared prefix written into its group's slots (`mirrors`) in the same forward as the suffixes
    that read it: each suffix attends to the prefix keys as if they had been computed in its own
    slot, and slot lengths come out as the longest write into each slot."""
    from types import SimpleNamespace

    from vita15.kv_slots import SlotCache

    cfg = SimpleNamespace(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=1)
    cache = SlotCache(cfg, 3, 16, torch.device("cpu"), torch.float32)
    # prefix of 5 in slot 0, mirrored into slots 1 and 2; then suffixes of 2, 3, 1 in slots 0, 1, 2
    plan = cache.pack([0, 0, 1, 2], [0, 5, 5, 5], [5, 2, 3, 1], [[1, 2], [], [], []])
    assert plan.write_src is not None and plan.write_rows.shape[1] == 11 + 10
    assert plan.lengths == {0: 7, 1: 8, 2: 6} and plan.length_values.tolist() == [7, 8, 6]
    gen = torch.Generator().manual_seed(3)
    layer = cache.layers[0]
    keys, values = torch.randn(1, 11, 2, 8, generator=gen), torch.randn(1, 11, 2, 8, generator=gen)
    layer.write(keys, values)
    for slot in (0, 1, 2):
        assert torch.equal(layer.k_store[slot, :5], keys[0, :5]) and torch.equal(layer.v_store[slot, :5], values[0, :5])
    assert torch.equal(layer.k_store[1, 5:8], keys[0, 7:10]) and torch.equal(layer.k_store[2, 5], keys[0, 10])
    query = torch.randn(11, 4, 8, generator=gen)
    out = layer.attend(query, 8 ** -0.5)
    for slot, first, n, used in plan.spans:
        want = _dense_attention(query[first : first + n], layer.k_store[slot], layer.v_store[slot], n, used, 2)
        assert torch.allclose(out[first : first + n], want, atol=1e-5)


def test_long_sequences_attend_end_aligned_by_their_own_kernel(monkeypatch):
    """The long-sequence path (cuDNN on a GPU; here the same call on the math kernel) pads the query
    with zero rows for the past so SDPA's start-aligned causal mask becomes the end-aligned one, and
    query and keys on to a bucket (stale keys past the sequence stay invisible); the pack is split:
    short sequences first (flash, or masked SDPA here), long ones after."""
    from types import SimpleNamespace

    from torch.nn.attention import SDPBackend

    from vita15 import kv_slots

    monkeypatch.setattr(kv_slots, "LONG_BACKENDS", [SDPBackend.MATH])
    monkeypatch.setattr(kv_slots, "LONG_BUCKET", 8)  # spans of 10 and 9 keys run on to 16
    cfg = SimpleNamespace(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=1)
    cache = kv_slots.SlotCache(cfg, 3, 32, torch.device("cpu"), torch.float32)
    cache.long_tokens = 6
    gen = torch.Generator().manual_seed(4)
    layer = cache.layers[0]
    layer.k_store.copy_(torch.randn(layer.k_store.shape, generator=gen))
    layer.v_store.copy_(torch.randn(layer.v_store.shape, generator=gen))
    plan = cache.pack([2, 0, 1], [4, 3, 0], [2, 7, 9])  # one short, then two long (one after a past)
    assert plan.n_flash == 1 and plan.flash_tokens == 2
    query = torch.randn(18, 4, 8, generator=gen)
    out = layer.attend(query, 8 ** -0.5)
    for slot, first, n, used in plan.spans:
        want = _dense_attention(query[first : first + n], layer.k_store[slot], layer.v_store[slot], n, used, 2)
        assert torch.allclose(out[first : first + n], want, atol=1e-5)
    assert cache.long_tokens == 6  # the kernel ran: still on


def test_preparer_travels_as_its_tokenizer_folder(inference, fast, media):
    """Pickled small (worker processes then start in parallel) and prepares exactly as the engine does."""
    import pickle

    data = pickle.dumps(fast.preparer())
    assert len(data) < 1000
    request = Req("img", "What is in the picture?", images=[media["wide"]], max_tiles=2)
    got, want = pickle.loads(data)(request), fast.prepare(request)
    assert torch.equal(got.input_ids, want.input_ids) and torch.equal(got.pixel_values, want.pixel_values)
    assert got.pixel_values.dtype == torch.uint8 and got.media_keys == want.media_keys
