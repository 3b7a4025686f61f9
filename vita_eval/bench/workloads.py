"""Synthetic benchmark workloads written in the official layouts, at full scale or in miniature.

Built where the benchmark runs (no large files travel): VLMEvalKit TSVs with base64 JPEG images
(MME's second question cites the first row's image; MMBench's circular copies cite copy 0), the
LibriSpeech folder layout with FLAC files, and Video-MME's HF parquet with H.264 mp4s. Sizes
follow the real sets where the run can afford them; `Scale` states what is built. Items are made
by module-level functions, so a process pool can build them in parallel.

Content is cheap but not degenerate: images are gradients with shapes (JPEG decodes like a
photo, not like noise), audio is amplitude-modulated band-limited noise, transcripts are words
at 2.7 words per second (LibriSpeech's rate), videos are a moving shape on a gradient.
"""
from __future__ import annotations

import base64
import io
import random
from concurrent.futures import Executor
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from vita_eval.data.samples import circular_copies, write_tsv

LETTERS = "ABCD"
WORDS = ("THE AND OF TO A IN HE THAT WAS IT HIS SAID WITH AS YOU HAD FOR BUT SHE NOT BE AT HER ON HIM THEY "
         "ALL SO WERE WHICH HAVE BY ONE THIS LITTLE UPON MAN COULD WHEN OLD TIME DAY NIGHT HOUSE WATER HAND "
         "DOOR EYES FATHER MOTHER COUNTRY RIVER MORNING THOUGHT NOTHING WITHOUT BEFORE AGAIN").split()
# Image shapes of the real sets: mostly 4:3 / 3:4 / 3:2 photos and screenshots (6 tiles + thumbnail
# under VITA's max 6 tiles), some 16:9 (2 + thumbnail) and square (1, or 4 + thumbnail).
ASPECTS = ((4, 3, 0.35), (3, 4, 0.15), (3, 2, 0.15), (2, 3, 0.05), (16, 9, 0.15), (1, 1, 0.15))


@dataclass(frozen=True)
class Scale:
    """How much of each workload is built (full = the real set's size unless stated)."""

    mme_images: int = 1187  # x 2 questions = 2,374 (MME)
    mmbench_questions: int = 1164  # MMBench_DEV_EN: 1,164 questions, ~4,330 rows with circular copies
    librispeech_utterances: int = 2939  # test-other
    videomme_videos: int = 900  # x 3 questions
    mathvista_questions: int = 1000  # testmini
    image_px: tuple[int, int] = (512, 1500)  # long side
    speech_s: tuple[float, float] = (2.0, 35.0)
    speech_mean_s: float = 6.5  # test-other: 5.3 h / 2,939
    video: tuple[int, int, int, float] = (640, 360, 10, 20.0)  # width, height, fps, seconds
    square: bool = False  # only square images (miniature runs)

    @classmethod
    def tiny(cls) -> "Scale":
        """A few samples of each, square 448 px images and 96 px square frames (one tile each)."""
        return cls(mme_images=2, mmbench_questions=1, librispeech_utterances=3, videomme_videos=1,
                   mathvista_questions=1, image_px=(448, 448), speech_s=(2.0, 3.0), speech_mean_s=2.5,
                   video=(96, 96, 4, 2.0), square=True)


def _scene(rng: random.Random, width: int, height: int) -> Image.Image:
    """A colour gradient with a few shapes: decodes and tiles like a real picture."""
    a, b = np.array([rng.randrange(256) for _ in range(3)]), np.array([rng.randrange(256) for _ in range(3)])
    t = np.linspace(0.0, 1.0, width)[None, :, None] * 0.6 + np.linspace(0.0, 1.0, height)[:, None, None] * 0.4
    image = Image.fromarray((a + (b - a) * t).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 6)):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randint(width // 20 + 1, width // 6 + 2)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r), fill=fill)
    return image


def _jpeg_b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _image_size(rng: random.Random, scale: Scale) -> tuple[int, int]:
    w, h, _ = (1, 1, 1.0) if scale.square else rng.choices(ASPECTS, weights=[a[2] for a in ASPECTS])[0]
    long_side = rng.randint(*scale.image_px)
    return (long_side, round(long_side * h / w)) if w >= h else (round(long_side * w / h), long_side)


def _image(seed: int, scale: Scale) -> str:
    rng = random.Random(seed)
    return _jpeg_b64(_scene(rng, *_image_size(rng, scale)))


def _images(n: int, seed: int, scale: Scale, pool: Executor) -> list[str]:
    return list(pool.map(partial(_image, scale=scale), [seed * 1_000_003 + i for i in range(n)], chunksize=16))


def _sentence(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, n_words)))


def build_mme(root: Path, scale: Scale, pool: Executor) -> Path:
    """MME.tsv: two yes/no questions per image, the second row citing the first row's image."""
    rows = []
    for i, data in enumerate(_images(scale.mme_images, 1, scale, pool)):
        rng = random.Random(i)
        thing = rng.choice(["a dog", "a red car", "two people", "a clock", "the sky", "a green circle"])
        for j, (question, answer) in enumerate([(f"Is there {thing} in this image?", "Yes"),
                                                (f"Is there {rng.choice(['a cat', 'a bus', 'a tree'])} in this image?",
                                                 "No")]):
            rows.append({"index": 2 * i + j, "image": data if j == 0 else str(2 * i), "question": question,
                         "answer": answer, "category": "existence", "image_path": f"existence/{i:05d}.jpg"})
    path = root / "MME.tsv"
    write_tsv(rows, path)
    return path


def build_mmbench(root: Path, scale: Scale, pool: Executor) -> Path:
    """MMBench_DEV_EN.tsv: questions with 4 (80%), 3 or 2 options, each with its circular copies."""
    groups = []
    for i, data in enumerate(_images(scale.mmbench_questions, 2, scale, pool)):
        rng = random.Random(10_000 + i)
        n_options = rng.choices((4, 3, 2), weights=(0.8, 0.12, 0.08))[0]
        options = tuple(_sentence(rng, rng.randint(1, 4)).lower() for _ in range(n_options))
        row = {"index": i, "question": f"Which option best describes the {rng.choice(['object', 'scene', 'colour'])}?",
               "hint": _sentence(rng, rng.randint(5, 30)).lower() if i % 2 == 0 else np.nan, "category": "image_scene",
               "l2-category": "CP", "image": data, "source": "synthetic", "comment": np.nan, "split": "dev"}
        groups.append(circular_copies(row, options, rng.randrange(n_options)))
    rows = [copy for k in range(4) for group in groups for copy in group[k : k + 1]]
    columns = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "image",
               "source", "comment", "split"]
    path = root / "MMBench_DEV_EN.tsv"
    write_tsv([{c: r.get(c, np.nan) for c in columns} for r in rows], path)
    return path


def build_mathvista(root: Path, scale: Scale, pool: Executor) -> Path:
    rows = []
    for i, data in enumerate(_images(scale.mathvista_questions, 3, scale, pool), start=1):
        rng = random.Random(20_000 + i)
        rows.append({"index": i, "image": data, "question": f"How many shapes are there? {_sentence(rng, 8).lower()}",
                     "answer": str(rng.randint(1, 9)), "question_type": "free_form", "answer_type": "integer",
                     "answer_option": np.nan, "choices": np.nan, "task": "visual question answering",
                     "skills": str(["arithmetic reasoning"]), "precision": np.nan, "unit": np.nan})
    path = root / "MathVista_MINI.tsv"
    write_tsv(rows, path)
    return path


def _speech(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * 16000)
    noise = rng.standard_normal(n).astype(np.float32)
    band = np.convolve(noise, np.hanning(9).astype(np.float32) / 4.5, mode="same")
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * np.arange(n) / 16000 + rng.uniform(0, 6.28))
    return (0.1 * band * syllables).astype(np.float32)


def write_flac(path: Path, samples: np.ndarray) -> None:
    import av

    pcm = np.clip(samples * 32768.0, -32768, 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = 16000
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=16000, layout="mono")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def _duration(rng: random.Random, scale: Scale) -> float:
    lo, hi = scale.speech_s
    sigma = 0.6
    mu = np.log(max(scale.speech_mean_s - lo, 0.1)) - sigma**2 / 2
    return float(min(hi, lo + rng.lognormvariate(mu, sigma)))


def _utterance(i: int, base: Path, scale: Scale) -> tuple[Path, str]:
    """Write utterance i's FLAC; its folder and transcript line."""
    rng = random.Random(30_000 + i)
    seconds = _duration(rng, scale)
    spk, chapter = 1000 + i // 100, 10 + (i // 20) % 5
    uid = f"{spk}-{chapter}-{i % 20:04d}"
    folder = base / str(spk) / str(chapter)
    write_flac(folder / f"{uid}.flac", _speech(np.random.default_rng(i), seconds))
    return folder, f"{uid} {_sentence(rng, round(2.7 * seconds))}"


def build_librispeech(root: Path, scale: Scale, pool: Executor) -> Path:
    """LibriSpeech/test-other/<spk>/<chapter>/: FLAC utterances and a .trans.txt, 20 utterances a chapter."""
    base = root / "LibriSpeech" / "test-other"
    lines: dict[Path, list[str]] = {}
    for folder, line in pool.map(partial(_utterance, base=base, scale=scale), range(scale.librispeech_utterances),
                                 chunksize=16):
        lines.setdefault(folder, []).append(line)
    for folder, entries in lines.items():
        (folder / f"{folder.parent.name}-{folder.name}.trans.txt").write_text("\n".join(entries) + "\n")
    return base


def _write_video(v: int, base: Path, scale: Scale) -> None:
    _encode_video(base / "video" / f"synth{v:05d}.mp4", 40_000 + v, scale)


def _encode_video(path: Path, seed: int, scale: Scale) -> None:
    import av

    width, height, fps, seconds = scale.video
    rng = random.Random(seed)
    background = np.asarray(_scene(rng, width, height))
    n = int(fps * seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "28", "preset": "ultrafast", "threads": "1"}
        stream.time_base = Fraction(1, fps)
        for i in range(n):
            frame_array = background.copy()
            x = int((width - height // 4) * i / max(n - 1, 1))
            frame_array[height // 3 : height // 3 + height // 4, x : x + height // 4] = (255, 255, 0)
            frame = av.VideoFrame.from_ndarray(frame_array, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def build_videomme(root: Path, scale: Scale, pool: Executor) -> Path:
    """Video-MME/: the HF parquet (3 questions per video) and video/<id>.mp4."""
    base = root / "Video-MME"
    ids = [f"synth{v:05d}" for v in range(scale.videomme_videos)]
    list(pool.map(partial(_write_video, base=base, scale=scale), range(len(ids))))
    rows = []
    for v, video_id in enumerate(ids):
        rng = random.Random(50_000 + v)
        for q in range(3):
            options = [f"{LETTERS[k]}. {_sentence(rng, rng.randint(2, 6)).lower()}" for k in range(4)]
            rows.append({"video_id": f"{v:03d}", "duration": "short", "domain": "Knowledge",
                         "sub_category": "Technology", "url": f"https://www.youtube.com/watch?v={video_id}",
                         "videoID": video_id, "question_id": f"{v:03d}-{q + 1}", "task_type": "Object Recognition",
                         "question": f"What moves in the video? {_sentence(rng, 6).lower()}?", "options": options,
                         "answer": LETTERS[rng.randrange(4)]})
    (base / "videomme").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(base / "videomme" / "test-00000-of-00001.parquet", index=False)
    return base


BUILDERS = {"MME": build_mme, "MMBench_DEV_EN": build_mmbench, "LibriSpeech_test_other": build_librispeech,
            "Video-MME_8frame": build_videomme, "MathVista_MINI": build_mathvista}
