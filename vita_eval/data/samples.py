"""Build the bundled sample suites: tiny copies of each benchmark in its OFFICIAL layout.

They let every loader, preset and scorer run end to end offline, and they are the
evaluation targets of the synthetic training set (same shapes, words and question styles).
Regenerate with `python -m vita_eval.data.samples --out benchmarks/samples`.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import random
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vita15 import synthetic as syn

MMBENCH_TEMPLATES: tuple[str, ...] = tuple(syn.MC_TEMPLATES)
# (domain, sub_category) pairs from VLMEvalKit's fixed Video-MME lists.
VIDEO_DOMAINS: tuple[tuple[str, str], ...] = (
    ("Film & Television", "Animation"), ("Knowledge", "Technology"), ("Life Record", "Daily Life"))
LIBRI_SPEAKER, LIBRI_CHAPTER = "9001", "100"
AISHELL_SPEAKER = "S0901"
WENET_AID = "Y0000000001_synthetic"
WENET_SUBSETS: tuple[str, ...] = ("TEST_NET", "TEST_NET", "TEST_MEETING", "TEST_MEETING")


def encode_image(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_tsv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)


# --- Image suites --------------------------------------------------------------------------
def mme_rows(rng: random.Random) -> list[dict]:
    """One image per category, a Yes and a No question; the second row references the first."""
    rows: list[dict] = []
    for i, (category, template) in enumerate(syn.MME_CATEGORIES.items()):
        scene, pair = syn.scene_for(rng, lambda s: syn.yes_no_pair(s, template, rng))
        first = len(rows)
        for j, (question, answer) in enumerate(zip(pair, ("Yes", "No"))):
            rows.append({"index": first + j, "image": encode_image(scene.image) if j == 0 else str(first),
                         "question": question, "answer": answer, "category": category,
                         "image_path": f"{category}/{i:04d}.png"})
    return rows


def circular_copies(row: dict, options: tuple[str, ...], answer: int) -> list[dict]:
    """Copy 0 plus one rotated copy per further option (index k*1e6 + index0)."""
    n, copies = len(options), []
    for k in range(n):
        rotated = options[k:] + options[:k]
        letters = {syn.LETTERS[j]: rotated[j] if j < n else np.nan for j in range(4)}
        copies.append({**row, "index": k * 1_000_000 + row["index"], **letters,
                       "answer": syn.LETTERS[(answer - k) % n],
                       "image": row["image"] if k == 0 else str(row["index"])})
    return copies


def mmbench_rows(rng: random.Random) -> list[dict]:
    groups = []
    for i, template in enumerate(MMBENCH_TEMPLATES):
        scene, choice = syn.scene_for(rng, lambda s: syn.choice_question(s, template, rng))
        category, l2 = syn.MMBENCH_CATEGORIES[template]
        row = {"index": i, "question": choice.question, "hint": syn.MMBENCH_HINT if i % 2 == 0 else np.nan,
               "category": category, "l2-category": l2, "image": encode_image(scene.image),
               "source": "synthetic", "comment": np.nan, "split": "dev"}
        groups.append(circular_copies(row, choice.options, choice.answer))
    # Official files list every copy-0 row first, then the rotated copies.
    rows = [copy for k in range(4) for group in groups for copy in group[k:k + 1]]
    columns = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category",
               "image", "source", "comment", "split"]
    return [{c: r[c] for c in columns} for r in rows]


def mathvista_rows(rng: random.Random) -> list[dict]:
    """Counting (one answer 0), colour multiple choice, and one float."""
    makers = [
        lambda s: syn.math_count(s, rng), lambda s: syn.math_color(s, rng),
        lambda s: syn.math_count(s, rng, absent=True) if 0 in [s.count(k) for k in syn.KINDS] else None,
        lambda s: syn.math_color(s, rng), lambda s: syn.math_weight(s, rng),
        lambda s: syn.math_count(s, rng), lambda s: syn.math_color(s, rng), lambda s: syn.math_count(s, rng),
    ]
    rows = []
    for i, make in enumerate(makers, start=1):
        scene, q = syn.scene_for(rng, make)
        mc = q.question_type == "multi_choice"
        rows.append({
            "index": i, "image": encode_image(scene.image), "question": q.query, "answer": q.answer,
            "question_type": q.question_type, "answer_type": q.answer_type,
            "answer_option": syn.LETTERS[q.choices.index(q.answer)] if mc else np.nan,
            "choices": str(list(q.choices)) if mc else np.nan,
            "task": "figure question answering" if mc else "visual question answering",
            "skills": str(["logical reasoning"] if mc else ["arithmetic reasoning"]),
            "precision": float(q.precision) if q.precision else np.nan, "unit": np.nan,
        })
    return rows


# --- Video-MME -----------------------------------------------------------------------------
def build_videomme(root: Path, rng: random.Random) -> None:
    """HF release layout: videomme/test parquet + video/<id>.mp4 + subtitle/<id>.srt."""
    rows = []
    for v, (domain, sub_category) in enumerate(VIDEO_DOMAINS, start=1):
        video_id = f"shapes{v:05d}"
        facts = syn.video_facts(rng.getrandbits(32))
        syn.write_video(root / "video" / f"{video_id}.mp4", facts, srt_path=root / "subtitle" / f"{video_id}.srt")
        for q, (choice, task_type) in enumerate(syn.video_choices(facts, rng), start=1):
            rows.append({"video_id": f"{v:03d}", "duration": "short", "domain": domain,
                         "sub_category": sub_category, "url": f"https://www.youtube.com/watch?v={video_id}",
                         "videoID": video_id, "question_id": f"{v:03d}-{q}", "task_type": task_type,
                         "question": choice.question, "options": syn.video_options(choice),
                         "answer": syn.LETTERS[choice.answer]})
    (root / "videomme").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "videomme" / "test-00000-of-00001.parquet", index=False)


# --- ASR -----------------------------------------------------------------------------------
def build_librispeech(root: Path, seed: int) -> list[dict]:
    folder = root / "test-clean" / LIBRI_SPEAKER / LIBRI_CHAPTER
    lines, entries = [], []
    for i, text in enumerate(syn.sample_sentences("en")):
        utt = f"{LIBRI_SPEAKER}-{LIBRI_CHAPTER}-{i:04d}"
        syn.synthesize_speech(text, folder / f"{utt}.flac", language="en", seed=seed + i)
        lines.append(f"{utt} {text}")
        entries.append({"id": utt, "audio": f"LibriSpeech/test-clean/{LIBRI_SPEAKER}/{LIBRI_CHAPTER}/{utt}.flac",
                        "text": text, "language": "en"})
    (folder / f"{LIBRI_SPEAKER}-{LIBRI_CHAPTER}.trans.txt").write_text("\n".join(lines) + "\n")
    return entries


def build_aishell(root: Path, sentences: list[str], seed: int) -> list[dict]:
    lines, entries = [], []
    for i, text in enumerate(sentences, start=1):
        utt = f"BAC009{AISHELL_SPEAKER}W{i:04d}"
        syn.synthesize_speech(text, root / "wav" / "test" / AISHELL_SPEAKER / f"{utt}.wav", language="zh",
                              seed=seed + i)
        lines.append(f"{utt} {text}")
        entries.append({"id": utt, "audio": f"data_aishell/wav/test/{AISHELL_SPEAKER}/{utt}.wav", "text": text,
                        "language": "zh"})
    transcript = root / "transcript" / "aishell_transcript_v0.8.txt"
    transcript.parent.mkdir(parents=True, exist_ok=True)
    transcript.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return entries


def build_wenetspeech(root: Path, sentences: list[str], seed: int) -> list[dict]:
    """One long opus file, segments separated by 0.5 s of silence so that the 2-decimal
    begin/end times never cut speech."""
    gap = np.zeros(syn.SAMPLE_RATE // 2, dtype=np.float32)
    pieces, segments, entries, t = [gap], [], [], len(gap)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (text, subset) in enumerate(zip(sentences, WENET_SUBSETS)):
            wav = Path(tmp) / f"{i}.wav"
            syn.synthesize_speech(text, wav, language="zh", seed=seed + i)
            speech = syn.read_audio(wav)
            begin, end = t / syn.SAMPLE_RATE, (t + len(speech)) / syn.SAMPLE_RATE
            pieces += [speech, gap]
            t += len(speech) + len(gap)
            sid, plain = f"{WENET_AID}_S{i:05d}", text.replace(" ", "")
            segments.append({"sid": sid, "confidence": 1.0, "begin_time": round(begin - 0.1, 2),
                             "end_time": round(end + 0.1, 2), "subsets": [subset], "text": plain})
    audio_path = root / "audio" / f"{WENET_AID}.opus"
    syn.write_opus(np.concatenate(pieces), audio_path)
    meta = {"dataset": "WenetSpeech", "language": "Chinese", "version": "v1.0", "audios": [{
        "aid": WENET_AID, "path": f"audio/{WENET_AID}.opus", "duration": round(t / syn.SAMPLE_RATE, 2),
        "md5": hashlib.md5(audio_path.read_bytes()).hexdigest(), "source": "podcast", "tags": ["synthetic"],
        "url": "", "segments": segments}]}
    (root / "WenetSpeech.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for seg in segments:
        entries.append({"id": seg["sid"], "audio": f"WenetSpeech/audio/{WENET_AID}.opus", "text": seg["text"],
                        "language": "zh", "offset": seg["begin_time"],
                        "duration": round(seg["end_time"] - seg["begin_time"], 2)})
    return entries


def write_manifest(path: Path, entries: list[dict]) -> None:
    """Generic ASR manifest; entries carry root-relative paths, written relative to the manifest's folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**e, "audio": f"../{e['audio']}"}, ensure_ascii=False) + "\n" for e in entries]
    path.write_text("".join(lines), encoding="utf-8")


README = """# Bundled sample suites (synthetic)

Tiny, deterministic copies of each benchmark in its official on-disk layout, generated from
coloured-shape scenes, espeak-ng speech and PyAV videos (`vita15.train.synthetic`).
Regenerate (byte-identical) with:

    python -m vita_eval.data.samples --out benchmarks/samples

| path | what |
| --- | --- |
| `MME.tsv` | VLMEvalKit MME: 14 categories x 1 image x 2 questions (Yes, No); the second row's `image` holds the first row's index |
| `MMBench_DEV_EN.tsv` | VLMEvalKit MMBench: 6 questions (two with 3 options) with circular copies at k*1e6+index |
| `MathVista_MINI.tsv` | VLMEvalKit MathVista: 8 rows (integer counts incl. a 0, multi_choice colours, one float) |
| `Video-MME/videomme/test-00000-of-00001.parquet` | HF release table: 3 videos x 3 questions, duration `short` |
| `Video-MME/video/<videoID>.mp4`, `Video-MME/subtitle/<videoID>.srt` | 3 s, 8 fps, 224x224 H.264 clips of a moving shape, and their subtitles |
| `LibriSpeech/test-clean/9001/100/` | 5 FLAC utterances + `9001-100.trans.txt` (uppercase) |
| `data_aishell/wav/test/S0901/`, `data_aishell/transcript/aishell_transcript_v0.8.txt` | 5 Mandarin WAV utterances, space-segmented transcripts |
| `WenetSpeech/WenetSpeech.json`, `WenetSpeech/audio/*.opus` | one Opus file, 4 segments (2 `TEST_NET`, 2 `TEST_MEETING`) |
| `manifest/asr.jsonl` | generic ASR manifest over all of the above: `id`, `audio` (relative to `manifest/`), `text`, `language`, optional `offset`/`duration` (s) |

Speech is 16 kHz mono (opus decodes at 48 kHz). The synthetic training set
(`python -m vita15.train.synthetic --out DIR`) uses the same words but never these sentences.
"""


def build_samples(out: Path, *, seed: int = 0) -> Path:
    """Write every sample suite under `out`; returns out."""
    out = Path(out)
    rng = random.Random(seed)
    write_tsv(mme_rows(rng), out / "MME.tsv")
    write_tsv(mmbench_rows(rng), out / "MMBench_DEV_EN.tsv")
    write_tsv(mathvista_rows(rng), out / "MathVista_MINI.tsv")
    build_videomme(out / "Video-MME", rng)
    zh = syn.sample_sentences("zh")
    entries = build_librispeech(out / "LibriSpeech", seed)
    entries += build_aishell(out / "data_aishell", zh[:5], seed)
    entries += build_wenetspeech(out / "WenetSpeech", zh[5:], seed)
    write_manifest(out / "manifest" / "asr.jsonl", entries)
    (out / "README.md").write_text(README, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the bundled sample suites.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/samples"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_samples(args.out, seed=args.seed))


if __name__ == "__main__":
    main()
