"""Synthetic, fully deterministic media and questions: shape scenes, espeak speech, tiny videos.

Two consumers share these primitives: the harness's bundled sample suites
(`vita_eval.data.samples`) and the synthetic VITA-JSON training set
(`vita15.train.synthetic`). Sharing the question templates and the prompt constants
below is the point: a tiny model trained on that set sees exactly the question styles
and answer formats the harness uses at evaluation. The module lives in `vita15` (not in
`vita15.train`) so that the harness never imports training code.
"""
from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pysubs2
from PIL import Image, ImageDraw

# --- Prompts: the harness presets must produce exactly these strings. -------------------
MME_QUESTION_END = "Please answer yes or no."
MME_SUFFIX = " Answer the question using a single word or phrase."
MCQ_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
VIDEO_MME_TEMPLATE = (
    "\nThese are the frames of a video. Select the best answer to the following multiple-choice "
    "question based on the video. Respond with only the letter (A, B, C, or D) of the correct option.\n"
)
ASR_PROMPT = "Please recognize the speech and only output the recognized content:"
MATHVISTA_HINT_INT = (
    "Please answer the question requiring an integer answer and provide the final value, "
    "e.g., 1, 2, 3, at the end."
)
MATHVISTA_HINT_FLOAT = (
    "Please answer the question requiring a floating-point number with one decimal place and "
    "provide the final value, e.g., 1.2, 1.3, 1.4, at the end."
)
MATHVISTA_HINT_MC = (
    "Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
)

# --- Vocabulary ------------------------------------------------------------------------
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 70),
    "blue": (40, 90, 220),
    "yellow": (235, 195, 20),
    "purple": (140, 60, 180),
}
KINDS: tuple[str, ...] = ("circle", "square", "triangle")
CORNERS: dict[str, int] = {"circle": 0, "square": 4, "triangle": 3}
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
ZH_COLORS: dict[str, str] = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "purple": "紫色"}
ZH_KINDS: dict[str, str] = {"circle": "圆形", "square": "正方形", "triangle": "三角形"}
EN_RELATIONS: tuple[str, ...] = ("is next to", "moves toward", "is above", "is below", "is left of", "is right of")
ZH_PLACES: tuple[str, ...] = ("左边", "右边", "上面", "下面", "旁边")

SAMPLE_RATE = 16000
LETTERS = "ABCD"
BITEXACT = {"fflags": "+bitexact"}  # no random Ogg serials or version tags: same seed, same bytes


# --- Scenes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    kind: str
    color: str
    x: int  # centre
    y: int
    r: int  # half-size

    @property
    def name(self) -> str:
        return f"{self.color} {self.kind}"


@dataclass(frozen=True)
class Scene:
    """An image and the ground truth about it; each (colour, kind) occurs at most once."""

    image: Image.Image
    shapes: tuple[Shape, ...]

    def count(self, kind: str | None = None, color: str | None = None) -> int:
        return sum((kind in (None, s.kind)) and (color in (None, s.color)) for s in self.shapes)

    def by_x(self) -> list[Shape]:
        return sorted(self.shapes, key=lambda s: (s.x, s.y))


def draw_shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    x, y, r = shape.x, shape.y, shape.r
    fill = COLORS[shape.color]
    if shape.kind == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=(0, 0, 0), width=2)
    elif shape.kind == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=fill, outline=(0, 0, 0), width=2)
    else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill, outline=(0, 0, 0), width=2)


def draw_scene(seed: int, *, size: int = 448, min_shapes: int = 1, max_shapes: int = 5) -> Scene:
    """Place 1-5 shapes in distinct cells of a 4x4 grid, so shapes never overlap and
    left/right relations are unambiguous (distinct columns are enforced)."""
    rng = random.Random(seed)
    n = rng.randint(min_shapes, max_shapes)
    combos = rng.sample([(c, k) for c in COLORS for k in KINDS], n)
    columns = rng.sample(range(4), min(n, 4))
    cells = [(col, rng.randrange(4)) for col in columns]
    if n == 5:  # the fifth shape shares the rightmost column, so "leftmost" stays unique
        shared = columns.index(max(columns))
        cells.append((columns[shared], (cells[shared][1] + 2) % 4))
    cell = size // 4
    centre = cell // 2
    shapes = tuple(
        Shape(kind, color, col * cell + centre + rng.randint(-8, 8), row * cell + centre + rng.randint(-8, 8),
              rng.randint(cell // 4, centre - 12))
        for (color, kind), (col, row) in zip(combos, cells)
    )
    image = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        draw_shape(draw, shape)
    return Scene(image, shapes)


def caption(scene: Scene) -> str:
    """A left-to-right description: the stage-1.1 caption target."""
    names = [f"a {s.name}" for s in scene.by_x()]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    noun = "shape" if len(names) == 1 else "shapes"
    return f"The image shows {len(names)} {noun} from left to right: {listed}."


def plural(kind: str) -> str:
    return kind + "s"


# --- Yes/No questions (MME) --------------------------------------------------------------
YesNo = tuple[str, str] | None  # (question with a Yes answer, question with a No answer)


def _yn_existence(scene: Scene, rng: random.Random) -> YesNo:
    present = rng.choice(scene.shapes).name
    absent = rng.choice([f"{c} {k}" for c in COLORS for k in KINDS if scene.count(k, c) == 0])
    return f"Is there a {present} in this image?", f"Is there a {absent} in this image?"


def _yn_count(scene: Scene, rng: random.Random) -> YesNo:
    kind = rng.choice([s.kind for s in scene.shapes])
    n = scene.count(kind)
    wrong = rng.choice([m for m in range(6) if m != n])
    q = "Is the number of {} in this image {}?"
    return q.format(plural(kind), n), q.format(plural(kind), wrong)


def _yn_total(scene: Scene, rng: random.Random) -> YesNo:
    n = len(scene.shapes)
    wrong = rng.choice([m for m in range(1, 7) if m != n])
    q = "Is the total number of shapes in this image {}?"
    return q.format(n), q.format(wrong)


def _yn_position(scene: Scene, rng: random.Random) -> YesNo:
    pairs = [(a, b) for a in scene.shapes for b in scene.shapes if a.x < b.x - 40]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    q = "Is the {} on the left of the {}?"
    return q.format(a.name, b.name), q.format(b.name, a.name)


def _yn_color(scene: Scene, rng: random.Random) -> YesNo:
    unique = [s for s in scene.shapes if scene.count(s.kind) == 1]
    if not unique:
        return None
    shape = rng.choice(unique)
    wrong = rng.choice([c for c in COLORS if c != shape.color])
    q = "Is the {} in this image {}?"
    return q.format(shape.kind, shape.color), q.format(shape.kind, wrong)


def _yn_compare(scene: Scene, rng: random.Random) -> YesNo:
    pairs = [(a, b) for a in KINDS for b in KINDS if scene.count(a) > scene.count(b)]
    if not pairs:
        return None
    more, fewer = rng.choice(pairs)
    q = "Are there more {} than {} in this image?"
    return q.format(plural(more), plural(fewer)), q.format(plural(fewer), plural(more))


YN_TEMPLATES: dict[str, Callable[[Scene, random.Random], YesNo]] = {
    "existence": _yn_existence, "count": _yn_count, "total": _yn_total,
    "position": _yn_position, "color": _yn_color, "compare": _yn_compare,
}
# All 14 MME categories (10 perception, 4 cognition) mapped onto shape-question templates.
MME_CATEGORIES: dict[str, str] = {
    "existence": "existence", "count": "count", "position": "position", "color": "color",
    "posters": "color", "celebrity": "existence", "scene": "total", "landmark": "position",
    "artwork": "color", "OCR": "existence", "commonsense_reasoning": "compare",
    "numerical_calculation": "total", "text_translation": "existence", "code_reasoning": "count",
}


def yes_no_pair(scene: Scene, template: str, rng: random.Random) -> tuple[str, str] | None:
    """MME-style (yes question, no question), each ending with MME_QUESTION_END;
    None when the scene cannot support the template (callers draw another scene)."""
    pair = YN_TEMPLATES[template](scene, rng)
    return None if pair is None else (f"{pair[0]} {MME_QUESTION_END}", f"{pair[1]} {MME_QUESTION_END}")


# --- Multiple-choice questions (MMBench, MathVista, Video-MME) ---------------------------
@dataclass(frozen=True)
class Choice:
    question: str
    options: tuple[str, ...]
    answer: int  # index into options


def _distractors(right: str, pool: list[str], n: int, rng: random.Random) -> tuple[list[str], int]:
    """`right` plus n-1 others from pool, shuffled; returns (options, answer index)."""
    options = [right] + rng.sample([p for p in pool if p != right], n - 1)
    rng.shuffle(options)
    return options, options.index(right)


def _mc_color_of(scene: Scene, rng: random.Random) -> Choice | None:
    unique = [s for s in scene.shapes if scene.count(s.kind) == 1]
    if not unique:
        return None
    shape = rng.choice(unique)
    opts, ans = _distractors(shape.color, list(COLORS), 4, rng)
    return Choice(f"What color is the {shape.kind}?", tuple(opts), ans)


def _mc_leftmost_kind(scene: Scene, rng: random.Random) -> Choice | None:
    opts, ans = _distractors(scene.by_x()[0].kind, list(KINDS), 3, rng)
    return Choice("What shape is the leftmost object in the image?", tuple(opts), ans)


def _mc_leftmost_color(scene: Scene, rng: random.Random) -> Choice | None:
    opts, ans = _distractors(scene.by_x()[0].color, list(COLORS), 4, rng)
    return Choice("What color is the leftmost shape?", tuple(opts), ans)


def _mc_total(scene: Scene, rng: random.Random) -> Choice | None:
    opts, ans = _distractors(str(len(scene.shapes)), [str(m) for m in range(1, 7)], 4, rng)
    return Choice("How many shapes are in the image?", tuple(opts), ans)


def _mc_most_kind(scene: Scene, rng: random.Random) -> Choice | None:
    counts = sorted(((scene.count(k), k) for k in KINDS), reverse=True)
    if counts[0][0] == counts[1][0]:
        return None
    opts, ans = _distractors(counts[0][1], list(KINDS), 3, rng)
    return Choice("Which shape appears most often in the image?", tuple(opts), ans)


def _mc_corners(scene: Scene, rng: random.Random) -> Choice | None:
    unique = [s for s in scene.shapes if scene.count(color=s.color) == 1]
    if not unique:
        return None
    shape = rng.choice(unique)
    opts, ans = _distractors(str(CORNERS[shape.kind]), ["0", "3", "4", "5"], 4, rng)
    return Choice(f"How many corners does the {shape.color} shape have?", tuple(opts), ans)


MC_TEMPLATES: dict[str, Callable[[Scene, random.Random], Choice | None]] = {
    "color_of": _mc_color_of, "leftmost_kind": _mc_leftmost_kind, "leftmost_color": _mc_leftmost_color,
    "total": _mc_total, "most_kind": _mc_most_kind, "corners": _mc_corners,
}
# template -> (MMBench leaf category, l2-category)
MMBENCH_CATEGORIES: dict[str, tuple[str, str]] = {
    "color_of": ("attribute_recognition", "finegrained_perception (instance-level)"),
    "leftmost_kind": ("object_localization", "finegrained_perception (instance-level)"),
    "leftmost_color": ("spatial_relationship", "finegrained_perception (cross-instance)"),
    "total": ("image_scene", "coarse_perception"),
    "most_kind": ("attribute_comparison", "finegrained_perception (cross-instance)"),
    "corners": ("physical_property_reasoning", "attribute_reasoning"),
}
MMBENCH_HINT = "The image shows colored shapes on a white background."


def choice_question(scene: Scene, template: str, rng: random.Random) -> Choice | None:
    return MC_TEMPLATES[template](scene, rng)


# --- MathVista-style questions -----------------------------------------------------------
@dataclass(frozen=True)
class MathQuestion:
    """One MathVista row's content; `answer` is the text the scorer compares."""

    query: str
    question: str
    answer: str
    question_type: str  # multi_choice | free_form
    answer_type: str  # text | integer | float
    choices: tuple[str, ...] = ()
    precision: int | None = None


def math_count(scene: Scene, rng: random.Random, *, absent: bool = False) -> MathQuestion:
    """Integer counting; `absent` asks about a kind not in the scene (answer 0)."""
    pool = [k for k in KINDS if (scene.count(k) == 0) == absent] or list(KINDS)
    kind = rng.choice(pool)
    question = f"How many {plural(kind)} are there in the image?"
    return MathQuestion(f"Hint: {MATHVISTA_HINT_INT}\nQuestion: {question}", question,
                        str(scene.count(kind)), "free_form", "integer")


def math_color(scene: Scene, rng: random.Random) -> MathQuestion | None:
    choice = _mc_color_of(scene, rng)
    if choice is None:
        return None
    listed = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(choice.options))
    query = f"Hint: {MATHVISTA_HINT_MC}\nQuestion: {choice.question}\nChoices:\n{listed}"
    return MathQuestion(query, choice.question, choice.options[choice.answer], "multi_choice", "text",
                        choice.options)


def math_weight(scene: Scene, rng: random.Random) -> MathQuestion:
    """A one-decimal float: total weight of one kind at 0.5 kg each."""
    kind = rng.choice([s.kind for s in scene.shapes])
    question = f"Each {kind} weighs 0.5 kg. What is the total weight of the {plural(kind)} in kg?"
    return MathQuestion(f"Hint: {MATHVISTA_HINT_FLOAT}\nQuestion: {question}", question,
                        f"{0.5 * scene.count(kind):.1f}", "free_form", "float", precision=1)


MATH_MAKERS: tuple[Callable[[Scene, random.Random], MathQuestion | None], ...] = (
    lambda scene, rng: math_count(scene, rng, absent=rng.random() < 0.2), math_weight, math_color)


# --- Prompt builders (mirroring the harness presets) --------------------------------------
def mme_prompt(question: str) -> str:
    return question + MME_SUFFIX


def mcq_prompt(question: str, options: tuple[str, ...] | list[str], hint: str | None = None) -> str:
    lines = "".join(f"\n{LETTERS[i]}. {o}" for i, o in enumerate(options))
    return (f"{hint}\n" if hint else "") + question + lines + MCQ_SUFFIX


def video_mme_prompt(question: str, options: list[str]) -> str:
    """`options` are Video-MME candidates, already "A. ..." formatted."""
    return VIDEO_MME_TEMPLATE + f"Question: {question}\n" + "\n".join(options) + "\nAnswer: "


def video_options(choice: Choice) -> list[str]:
    return [f"{LETTERS[i]}. {o}" for i, o in enumerate(choice.options)]


# --- Sentences for ASR -------------------------------------------------------------------
def english_sentence(rng: random.Random) -> str:
    """LibriSpeech-style reference: uppercase, no punctuation."""
    c1, c2 = rng.sample(list(COLORS), 2)
    k1, k2 = rng.choice(KINDS), rng.choice(KINDS)
    return f"THE {c1} {k1} {rng.choice(EN_RELATIONS)} THE {c2} {k2}".upper()


def chinese_sentence(rng: random.Random) -> str:
    """AISHELL-style reference: words separated by spaces."""
    c1, c2 = rng.sample(list(ZH_COLORS), 2)
    k1, k2 = rng.choice(KINDS), rng.choice(KINDS)
    return f"{ZH_COLORS[c1]} 的 {ZH_KINDS[k1]} 在 {ZH_COLORS[c2]} 的 {ZH_KINDS[k2]} {rng.choice(ZH_PLACES)}"


def distinct_sentences(make: Callable[[random.Random], str], n: int, seed: int,
                       exclude: frozenset[str] = frozenset()) -> list[str]:
    rng, out = random.Random(seed), []
    while len(out) < n:
        s = make(rng)
        if s not in exclude and s not in out:
            out.append(s)
    return out


# The bundled sample suites' sentences (held out of training, which shares their words only):
# 5 LibriSpeech utterances; 5 AISHELL utterances + 4 WenetSpeech segments.
N_SAMPLE_SENTENCES: dict[str, int] = {"en": 5, "zh": 9}
_SENTENCE_MAKERS: dict[str, tuple[Callable[[random.Random], str], int]] = {
    "en": (english_sentence, 7001), "zh": (chinese_sentence, 7002)}


def sample_sentences(language: str) -> list[str]:
    make, seed = _SENTENCE_MAKERS[language]
    return distinct_sentences(make, N_SAMPLE_SENTENCES[language], seed)


# --- Speech ------------------------------------------------------------------------------
def synthesize_speech(text: str, out_path: Path, *, language: str = "en", seed: int = 0) -> float:
    """Speak `text` with espeak-ng (English / Mandarin) into a 16 kHz mono 16-bit file whose
    format follows the suffix (.wav, .flac); returns the duration in seconds.
    The seed varies speed and pitch so that training speech is not one fixed voice."""
    rng = random.Random(seed)
    # Debian's plain `cmn` voice reads hanzi as English-spelled pinyin; this one speaks Mandarin.
    voice = "en-us" if language == "en" else "cmn-latn-pinyin"
    spoken = text.lower() if language == "en" else text.replace(" ", "")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    raw = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rng.randint(140, 180)),
                          "-p", str(rng.randint(35, 65)), "--stdout", spoken],
                         check=True, capture_output=True).stdout
    subprocess.run(["sox", "-D", "-t", "wav", "-", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out_path)],
                   input=raw, check=True, capture_output=True)
    return audio_duration(out_path)


def audio_duration(path: Path) -> float:
    out = subprocess.run(["sox", "--i", "-D", str(path)], check=True, capture_output=True, text=True)
    return float(out.stdout)


def read_audio(path: Path) -> np.ndarray:
    """Any sox-readable file as float32 mono 16 kHz."""
    raw = subprocess.run(["sox", "-D", str(path), "-t", "raw", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                          "-e", "signed-integer", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def write_opus(samples: np.ndarray, path: Path) -> None:
    """float32 16 kHz mono -> Ogg Opus (WenetSpeech's container) through PyAV."""
    pcm = np.clip(samples * 32768.0, -32768, 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="opus", options=BITEXACT) as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = 24000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)



# --- Videos ------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoFacts:
    kind: str
    color: str
    direction: str
    n_frames: int
    fps: int


def video_facts(seed: int, *, seconds: float = 3.0, fps: int = 8) -> VideoFacts:
    rng = random.Random(seed)
    return VideoFacts(rng.choice(KINDS), rng.choice(list(COLORS)), rng.choice(DIRECTIONS),
                      round(seconds * fps), fps)


def _frame(facts: VideoFacts, i: int, size: int) -> Image.Image:
    t = i / max(facts.n_frames - 1, 1)
    lo, hi = size // 6, size - size // 6
    along = lo + (hi - lo) * (t if facts.direction in ("right", "down") else 1 - t)
    x, y = (along, size // 2) if facts.direction in ("left", "right") else (size // 2, along)
    image = Image.new("RGB", (size, size), (250, 250, 250))
    draw_shape(ImageDraw.Draw(image), Shape(facts.kind, facts.color, int(x), int(y), size // 8))
    return image


def write_video(path: Path, facts: VideoFacts, *, size: int = 224, srt_path: Path | None = None) -> None:
    """H.264 mp4 of one shape crossing the frame; optional .srt narrating it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options=BITEXACT) as container:
        stream = container.add_stream("libx264", rate=facts.fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "30", "preset": "veryfast", "threads": "1"}
        stream.time_base = Fraction(1, facts.fps)
        for i in range(facts.n_frames):
            frame = av.VideoFrame.from_image(_frame(facts, i, size))
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    if srt_path is not None:
        write_subtitles(srt_path, facts)


def write_subtitles(path: Path, facts: VideoFacts) -> None:
    end_ms = round(1000 * facts.n_frames / facts.fps)
    subs = pysubs2.SSAFile()
    subs.append(pysubs2.SSAEvent(start=0, end=end_ms // 2, text=f"A {facts.color} {facts.kind} appears."))
    subs.append(pysubs2.SSAEvent(start=end_ms // 2, end=end_ms, text=f"The {facts.kind} moves {facts.direction}."))
    path.parent.mkdir(parents=True, exist_ok=True)
    subs.save(str(path), format_="srt")


def video_choices(facts: VideoFacts, rng: random.Random) -> list[tuple[Choice, str]]:
    """Three 4-option questions per video with their Video-MME task types."""
    color, ca = _distractors(facts.color, list(COLORS), 4, rng)
    way, wa = _distractors(facts.direction, list(DIRECTIONS), 4, rng)
    kind, ka = _distractors(facts.kind, [*KINDS, "star"], 4, rng)
    return [
        (Choice("What color is the moving shape?", tuple(color), ca), "Attribute Perception"),
        (Choice("In which direction does the shape move?", tuple(way), wa), "Spatial Perception"),
        (Choice("What shape moves in the video?", tuple(kind), ka), "Object Recognition"),
    ]



def scene_for(rng: random.Random, accept: Callable[[Scene], object]) -> tuple[Scene, object]:
    """Draw scenes until `accept` returns a non-None result (templates need some layouts)."""
    while True:
        scene = draw_scene(rng.getrandbits(32))
        result = accept(scene)
        if result is not None:
            return scene, result


