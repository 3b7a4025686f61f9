"""The synthetic VITA-JSON training set built from `vita15.synthetic`'s scenes, speech and videos.

Layout (`build_training_set`):
    OUT/caption.json qa.json asr.json spoken_qa.json video_qa.json   (VITA-JSON lists)
    OUT/images/*.png   OUT/videos/*.mp4   OUT/audio/*.wav
`set` keys map to folders through `SET_FOLDERS` (a recipe maps them to absolute paths);
`audio` names are relative to `AUDIO_FOLDER`.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from vita15.synthetic import (
    ASR_PROMPT,
    LETTERS,
    MATH_MAKERS,
    MC_TEMPLATES,
    MMBENCH_HINT,
    YN_TEMPLATES,
    caption,
    chinese_sentence,
    choice_question,
    distinct_sentences,
    english_sentence,
    mcq_prompt,
    mme_prompt,
    sample_sentences,
    scene_for,
    synthesize_speech,
    video_choices,
    video_facts,
    video_mme_prompt,
    video_options,
    write_video,
    yes_no_pair,
)

SET_FOLDERS: dict[str, str] = {"synth_images": "images", "synth_videos": "videos", "synth_audio": "audio"}
AUDIO_FOLDER = "audio"

# --- Training set ------------------------------------------------------------------------
CAPTION_PROMPTS: tuple[str, ...] = ("Describe the image briefly.", "What is in this image?",
                                    "Give a short caption for the image.")


def _sample(set_name: str, sid: str, human: str, gpt: str, **media: str) -> dict:
    return {"set": set_name, "id": sid, **media,
            "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]}


SpokenItem = tuple[str, str, str]  # (image file, question to speak, answer)


def _image_samples(out_dir: Path, n_images: int,
                   rng: random.Random) -> tuple[list[dict], list[dict], list[SpokenItem]]:
    """Captions and text QA (MME / MMBench / MathVista styles), one image each round,
    plus the questions to speak for stage 2.2."""
    captions, qa, spoken = [], [], []
    yn, mc = sorted(YN_TEMPLATES), sorted(MC_TEMPLATES)
    for i in range(n_images):
        template = yn[i % len(yn)]
        scene, pair = scene_for(rng, lambda s: yes_no_pair(s, template, rng))
        name = f"img_{i:05d}.png"
        scene.image.save(out_dir / "images" / name)
        img = {"image": name}
        captions.append(_sample("synth_images", f"cap_{i}", f"<image>\n{rng.choice(CAPTION_PROMPTS)}",
                                caption(scene), **img))
        for answer, question in zip(("Yes", "No"), pair):
            qa.append(_sample("synth_images", f"mme_{i}_{answer}", "<image>\n" + mme_prompt(question),
                              answer, **img))
        choice = choice_question(scene, mc[i % len(mc)], rng)
        if choice is not None:
            hint = MMBENCH_HINT if rng.random() < 0.5 else None
            prompt = mcq_prompt(choice.question, choice.options, hint)
            qa.append(_sample("synth_images", f"mcq_{i}", "<image>\n" + prompt, LETTERS[choice.answer], **img))
        math = MATH_MAKERS[i % len(MATH_MAKERS)](scene, rng)
        if math is not None:
            qa.append(_sample("synth_images", f"math_{i}", f"<image>\n{math.query}", math.answer, **img))
        spoken.append((name, pair[i % 2], ("Yes", "No")[i % 2]))
    return captions, qa, spoken


def _asr_samples(out_dir: Path, n: int, seed: int) -> list[dict]:
    """Half English (uppercase), half Mandarin (segmented); never a sample-suite sentence."""
    held_out = frozenset(sample_sentences("en") + sample_sentences("zh"))
    texts = [("en", s) for s in distinct_sentences(english_sentence, n - n // 2, seed, held_out)]
    texts += [("zh", s) for s in distinct_sentences(chinese_sentence, n // 2, seed + 1, held_out)]
    samples = []
    for i, (lang, text) in enumerate(texts):
        name = f"asr_{i:05d}.wav"
        synthesize_speech(text, out_dir / AUDIO_FOLDER / name, language=lang, seed=seed + i)
        samples.append(_sample("synth_audio", f"asr_{i}", f"{ASR_PROMPT}<audio>", text, audio=name))
    return samples


def _spoken_samples(out_dir: Path, spoken: list[SpokenItem], seed: int) -> list[dict]:
    """The human turn is the image plus the spoken question (no text)."""
    samples = []
    for i, (image, question, answer) in enumerate(spoken):
        name = f"q_{i:05d}.wav"
        synthesize_speech(question, out_dir / AUDIO_FOLDER / name, language="en", seed=seed + i)
        samples.append(_sample("synth_images", f"spoken_{i}", "<image>\n<audio>\n", answer,
                               image=image, audio=name))
    return samples


def _video_samples(out_dir: Path, n: int, rng: random.Random) -> list[dict]:
    samples = []
    for i in range(n):
        facts = video_facts(rng.getrandbits(32))
        name = f"vid_{i:05d}.mp4"
        write_video(out_dir / "videos" / name, facts)
        for j, (choice, _task) in enumerate(video_choices(facts, rng)):
            prompt = video_mme_prompt(choice.question, video_options(choice))
            samples.append(_sample("synth_videos", f"video_{i}_{j}", "<video>\n" + prompt,
                                   LETTERS[choice.answer], video=name))
    return samples


def build_training_set(out_dir: Path, *, n_images: int, seed: int) -> Path:
    """Write the five VITA-JSON files and their media under out_dir; returns out_dir.
    Sizes scale with n_images: n captions, ~4n QA, n/3 ASR pairs, n/4 spoken QA, 3*(n/10) video QA."""
    out_dir = Path(out_dir)
    for folder in SET_FOLDERS.values():
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    captions, qa, spoken = _image_samples(out_dir, n_images, rng)
    files = {
        "caption.json": captions,
        "qa.json": qa,
        "asr.json": _asr_samples(out_dir, max(2, n_images // 3), seed),
        "spoken_qa.json": _spoken_samples(out_dir, spoken[: max(1, n_images // 4)], seed),
        "video_qa.json": _video_samples(out_dir, max(1, n_images // 10), rng),
    }
    for name, samples in files.items():
        (out_dir / name).write_text(json.dumps(samples, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the synthetic VITA-JSON training set.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-images", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_training_set(args.out, n_images=args.n_images, seed=args.seed))


if __name__ == "__main__":
    main()
