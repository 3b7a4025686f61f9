"""Run directories of real-benchmark size, scored by the real scorers on made-up predictions.

The report benchmark (`scripts/bench_report.py`) and the report tests need per-sample tables shaped
exactly as the scorers write them (MME image pairs, MMBench circular groups, Video-MME's three
questions per video, LibriSpeech's S/D/I/N counts) at the sizes of the real suites, without the
real data. Each table is built in VLMEvalKit's column layout, answered correctly with probability
`skill` (seeded), and scored through `vita_eval.runner.scoring.score_suite`, so scores.json and
per_sample.jsonl are what a real run writes.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import pandas as pd

from vita_eval import fsio
from vita_eval.runner.scoring import score_suite
from vita_eval.scorers.mme import PERCEPTION, REASONING
from vita_eval.scorers.videomme import DIMENSIONS, DURATIONS
from vita_eval.suites import get_suite
from vita_eval.types import SuiteData

# Rows of the real suites (VLMEvalKit's TSVs, LibriSpeech test-clean).
FULL_SIZE = {"MME": 1187, "MMBench_DEV_EN": 1164, "Video-MME_8frame": 900, "LibriSpeech_test_clean": 2620}
MMBENCH_CATEGORIES = [(f"category_{i:02d}", l2) for i, l2 in
                      enumerate(["Coarse Perception", "Fine-grained Perception (single-instance)",
                                 "Fine-grained Perception (cross-instance)", "Logic Reasoning",
                                 "Relation Reasoning", "Attribute Reasoning"] * 3 + ["Logic Reasoning"] * 2)]
WORDS = "the red circle is above a blue square and below green triangle with small large shapes".split()

Table = tuple[pd.DataFrame, pd.DataFrame]  # (dataset rows, predictions)


def _mme(n_images: int, skill: float, rng: random.Random) -> Table:
    """Two yes/no questions per image (one Yes, one No), images spread over the 14 categories."""
    categories = PERCEPTION + REASONING
    rows, preds = [], []
    for image in range(n_images):
        for answer in ("Yes", "No"):
            index = len(rows)
            rows.append({"index": index, "question": f"Is it shape {image}? Please answer yes or no.",
                         "answer": answer, "category": categories[image % len(categories)],
                         "image_path": f"images/{image}.jpg"})
            right = rng.random() < skill
            preds.append({"index": index, "prediction": answer if right else {"Yes": "No", "No": "Yes"}[answer]})
    return pd.DataFrame(rows), pd.DataFrame(preds)


def _mmbench(n_questions: int, skill: float, rng: random.Random) -> Table:
    """Four circular copies per question (index + k x 1e6), options rotated as VLMEvalKit's TSV has them."""
    rows, preds = [], []
    letters = "ABCD"
    for question in range(n_questions):
        category, l2 = MMBENCH_CATEGORIES[question % len(MMBENCH_CATEGORIES)]
        options = [f"option {question}-{k}" for k in range(4)]
        for copy in range(4):
            index = question + copy * 1_000_000
            rotated = options[copy:] + options[:copy]
            answer = letters[rotated.index(options[0])]
            rows.append({"index": index, "question": f"Which is right? ({question})",
                         **dict(zip(letters, rotated)), "answer": answer, "category": category,
                         "l2-category": l2, "split": "dev"})
            guess = answer if rng.random() < skill else rng.choice([x for x in letters if x != answer])
            preds.append({"index": index, "prediction": guess})
    return pd.DataFrame(rows), pd.DataFrame(preds)


def _videomme(n_videos: int, skill: float, rng: random.Random) -> Table:
    """Three questions per video; duration, domain and sub-category per video, task type per question."""
    rows, preds = [], []
    for video in range(n_videos):
        meta = {"video": f"v{video:04d}", "duration": DURATIONS[video % 3],
                "domain": DIMENSIONS["domain"][video % len(DIMENSIONS["domain"])],
                "sub_category": DIMENSIONS["sub_category"][video % len(DIMENSIONS["sub_category"])]}
        for q in range(3):
            answer = "ABCD"[rng.randrange(4)]
            index = len(rows)
            rows.append({"index": index, **meta, "task_type": rng.choice(DIMENSIONS["task_type"]),
                         "question": f"What happens in video {video}?", "candidates": "['A. a', 'B. b', 'C. c', 'D. d']",
                         "answer": answer, "video_path": f"video/{meta['video']}.mp4", "subtitle_path": ""})
            guess = answer if rng.random() < skill else rng.choice([x for x in "ABCD" if x != answer])
            preds.append({"index": index, "prediction": guess})
    return pd.DataFrame(rows), pd.DataFrame(preds)


def _librispeech(n_utterances: int, skill: float, rng: random.Random) -> Table:
    """About 20 words per utterance; each word of the hypothesis is wrong with probability 1 - skill."""
    rows, preds = [], []
    for utt in range(n_utterances):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 32))]
        hyp = [w if rng.random() < skill else rng.choice(WORDS + [""]) for w in words]
        rows.append({"index": f"utt-{utt:05d}", "answer": " ".join(words).upper(), "language": "en",
                     "set": "test-clean"})
        preds.append({"index": f"utt-{utt:05d}", "prediction": " ".join(w for w in hyp if w)})
    return pd.DataFrame(rows), pd.DataFrame(preds)


MAKERS: dict[str, Callable[[int, float, random.Random], Table]] = {
    "MME": _mme, "MMBench_DEV_EN": _mmbench, "Video-MME_8frame": _videomme, "LibriSpeech_test_clean": _librispeech,
}


def write_synthetic_run(out: Path, *, skill: float, seed: int, scale: float = 1.0,
                        profile: str = "vlmevalkit-2026.08") -> Path:
    """`out` as a run directory of the four suites at `scale` x their real size; returns `out`."""
    for suite, maker in MAKERS.items():
        table, predictions = maker(max(2, round(FULL_SIZE[suite] * scale)), skill, random.Random(f"{suite}{seed}"))
        score_suite(get_suite(suite), SuiteData(table, []), predictions, out / suite, profile=profile, judge=None,
                    model_name=None, extra={})
    fsio.write_json(out / "run.json", {"run_id": out.name, "model": {"name": f"synthetic-skill-{skill}"},
                                       "config": {"suites": list(MAKERS), "profile": profile}})
    return out
