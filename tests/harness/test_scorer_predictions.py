"""Prediction files read with pandas' default NA semantics, as every VLMEvalKit version does (HEAD e8e78f05)."""

from __future__ import annotations

import json

import numpy as np
import openpyxl
import pandas as pd
import pytest

from vita_eval.scorers.predictions import (
    align,
    prediction_text,
    predictions_from_records,
    read_predictions,
    read_table,
    write_vlmevalkit_xlsx,
)
from vita_eval.types import SuiteError

NA_CELLS = ["None", "NA", "N/A", "null", "nan", ""]


def _dataset(n: int) -> pd.DataFrame:
    return pd.DataFrame({"index": range(n), "question": [f"q{i}" for i in range(n)], "image": ["b64"] * n})


def test_tsv_na_strings_read_back_as_nan_and_become_the_string_nan(tmp_path):
    path = tmp_path / "M_MME.tsv"
    lines = ["index\tprediction"] + [f"{i}\t{cell}" for i, cell in enumerate(NA_CELLS)] + ["6\tYes", "7\t14"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    preds = read_predictions(path)
    assert preds["prediction"].isna().tolist() == [True] * 6 + [False, False]
    assert [prediction_text(p) for p in preds["prediction"]] == ["nan"] * 6 + ["Yes", "14"]


def test_xlsx_with_missing_indices_gives_no_prediction_failures(tmp_path):
    data = _dataset(5)
    preds = pd.DataFrame({"index": [0, 2, 4], "prediction": ["None", "yes", "=1+1"]})
    path = tmp_path / "M_MME.xlsx"
    pd.DataFrame({"index": [0, 2, 4], "prediction": ["None", "yes", "x"]}).to_excel(path, index=False)
    assert read_predictions(path)["prediction"].isna().tolist() == [True, False, False]
    # rows 1 and 3 missing; formula conversion off keeps "=1+1" as text (ms-vlmeval would lose it)
    path = write_vlmevalkit_xlsx(data[data["index"] % 2 == 0], preds, tmp_path / "M_MME2.xlsx")
    rows, failures = align(data, read_predictions(path))
    assert rows["index"].tolist() == [0, 2, 4]
    assert [prediction_text(p) for p in rows["prediction"]] == ["nan", "yes", "=1+1"]
    assert failures == [{"uid": "1", "reason": "no prediction"}, {"uid": "3", "reason": "no prediction"}]


def test_tsv_with_missing_indices_and_string_uids(tmp_path):
    path = tmp_path / "M_X.tsv"
    path.write_text("index\tprediction\n3\tB\n1\tnull\n", encoding="utf-8")
    rows, failures = align(_dataset(4), read_predictions(path))
    assert rows["index"].tolist() == [1, 3]  # dataset order
    assert [prediction_text(p) for p in rows["prediction"]] == ["nan", "B"]
    assert [f["uid"] for f in failures] == ["0", "2"]


def test_samples_jsonl_records_follow_the_same_na_path(tmp_path):
    records = [
        {"uid": "0", "answer": "N/A", "error": None},
        {"uid": "1", "answer": None, "error": None},
        {"uid": "2", "answer": "", "error": "image MME.tsv row 2: bad base64"},
        {"uid": "3", "answer": "Yes", "error": None},
    ]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    rows, failures = align(_dataset(4), read_predictions(path))
    assert [prediction_text(p) for p in rows["prediction"]] == ["nan", "nan", "Yes"]
    assert failures == [{"uid": "2", "reason": "image MME.tsv row 2: bad base64"}]


def test_prediction_outside_the_dataset_is_an_error():
    with pytest.raises(SuiteError, match="not in the dataset"):
        align(_dataset(2), predictions_from_records([{"uid": "7", "answer": "A"}]))


def test_mmbench_option_cell_none_disappears_when_read(tmp_path):
    path = tmp_path / "MMBench_DEV_EN.tsv"
    path.write_text("index\tquestion\tA\tB\tC\tanswer\n0\tq\tNone\tcat\tdog\tB\n", encoding="utf-8")
    table = read_table(path)
    assert np.isnan(table.loc[0, "A"]) and table.loc[0, "B"] == "cat"


def test_write_vlmevalkit_xlsx_drops_image_keeps_formula_text(tmp_path):
    data = _dataset(3)
    preds = pd.DataFrame({"index": ["0", "2"], "prediction": ["=SUM(1,2)", "yes"]})
    path = write_vlmevalkit_xlsx(data, preds, tmp_path / "out" / "VITA_MME.xlsx")
    sheet = openpyxl.load_workbook(path).active
    header = [c.value for c in sheet[1]]
    assert header == ["index", "question", "prediction"]
    assert sheet["C2"].value == "=SUM(1,2)" and sheet["C2"].data_type == "s"
    back = read_table(path)
    assert back["prediction"].tolist()[0] == "=SUM(1,2)" and pd.isna(back["prediction"].tolist()[1])
