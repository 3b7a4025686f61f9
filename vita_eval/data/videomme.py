"""Video-MME as distributed on HF (`lmms-lab/Video-MME`) or as VLMEvalKit's `Video-MME.tsv`.

Every source is normalised to the table VLMEvalKit HEAD generates from the parquet
(`HEAD_COLUMNS`; `candidates` is the `str()` of the options list, as `to_csv` writes it).
The July-2024 TSV layout (used by VITA's vendored VLMEvalKit) has no `candidates`
column and appends the options to `question`; they are split back off. The layout
found is recorded in `table.attrs["layout"]`.

Videos are `<root>/video/<videoID>.mp4` and subtitles `<root>/subtitle/<videoID>.srt`,
where VLMEvalKit unzips them. The parquet is preferred when present: it is the
original, and HEAD regenerates its TSV from it whenever the TSV's md5 differs. The
path may also be the parquet or TSV file itself (`vita-eval score --data FILE`).
"""
from __future__ import annotations

import ast
import re
from functools import partial
from pathlib import Path

import pandas as pd
import pysubs2

from vita15.video_io import VideoError, VideoHandle, open_video
from vita_eval.data.checksums import file_md5
from vita_eval.data.paths import inside_root
from vita_eval.data.tsv import normalize_index, read_table, require_columns
from vita_eval.registry import register
from vita_eval.types import Media, Sample, SampleError, SuiteData, SuiteError, fail_loading

PARQUET = Path("videomme/test-00000-of-00001.parquet")
TSV_NAME = "Video-MME.tsv"
PARQUET_COLUMNS = ["videoID", "duration", "domain", "sub_category", "task_type", "question", "options", "answer"]
HEAD_COLUMNS = [
    "index", "video", "video_path", "duration", "domain", "candidates",
    "sub_category", "task_type", "subtitle_path", "question", "answer",
]
JULY2024_COLUMNS = [c for c in HEAD_COLUMNS if c != "candidates"]
LAYOUT_PARQUET, LAYOUT_HEAD, LAYOUT_JULY2024 = "parquet", "tsv-head", "tsv-july2024"

_OPTION = re.compile(r"([A-Z])\. ")


def _from_parquet(path: Path) -> pd.DataFrame:
    """HEAD's generated table, built from the HF parquet the way VLMEvalKit builds it."""
    try:
        raw = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{path}: not a readable parquet file ({exc})") from exc
    require_columns(raw, path, PARQUET_COLUMNS)
    table = raw.assign(index=range(len(raw)), video=raw["videoID"])
    table["video_path"] = [f"./video/{v}.mp4" for v in table["videoID"]]
    table["subtitle_path"] = [f"./subtitle/{v}.srt" for v in table["videoID"]]
    table["candidates"] = [str([str(o) for o in options]) for options in table["options"]]
    return table[HEAD_COLUMNS]


def split_july2024_question(question: str) -> tuple[str, list[str]] | None:
    """(question, options) from a July-2024 cell `question + "\\n" + "\\n".join(options)`.

    The options are the longest run of trailing lines labelled "A. ", "B. ", ... in order;
    None when there is no such run of at least two lines.
    """
    lines = question.split("\n")
    for start in range(1, len(lines) - 1):
        tail = lines[start:]
        labels = [m.group(1) if (m := _OPTION.match(line)) else None for line in tail]
        if labels == [chr(ord("A") + k) for k in range(len(tail))]:
            return "\n".join(lines[:start]), tail
    return None


def to_july2024(table: pd.DataFrame) -> pd.DataFrame:
    """HEAD-column rows back in the July-2024 layout, as VLMEvalKit's dataset (and so its prediction file)
    holds them: each `question` cell with its option lines appended again, no `candidates` column."""
    questions = ["\n".join([str(q), *ast.literal_eval(str(c))]) for q, c in zip(table["question"], table["candidates"])]
    out = table.drop(columns=["candidates"]).assign(question=questions)
    out.attrs = {**table.attrs, "layout": LAYOUT_JULY2024}
    return out


def _from_july2024(table: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """HEAD columns from the July-2024 layout; rows whose options cannot be found are problems."""
    questions, candidates, problems = [], [], []
    for index, cell in zip(table["index"], table["question"]):
        split = split_july2024_question(str(cell))
        if split is None:
            problems.append({"uid": str(index), "reason": f"{path} row index={index} column question: "
                             "no 'A. ' ... option lines after the question (July-2024 layout)"})
            split = (str(cell), [])
        questions.append(split[0])
        candidates.append(str(split[1]))
    table = table.assign(question=questions, candidates=candidates)
    return table[HEAD_COLUMNS], problems


def _is_option_list(cell: object) -> bool:
    try:
        value = ast.literal_eval(str(cell))
    except (ValueError, SyntaxError):
        return False
    return isinstance(value, list) and len(value) > 0


def _bad_candidates(table: pd.DataFrame, path: Path) -> list[dict[str, str]]:
    """Rows whose `candidates` cell is not a non-empty list literal (HEAD layout)."""
    return [
        {"uid": str(index), "reason": f"{path} row index={index} column candidates: "
         f"not a list literal of options: {str(cell)[:80]!r}"}
        for index, cell in zip(table["index"], table["candidates"])
        if not _is_option_list(cell)
    ]


def locate(path: Path) -> tuple[Path, Path]:
    """(data file, media root) for a data root folder or for the parquet / TSV file itself.

    A folder holds the parquet (preferred) or `Video-MME.tsv`; a file's media root is its folder
    (the parquet's is the folder above `videomme/`), where `video/` and `subtitle/` are unzipped.
    """
    if path.is_file():
        in_release = path.suffix == ".parquet" and path.parent.name == PARQUET.parent.name
        return path, path.parent.parent if in_release else path.parent
    for name in (PARQUET, Path(TSV_NAME)):
        if (path / name).is_file():
            return path / name, path
    raise SuiteError(f"{path}: neither {PARQUET} nor {TSV_NAME} found")


def _read_source(data_file: Path) -> tuple[pd.DataFrame, str, list[dict[str, str]]]:
    """(HEAD table, layout, problems) from the parquet, or from a TSV in either question layout."""
    if data_file.suffix == ".parquet":
        return _from_parquet(data_file), LAYOUT_PARQUET, []
    table = read_table(data_file)
    if "candidates" in table.columns:
        require_columns(table, data_file, HEAD_COLUMNS)
        table = table[HEAD_COLUMNS].assign(index=normalize_index(table, data_file))
        return table, LAYOUT_HEAD, _bad_candidates(table, data_file)
    require_columns(table, data_file, JULY2024_COLUMNS)
    table = table.assign(index=normalize_index(table, data_file))
    table, problems = _from_july2024(table, data_file)
    return table, LAYOUT_JULY2024, problems


def _load_video(path: Path) -> VideoHandle:
    """A module function, so `partial(_load_video, path)` pickles (preparation processes)."""
    try:
        return open_video(path)
    except VideoError as exc:
        raise SampleError(str(exc)) from exc


def _media_paths(root: Path, video_id: object, uid: str, allow_outside: bool) -> tuple[Path, Path | None]:
    """(video, subtitle or None) of a `videoID`, both confined to `root` (SampleError when one leaves it)."""
    what = f"Video-MME question {uid} (videoID {str(video_id)[:80]!r})"
    video = inside_root(root / "video" / f"{video_id}.mp4", [root], allow_outside=allow_outside, what=what)
    subtitle = root / "subtitle" / f"{video_id}.srt"
    if not subtitle.is_file():
        return video, None
    return video, inside_root(subtitle, [root], allow_outside=allow_outside, what=what)


@register("loader", "videomme")
def load_videomme(root: Path, *, suite: str = "Video-MME", allow_outside_root: bool = False) -> SuiteData:
    """Load Video-MME from its data root or data file; `fields` carry absolute `video_path` and
    `subtitle_path` (None when the .srt is missing), the table keeps VLMEvalKit's values.
    A `videoID` whose video or subtitle resolves outside `root` (`..`, a symlink out) fails its
    questions unless `allow_outside_root`."""
    data_file, root = locate(Path(root))
    table, layout, problems = _read_source(data_file)
    table = table.reset_index(drop=True)
    table.attrs["layout"] = layout
    failed = {p["uid"] for p in problems}
    samples = []
    for fields in table.to_dict(orient="records"):
        uid = str(fields["index"])
        if uid in failed:
            continue
        try:
            video, subtitle = _media_paths(root, fields["video"], uid, allow_outside_root)
            media = Media("video", str(video), partial(_load_video, video))
        except SampleError as exc:
            video, subtitle = None, None
            media = Media("video", f"videoID {str(fields['video'])[:80]!r}", partial(fail_loading, str(exc)))
        fields.update(video_path=str(video) if video else None, subtitle_path=str(subtitle) if subtitle else None)
        samples.append(Sample(suite=suite, uid=uid, fields=fields, video=media))
    return SuiteData(table=table, samples=samples, files={str(data_file): file_md5(data_file)}, problems=problems)


def read_subtitles(path: str | Path) -> pysubs2.SSAFile:
    """Parse an .srt as VLMEvalKit does (`pysubs2.load(..., encoding="utf-8")`)."""
    try:
        return pysubs2.load(str(path), encoding="utf-8")
    except Exception as exc:  # pysubs2 raises format-specific errors of its own
        raise SampleError(f"{path}: unreadable subtitles ({type(exc).__name__}: {exc})") from exc


def subtitle_at(subs: pysubs2.SSAFile, t_ms: int) -> str:
    """VLMEvalKit's lookup: text of the first event with start < t < end, `\\N` as a space; '' if none."""
    for event in subs:
        if event.start < t_ms < event.end:
            return event.text.replace("\\N", " ")
    return ""
