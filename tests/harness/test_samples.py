"""The bundled sample suites: official layouts, consistent circular copies, decodable media,
and the committed copy under benchmarks/samples is what the builder produces today."""
from __future__ import annotations

import ast
import base64
import io
import json
import subprocess
from pathlib import Path

import av
import pandas as pd
import pysubs2
import pytest
from PIL import Image

from vita_eval.data.samples import build_samples

pytestmark = pytest.mark.needs_tools('espeak-ng', 'sox')

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "benchmarks" / "samples"
MME_CATEGORIES = {
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
    "commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning"}
# VLMEvalKit's fixed Video-MME lists (vlmeval/dataset/utils/videomme.py); other names raise KeyError.
VIDEOMME_DOMAINS = {"Knowledge", "Film & Television", "Sports Competition", "Artistic Performance",
                    "Life Record", "Multilingual"}
VIDEOMME_TASKS = {"Temporal Perception", "Spatial Perception", "Attribute Perception", "Action Recognition",
                  "Object Recognition", "OCR Problems", "Counting Problem", "Temporal Reasoning",
                  "Spatial Reasoning", "Action Reasoning", "Object Reasoning", "Information Synopsis"}
VIDEOMME_SUBCATEGORIES = {
    "Humanity & History", "Literature & Art", "Biology & Medicine", "Finance & Commerce", "Astronomy",
    "Geography", "Law", "Life Tip", "Technology", "Animation", "Movie & TV Show", "Documentary", "News Report",
    "Esports", "Basketball", "Football", "Athletics", "Other Sports", "Stage Play", "Magic Show", "Variety Show",
    "Acrobatics", "Handicraft", "Food", "Fashion", "Daily Life", "Travel", "Pet & Animal", "Exercise",
    "Multilingual"}
TEXT_SUFFIXES = {".tsv", ".json", ".jsonl", ".txt", ".srt", ".md"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_samples(tmp_path_factory.mktemp("samples"))


def tsv(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / f"{name}.tsv", sep="\t")


def decode(cell: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(cell)))


def duration(path: Path) -> float:
    return float(subprocess.run(["sox", "--i", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


def test_committed_copy_is_current(root: Path) -> None:
    built = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert built == sorted(p.relative_to(COMMITTED) for p in COMMITTED.rglob("*") if p.is_file())
    for rel in built:
        if rel.suffix in TEXT_SUFFIXES:
            assert (root / rel).read_bytes() == (COMMITTED / rel).read_bytes(), rel
    parquet = Path("Video-MME/videomme/test-00000-of-00001.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(root / parquet), pd.read_parquet(COMMITTED / parquet))


def test_committed_size_is_small() -> None:
    assert sum(p.stat().st_size for p in COMMITTED.rglob("*") if p.is_file()) < 3_000_000


def test_mme(root: Path) -> None:
    df = tsv(root, "MME")
    assert list(df.columns) == ["index", "image", "question", "answer", "category", "image_path"]
    assert set(df["category"]) == MME_CATEGORIES and len(df) == 28
    assert df["question"].str.endswith("Please answer yes or no.").all()
    for _, pair in df.groupby("image_path", sort=False):
        assert list(pair["answer"]) == ["Yes", "No"] and pair["category"].nunique() == 1
        first, second = pair.iloc[0], pair.iloc[1]
        assert decode(first["image"]).size == (448, 448)
        assert second["image"] == str(first["index"])


def test_mmbench_circular(root: Path) -> None:
    df = tsv(root, "MMBench_DEV_EN")
    assert list(df.columns) == ["index", "question", "hint", "A", "B", "C", "D", "answer", "category",
                                "l2-category", "image", "source", "comment", "split"]
    copy0 = df[df["index"] < 1_000_000]
    assert len(copy0) >= 6 and copy0["D"].isna().any() and copy0["hint"].isna().any()
    assert copy0["l2-category"].nunique() >= 3
    for _, row in copy0.iterrows():
        options = [row[c] for c in "ABCD" if pd.notna(row[c])]
        copies = df[df["index"] % 1_000_000 == row["index"]].sort_values("index")
        assert list(copies["index"]) == [k * 1_000_000 + row["index"] for k in range(len(options))]
        right = row[row["answer"]]
        for k, (_, copy) in enumerate(copies.iterrows()):
            assert [copy[c] for c in "ABCD"[:len(options)]] == options[k:] + options[:k]
            assert copy[copy["answer"]] == right
            if k:
                assert copy["image"] == str(row["index"])
        decode(row["image"]).load()


def test_mathvista(root: Path) -> None:
    df = tsv(root, "MathVista_MINI")
    assert list(df.columns) == ["index", "image", "question", "answer", "question_type", "answer_type",
                                "answer_option", "choices", "task", "skills", "precision", "unit"]
    assert df["question"].str.startswith("Hint: ").all() and df["question"].str.contains("\nQuestion: ").all()
    ints = df[df["answer_type"] == "integer"]
    assert (ints["answer"] == "0").any() and ints["answer"].map(int).ge(0).all()
    assert (df["answer_type"] == "float").sum() == 1
    mc = df[df["question_type"] == "multi_choice"]
    assert len(mc) >= 2
    for _, row in mc.iterrows():
        choices = ast.literal_eval(row["choices"])
        assert choices["ABCD".index(row["answer_option"])] == row["answer"]
        assert "\nChoices:\n(A) " in row["question"]
    assert all(isinstance(ast.literal_eval(s), list) for s in df["skills"])


def test_videomme(root: Path) -> None:
    base = root / "Video-MME"
    df = pd.read_parquet(base / "videomme" / "test-00000-of-00001.parquet")
    assert list(df.columns) == ["video_id", "duration", "domain", "sub_category", "url", "videoID",
                                "question_id", "task_type", "question", "options", "answer"]
    assert len(df) == 9 and df["videoID"].nunique() == 3 and set(df["duration"]) == {"short"}
    assert set(df["domain"]) <= VIDEOMME_DOMAINS and set(df["task_type"]) <= VIDEOMME_TASKS
    assert set(df["sub_category"]) <= VIDEOMME_SUBCATEGORIES
    for options, answer in zip(df["options"], df["answer"]):
        assert [o[:3] for o in options] == ["A. ", "B. ", "C. ", "D. "] and answer in "ABCD"
    for vid in df["videoID"].unique():
        with av.open(str(base / "video" / f"{vid}.mp4")) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 24 and frames[0].shape == (224, 224, 3)
        assert len(pysubs2.load(str(base / "subtitle" / f"{vid}.srt"))) == 2


def test_librispeech_and_aishell(root: Path) -> None:
    libri = root / "LibriSpeech" / "test-clean" / "9001" / "100"
    lines = (libri / "9001-100.trans.txt").read_text().splitlines()
    assert len(lines) == 5
    for line in lines:
        utt, text = line.split(" ", 1)
        assert text == text.upper() and duration(libri / f"{utt}.flac") > 0.5
    aishell = (root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt").read_text(encoding="utf-8")
    for line in aishell.splitlines():
        utt, text = line.split(" ", 1)
        assert " " in text and duration(root / "data_aishell" / "wav" / "test" / utt[6:11] / f"{utt}.wav") > 0.5


def test_wenetspeech(root: Path) -> None:
    meta = json.loads((root / "WenetSpeech" / "WenetSpeech.json").read_text(encoding="utf-8"))
    audio = meta["audios"][0]
    segments = audio["segments"]
    assert {s for seg in segments for s in seg["subsets"]} == {"TEST_NET", "TEST_MEETING"}
    assert all(" " not in seg["text"] and 0 <= seg["begin_time"] < seg["end_time"] for seg in segments)
    with av.open(str(root / "WenetSpeech" / audio["path"])) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
        rate = container.streams.audio[0].rate
    assert samples / rate >= segments[-1]["end_time"]


def test_manifest_points_at_real_audio(root: Path) -> None:
    manifest = root / "manifest" / "asr.jsonl"
    entries = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert {e["language"] for e in entries} == {"en", "zh"}
    assert all((manifest.parent / e["audio"]).is_file() and e["text"] for e in entries)
    assert any("offset" in e and e["duration"] > 0 for e in entries)
