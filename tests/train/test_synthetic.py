"""Synthetic primitives and the VITA-JSON training set: valid, deterministic, and phrased
exactly like the harness prompts the trained model is evaluated with."""
from __future__ import annotations

import json
import random
from pathlib import Path

import av
import pytest

from vita15 import synthetic as syn
from vita15.train import synthetic as training_set

STAGES = ("caption", "qa", "asr", "spoken_qa", "video_qa")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return training_set.build_training_set(tmp_path_factory.mktemp("train"), n_images=12, seed=3)


def load(root: Path) -> dict[str, list[dict]]:
    return {name: json.loads((root / f"{name}.json").read_text(encoding="utf-8")) for name in STAGES}


def test_scene_facts_are_consistent() -> None:
    for seed in range(30):
        scene = syn.draw_scene(seed)
        assert 1 <= len(scene.shapes) <= 5 and scene.image.size == (448, 448)
        assert len({(s.color, s.kind) for s in scene.shapes}) == len(scene.shapes)
        assert sum(scene.count(k) for k in syn.KINDS) == len(scene.shapes)
    assert syn.draw_scene(7).image.tobytes() == syn.draw_scene(7).image.tobytes()


def test_yes_no_pair_answers_follow_the_facts() -> None:
    scene = syn.Scene(syn.draw_scene(0).image, (syn.Shape("circle", "red", 50, 200, 30),
                                                  syn.Shape("square", "blue", 300, 200, 30)))
    rng = random.Random(0)
    assert syn.yes_no_pair(scene, "position", rng) == (
        "Is the red circle on the left of the blue square? Please answer yes or no.",
        "Is the blue square on the left of the red circle? Please answer yes or no.")
    yes, no = syn.yes_no_pair(scene, "compare", rng)
    assert "than triangles in this image?" in yes and no.startswith("Are there more triangles than")
    assert syn.math_count(scene, rng, absent=True).answer == "0"
    balanced = syn.Scene(scene.image, (*scene.shapes, syn.Shape("triangle", "red", 400, 50, 30)))
    assert syn.yes_no_pair(balanced, "compare", rng) is None  # equal counts cannot support it


def test_prompt_builders_match_harness_formats() -> None:
    assert syn.mme_prompt("Is it red? Please answer yes or no.") == (
        "Is it red? Please answer yes or no. Answer the question using a single word or phrase.")
    assert syn.mcq_prompt("Q?", ["x", "y"], "H") == (
        "H\nQ?\nA. x\nB. y\nAnswer with the option's letter from the given choices directly.")
    assert syn.video_mme_prompt("Q?", ["A. x", "B. y"]).endswith("option.\nQuestion: Q?\nA. x\nB. y\nAnswer: ")
    assert syn.ASR_PROMPT == "Please recognize the speech and only output the recognized content:"


@pytest.mark.needs_tools('espeak-ng', 'sox')
def test_speech_and_video_primitives(tmp_path: Path) -> None:
    for lang, text in (("en", "THE RED CIRCLE"), ("zh", "红色 的 圆形")):
        assert syn.synthesize_speech(text, tmp_path / f"{lang}.flac", language=lang) > 0.3
    assert len(syn.read_audio(tmp_path / "en.flac")) > syn.SAMPLE_RATE * 0.3
    facts = syn.video_facts(5, seconds=2.0, fps=10)
    syn.write_video(tmp_path / "v.mp4", facts, size=112, srt_path=tmp_path / "v.srt")
    with av.open(str(tmp_path / "v.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == facts.n_frames == 20
    assert facts.color in (tmp_path / "v.srt").read_text()


@pytest.mark.needs_tools('espeak-ng', 'sox')
def test_training_json_is_valid(built: Path) -> None:
    for name, samples in load(built).items():
        assert samples, name
        assert len({s["id"] for s in samples}) == len(samples)
        for s in samples:
            turns = s["conversations"]
            assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2) and turns
            human = turns[0]["value"]
            for key, tag in (("image", "<image>"), ("video", "<video>"), ("audio", "<audio>")):
                assert (key in s) == (tag in human), (name, s["id"])
                if key in s:
                    folder = training_set.AUDIO_FOLDER if key == "audio" else training_set.SET_FOLDERS[s["set"]]
                    assert (built / folder / s[key]).is_file()
            if "image" in s or "video" in s:
                assert human.startswith(("<image>\n", "<video>\n"))


@pytest.mark.needs_tools('espeak-ng', 'sox')
def test_training_answers_use_evaluation_formats(built: Path) -> None:
    data = load(built)
    for s in data["qa"]:
        human, answer = s["conversations"][0]["value"], s["conversations"][1]["value"]
        if s["id"].startswith("mme_"):
            assert human.endswith(syn.MME_QUESTION_END + syn.MME_SUFFIX) and answer in ("Yes", "No")
        elif s["id"].startswith("mcq_"):
            assert human.endswith(syn.MCQ_SUFFIX) and f"\n{answer}. " in human
    assert all(s["conversations"][1]["value"] in "ABCD" for s in data["video_qa"])
    assert all(s["conversations"][0]["value"] == f"{syn.ASR_PROMPT}<audio>" for s in data["asr"])


@pytest.mark.needs_tools('espeak-ng', 'sox')
def test_asr_transcripts_share_words_not_sentences(built: Path) -> None:
    held_out = syn.sample_sentences("en") + syn.sample_sentences("zh")
    transcripts = [s["conversations"][1]["value"] for s in load(built)["asr"]]
    assert not set(transcripts) & set(held_out)
    sample_words = {w for sentence in held_out for w in sentence.split()}
    assert {w for t in transcripts for w in t.split()} & sample_words
    assert any(t.isupper() for t in transcripts) and any(" 的 " in t for t in transcripts)


@pytest.mark.needs_tools('espeak-ng', 'sox')
def test_same_seed_same_json(built: Path, tmp_path: Path) -> None:
    again = training_set.build_training_set(tmp_path / "a", n_images=12, seed=3)
    assert load(again) == load(built)
    assert (again / "images" / "img_00000.png").read_bytes() == (built / "images" / "img_00000.png").read_bytes()
    other = training_set.build_training_set(tmp_path / "b", n_images=12, seed=4)
    assert load(other)["qa"] != load(built)["qa"]
