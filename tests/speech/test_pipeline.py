"""The staged streaming path: same tokens as batched generation, every stage timed, chunks in order."""
from __future__ import annotations

import numpy as np

from vita15.demo import load_query
from vita15.pipeline import POLICIES, STAGES, Speaker, StreamingAnswerer, display_text


def test_streamed_tokens_equal_batched_generation(engine, scene_png, question_flac) -> None:
    query = load_query("What is in the picture?", images=[scene_png], audio=question_flac, max_tiles=2)
    streamed = StreamingAnswerer(engine).answer(query, max_new_tokens=9, stop=("<|im_end|>",))
    batched = engine.generate([query], max_new_tokens=9)[0]
    assert (streamed.raw, streamed.answer, streamed.n_new_tokens, streamed.n_prompt_tokens) == (
        batched.raw, batched.answer, batched.n_new_tokens, batched.n_prompt_tokens)


def test_speech_streams_in_order_and_every_stage_is_timed(engine, tts_ckpt, scene_png, question_flac) -> None:
    speaker = Speaker.load(tts_ckpt, engine, POLICIES["fast"])
    query = load_query("", images=[scene_png], audio=question_flac, max_tiles=2)
    texts: list[str] = []
    pieces: list[np.ndarray] = []
    result = StreamingAnswerer(engine, speaker).answer(query, max_new_tokens=10, on_text=texts.append,
                                                       on_audio=pieces.append)
    t = result.timings
    assert set(STAGES) <= set(t.stages) and all(v > 0 for v in t.stages.values())
    e = t.events
    assert 0 < e["first_text_token"] <= e["first_text_chunk"] <= e["first_audio"] <= e["last_audio"] <= e["done"]
    assert [c.index for c in t.chunks] == list(range(len(t.chunks))) and len(t.chunks) >= 2
    times = [c.t for c in t.chunks]
    assert times == sorted(times) and times[0] == e["first_audio"] and times[-1] == e["last_audio"]
    assert [c.sentence for c in t.chunks] == sorted(c.sentence for c in t.chunks)
    assert "".join(texts) == display_text(engine.tokenizer, engine.tokenizer.encode(result.raw))
    words = lambda text: [ch for ch in text if ch.isalnum()]  # noqa: E731 (punctuation-only pieces are not spoken)
    assert len(result.segments) >= 2 and words("".join(result.segments)) == words("".join(texts))
    assert e["first_text_chunk"] < e["done"] - t.stages["decode"]  # the first segment left before decoding ended
    assert np.array_equal(result.wave, np.concatenate(pieces))
    assert len(result.wave) == 600 * t.counts["codes"] and t.rtf is not None and t.audio_s > 0


def test_segments_close_at_punctuation_or_the_token_budget_and_skip_empty_pieces() -> None:
    from vita15.pipeline import Segmenter

    seg = Segmenter(POLICIES["fast"])  # first segment after 4 tokens, later ones after 48
    assert seg.feed("!") is None and seg.n_segments == 0  # punctuation only: passed over, budget kept
    text = "! Hello"
    assert [seg.feed(text) for _ in range(3)] == [None, None, None]
    assert seg.feed(text + " there") == " Hello there" and seg.n_segments == 1
    assert seg.feed(text + " there, friend") is None and seg.n_segments == 1  # the lone "," is passed over
    seg2 = Segmenter(POLICIES["reference"])
    assert seg2.feed("Yes, it") == "Yes," and seg2.flush("Yes, it is red") == " it is red"
