"""Video-MME from the HF parquet and from both VLMEvalKit TSV layouts, with PyAV-made clips."""
from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pysubs2
import pytest

from vita_eval.data.videomme import (
    HEAD_COLUMNS, LAYOUT_HEAD, LAYOUT_JULY2024, LAYOUT_PARQUET, load_videomme, read_subtitles,
    split_july2024_question, subtitle_at,
)
from vita_eval.types import SampleError, SuiteError

OPTIONS = [["A. red", "B. blue", "C. green", "D. grey"], ["A. one", "B. two", "C. three", "D. four"],
           ["A. yes", "B. no", "C. maybe", "D. never"]]
SRT = "1\n00:00:00,000 --> 00:00:00,500\nHello\\Nworld\n\n2\n00:00:00,500 --> 00:00:01,000\nSecond line\n"


def write_clip(path: Path, n: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.time_base = Fraction(1, 10)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def hf_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "video_id": ["001", "002", "003"], "duration": ["short", "short", "medium"],
        "domain": ["Knowledge", "Sports Competition", "Knowledge"],
        "sub_category": ["Humanity & History", "Football", "Geography"], "url": ["u1", "u2", "u3"],
        "videoID": ["vidA", "vidB", "vidC"], "question_id": ["001-1", "002-1", "003-1"],
        "task_type": ["Counting Problem", "Action Recognition", "OCR Problems"],
        "question": ["What colour?", "How many\nplayers?", "Which word?"], "options": OPTIONS,
        "answer": ["A", "C", "B"],
    })


@pytest.fixture(scope="module")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videomme_media")
    (root / "video").mkdir()
    (root / "subtitle").mkdir()
    write_clip(root / "video" / "vidA.mp4", 10)
    write_clip(root / "video" / "vidB.mp4", 6)
    (root / "video" / "vidC.mp4").write_bytes(b"this is no mp4")
    (root / "subtitle" / "vidA.srt").write_text(SRT, encoding="utf-8")
    return root


def copy_root(media_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "Video-MME"
    shutil.copytree(media_root, root)
    return root


def head_tsv(frame: pd.DataFrame) -> pd.DataFrame:
    """What VLMEvalKit HEAD's generate_tsv writes."""
    out = frame.assign(index=range(len(frame)), video=frame["videoID"])
    out["video_path"] = "./video/" + out["videoID"] + ".mp4"
    out["subtitle_path"] = "./subtitle/" + out["videoID"] + ".srt"
    out["candidates"] = out["options"].apply(list)
    return out[HEAD_COLUMNS]


def test_parquet_layout(media_root: Path, tmp_path: Path) -> None:
    root = copy_root(media_root, tmp_path)
    (root / "videomme").mkdir()
    hf_frame().to_parquet(root / "videomme" / "test-00000-of-00001.parquet")
    data = load_videomme(root)
    assert data.table.attrs["layout"] == LAYOUT_PARQUET
    assert list(data.table.columns) == HEAD_COLUMNS
    assert data.table["candidates"][0] == "['A. red', 'B. blue', 'C. green', 'D. grey']"
    assert data.table["video_path"][1] == "./video/vidB.mp4"
    assert [s.uid for s in data.samples] == ["0", "1", "2"] and data.problems == []
    first, second, third = data.samples
    assert first.suite == "Video-MME" and first.fields["answer"] == "A"
    assert first.fields["subtitle_path"] == str((root / "subtitle" / "vidA.srt").resolve())
    assert second.fields["subtitle_path"] is None
    video = second.video.load()
    assert video.n_frames == 6 and video.fps == pytest.approx(10)
    assert len(video.frames([1, 4])) == 2
    with pytest.raises(SampleError, match=r"vidC\.mp4"):
        third.video.load()


def test_tsv_layouts_normalise_to_parquet_table(media_root: Path, tmp_path: Path) -> None:
    frame = hf_frame()
    (tmp_path / "p" / "videomme").mkdir(parents=True)
    frame.to_parquet(tmp_path / "p" / "videomme" / "test-00000-of-00001.parquet")
    expected = load_videomme(tmp_path / "p").table

    head_root = copy_root(media_root, tmp_path / "head")
    head_tsv(frame).to_csv(head_root / "Video-MME.tsv", sep="\t", index=False)
    head = load_videomme(head_root, suite="Video-MME_8frame")
    assert head.table.attrs["layout"] == LAYOUT_HEAD
    pd.testing.assert_frame_equal(head.table, expected, check_dtype=False)
    assert head.samples[0].suite == "Video-MME_8frame"

    july_root = copy_root(media_root, tmp_path / "july")
    july = frame.assign(index=range(3), video=frame["videoID"], video_path="x", subtitle_path="y")
    july["question"] = july["question"] + "\n" + july["options"].apply("\n".join)
    july.drop(columns=["options"]).to_csv(july_root / "Video-MME.tsv", sep="\t", index=False)
    loaded = load_videomme(july_root)
    assert loaded.table.attrs["layout"] == LAYOUT_JULY2024
    assert loaded.table["question"].tolist() == ["What colour?", "How many\nplayers?", "Which word?"]
    pd.testing.assert_frame_equal(loaded.table[["candidates", "answer"]], expected[["candidates", "answer"]])
    assert str(Path(loaded.samples[0].fields["video_path"])).endswith("july/Video-MME/video/vidA.mp4")


def test_july2024_row_without_options_is_a_problem(media_root: Path, tmp_path: Path) -> None:
    root = copy_root(media_root, tmp_path)
    frame = hf_frame().assign(index=[0, 1, 2], video=["vidA", "vidB", "vidC"], video_path="", subtitle_path="")
    frame["question"] = ["Q?\nA. a\nB. b", "No options here", "Q3\nB. b\nA. a"]
    frame.drop(columns=["options"]).to_csv(root / "Video-MME.tsv", sep="\t", index=False)
    data = load_videomme(root)
    assert [s.uid for s in data.samples] == ["0"]
    assert [p["uid"] for p in data.problems] == ["1", "2"]
    assert "Video-MME.tsv row index=1 column question" in data.problems[0]["reason"]
    assert split_july2024_question("Q\nA. x\nB. y") == ("Q", ["A. x", "B. y"])


def test_missing_columns_and_files(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="neither"):
        load_videomme(tmp_path)
    (tmp_path / "videomme").mkdir()
    hf_frame().drop(columns=["options", "task_type"]).to_parquet(tmp_path / "videomme" / "test-00000-of-00001.parquet")
    with pytest.raises(SuiteError, match=r"test-00000-of-00001.parquet: missing required column\(s\) \['task_type', 'options'\]"):
        load_videomme(tmp_path)


def test_subtitle_lookup(media_root: Path) -> None:
    subs = read_subtitles(media_root / "subtitle" / "vidA.srt")
    at = lambda frame: subtitle_at(subs, pysubs2.make_time(fps=10.0, frames=frame))  # noqa: E731
    assert at(2) == "Hello world"
    assert at(5) == ""  # t == boundary: strict inequalities, as VLMEvalKit
    assert at(7) == "Second line"
    assert at(30) == ""
    with pytest.raises(SampleError, match="nothere.srt"):
        read_subtitles(media_root / "nothere.srt")


def test_data_file_given_directly_in_every_layout(media_root: Path, tmp_path: Path) -> None:
    """`--data FILE`: the parquet or a TSV of either question layout, under any name; media beside it."""
    root = copy_root(media_root, tmp_path)
    frame = hf_frame()
    (root / "videomme").mkdir()
    frame.to_parquet(root / "videomme" / "test-00000-of-00001.parquet")
    head_tsv(frame).to_csv(root / "head.tsv", sep="\t", index=False)
    july = frame.assign(index=range(3), video=frame["videoID"], video_path="x", subtitle_path="y")
    july["question"] = july["question"] + "\n" + july["options"].apply("\n".join)
    july.drop(columns=["options"]).to_csv(root / "july.tsv", sep="\t", index=False)
    expected = load_videomme(root).table
    for name, layout in [("videomme/test-00000-of-00001.parquet", LAYOUT_PARQUET), ("head.tsv", LAYOUT_HEAD),
                         ("july.tsv", LAYOUT_JULY2024)]:
        data = load_videomme(root / name)
        assert data.table.attrs["layout"] == layout and list(data.files) == [str(root / name)]
        pd.testing.assert_frame_equal(data.table[["index", "question", "candidates", "answer"]],
                                      expected[["index", "question", "candidates", "answer"]], check_dtype=False)
        assert data.samples[0].fields["video_path"] == str((root / "video" / "vidA.mp4").resolve())
