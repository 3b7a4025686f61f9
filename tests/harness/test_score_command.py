"""`vita-eval score`: a data file in either Video-MME question layout, or no --data when the prediction
file carries the dataset rows (VLMEvalKit writes the dataset minus `image`, plus `prediction`)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vita_eval.runner.rescore import rescore
from vita_eval.types import SuiteError

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "benchmarks" / "samples"
PARQUET = SAMPLES / "Video-MME" / "videomme" / "test-00000-of-00001.parquet"
KWARGS = {"profile": "vlmevalkit-2026.08", "judge": "none", "judge_base_url": None}


def _head_rows() -> pd.DataFrame:
    """The sample parquet as VLMEvalKit HEAD's Video-MME.tsv rows."""
    raw = pd.read_parquet(PARQUET)
    return pd.DataFrame({
        "index": range(len(raw)), "video": raw["videoID"], "video_path": "./video/" + raw["videoID"] + ".mp4",
        "duration": raw["duration"], "domain": raw["domain"], "candidates": [str(list(o)) for o in raw["options"]],
        "sub_category": raw["sub_category"], "task_type": raw["task_type"],
        "subtitle_path": "./subtitle/" + raw["videoID"] + ".srt", "question": raw["question"], "answer": raw["answer"],
    })


def _july_rows() -> pd.DataFrame:
    """The July-2024 layout: no `candidates`, the options appended to `question`."""
    head = _head_rows()
    options = [eval(c) for c in head["candidates"]]  # our own list literals
    head["question"] = [q + "\n" + "\n".join(o) for q, o in zip(head["question"], options)]
    return head.drop(columns=["candidates"])


def _predictions(rows: pd.DataFrame) -> list[str]:
    """Row 0 quotes its right option's text; the others answer with their letter."""
    first_option = eval(_head_rows()["candidates"][0])[ord(rows["answer"][0]) - ord("A")]
    return [first_option[3:].upper()] + list(rows["answer"][1:])


@pytest.mark.parametrize("layout", ["head", "july"])
def test_videomme_data_file_in_either_layout_and_no_data(tmp_path: Path, layout: str) -> None:
    rows = _head_rows() if layout == "head" else _july_rows()
    tsv = tmp_path / "videomme_rows.tsv"  # any name: the file is given, not a folder
    rows.to_csv(tsv, sep="\t", index=False)
    xlsx = tmp_path / "M_Video-MME.xlsx"
    rows.assign(prediction=_predictions(rows)).to_excel(xlsx, index=False)
    with_data = rescore("Video-MME_8frame", tsv, xlsx, out=tmp_path / "a", **KWARGS)
    without = rescore("Video-MME_8frame", None, xlsx, out=tmp_path / "b", **KWARGS)
    # HEAD layout: no options in the question, so the quoted option text is Z (0); July-2024: can_infer_text
    expected = (len(rows) - 1 if layout == "head" else len(rows)) / len(rows)
    for scores in (with_data, without):
        assert scores["metrics"]["overall"]["overall"] == pytest.approx(expected)
        assert scores["printed"]["overall"]["overall"] == f"{expected:.3f}"
        assert scores["headline"] == ["overall / overall"] and scores["n_failed"] == 0
    assert list(without["data_files"]) == [str(xlsx)]


def test_score_command_without_data_prints_vlmevalkits_digits(tmp_path: Path) -> None:
    rows = _july_rows()
    xlsx = tmp_path / "M_Video-MME.xlsx"
    rows.assign(prediction=_predictions(rows)).to_excel(xlsx, index=False)
    cli = [sys.executable, "-m", "vita_eval.cli", "score", "--suite", "Video-MME_8frame", "--predictions", str(xlsx),
           "--profile", "vlmevalkit-2024.12", "--out", str(tmp_path / "scored")]
    proc = subprocess.run(cli, capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(proc.stdout)
    assert shown["printed"]["overall"]["overall"] == "1.00"  # VITA-2024: unparsed "RED"-style answers are -1
    stored = json.loads((tmp_path / "scored" / "scores.json").read_text())
    assert stored["printed"] == shown["printed"] and "domain" in stored["categories"]
    assert stored["categories"]["duration"] == ["short / overall", "medium / overall", "long / overall"]

    missing = tmp_path / "no_columns.xlsx"
    rows[["index", "question"]].assign(prediction="A").to_excel(missing, index=False)
    again = [*cli[:cli.index("--predictions") + 1], str(missing), "--out", str(tmp_path / "x")]
    proc = subprocess.run(again, capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert proc.returncode != 0 and "missing required column(s)" in proc.stderr and "give --data" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_samples_jsonl_without_data_is_a_clear_error(tmp_path: Path) -> None:
    jsonl = tmp_path / "samples.jsonl"
    jsonl.write_text(json.dumps({"uid": "0", "answer": "Yes"}) + "\n", encoding="utf-8")
    with pytest.raises(SuiteError, match="predictions only"):
        rescore("MME", None, jsonl, out=tmp_path / "o", **KWARGS)
    with pytest.raises(SuiteError, match="not found"):
        rescore("MME", None, tmp_path / "absent.xlsx", out=tmp_path / "o", **KWARGS)


def test_mme_prediction_file_alone_scores_like_with_data(tmp_path: Path) -> None:
    table = pd.read_csv(SAMPLES / "MME.tsv", sep="\t").drop(columns=["image"])
    xlsx = tmp_path / "M_MME.xlsx"
    table.assign(prediction=["Yes"] * len(table)).to_excel(xlsx, index=False)
    kwargs = {**KWARGS, "profile": "ms-vlmeval-0.0.20"}
    with_data = rescore("MME", SAMPLES / "MME.tsv", xlsx, out=tmp_path / "a", **kwargs)
    without = rescore("MME", None, xlsx, out=tmp_path / "b", **kwargs)
    assert with_data["metrics"] == without["metrics"] and with_data["n"] == without["n"]


def test_our_xlsx_of_july2024_data_keeps_vlmevalkits_rows(tmp_path: Path) -> None:
    """The prediction file we write holds the rows as VLMEvalKit's July-2024 dataset has them, so scoring it
    alone gives the run's score (options in `question`, no `candidates`)."""
    from vita_eval.data.videomme import load_videomme
    from vita_eval.scorers.predictions import read_table, write_vlmevalkit_xlsx

    rows = _july_rows()
    rows.to_csv(tmp_path / "Video-MME.tsv", sep="\t", index=False)
    table = load_videomme(tmp_path / "Video-MME.tsv").table
    xlsx = write_vlmevalkit_xlsx(table, pd.DataFrame({"index": rows["index"], "prediction": _predictions(rows)}),
                                 tmp_path / "M_Video-MME.xlsx")
    written = read_table(xlsx)
    assert "candidates" not in written and written["question"].tolist() == rows["question"].tolist()
    with_data = rescore("Video-MME_8frame", tmp_path / "Video-MME.tsv", xlsx, out=tmp_path / "a", **KWARGS)
    alone = rescore("Video-MME_8frame", None, xlsx, out=tmp_path / "b", **KWARGS)
    assert with_data["metrics"]["overall"]["overall"] == alone["metrics"]["overall"]["overall"] == 1.0
