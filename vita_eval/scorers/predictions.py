"""Prediction tables as VLMEvalKit's scorers see them.

VLMEvalKit reads every table with pandas defaults (`read_csv(sep='\\t')`, `read_excel`), so the cells
`None`, `NA`, `N/A`, `null`, `nan`, '' (and the rest of pandas' default NA strings) become NaN, which
the scorers then turn into the string "nan". Every prediction source here, our samples.jsonl records
included, goes through that one path. The `prediction` column is kept as text (as in VLMEvalKit's
default xlsx files, whose cells are strings), never converted to numbers.

ASR is no VLMEvalKit suite: its hypotheses are text that wenet's compute-wer and jiwer score as
written ("None" is the word NONE), so its scorer asks for `literal` reading (`literal_text`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from pandas.io.parsers.readers import STR_NA_VALUES

from vita_eval.fsio import atomic_path
from vita_eval.types import SuiteError

NA_STRINGS: frozenset[str] = frozenset(STR_NA_VALUES)
NO_PREDICTION = "no prediction"


def index_key(value: Any) -> int | str:
    """One comparable key for `index` values read as int, float or text (VLMEvalKit casts int-like to int)."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def as_na(value: Any) -> Any:
    """Apply pandas' default NA strings to one in-memory cell (None and NA strings become NaN)."""
    if value is None or (isinstance(value, str) and value in NA_STRINGS):
        return np.nan
    return value


def prediction_text(value: Any) -> str:
    """`str(prediction)` as VLMEvalKit's scorers compute it: missing cells become "nan"."""
    return "nan" if pd.isna(value) else str(value)


def read_table(path: str | Path, *, literal: bool = False) -> pd.DataFrame:
    """Read a VLMEvalKit .tsv / .xlsx table with pandas' default NA semantics (VLMEvalKit `load`).

    `literal` reads every cell as the text it holds (no NA strings; an empty cell is "").
    """
    path = Path(path)
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False} if literal else {"dtype": {"prediction": str}}
    if path.suffix == ".tsv":
        return pd.read_csv(path, sep="\t", **options)
    if path.suffix == ".xlsx":
        return pd.read_excel(path, **options)
    raise SuiteError(f"unsupported table format: {path}")


def predictions_from_records(records: Iterable[Mapping[str, Any]], *, literal: bool = False) -> pd.DataFrame:
    """Our samples.jsonl records -> `index`, `prediction`, `error`, with the same NA semantics (or `literal`)."""
    read = (lambda value: value) if literal else as_na
    rows = [{"index": r["uid"], "prediction": read(r.get("answer")), "error": r.get("error")} for r in records]
    return pd.DataFrame(rows, columns=["index", "prediction", "error"])


def read_predictions(path: str | Path, *, literal: bool = False) -> pd.DataFrame:
    """A prediction file: our samples.jsonl, or a VLMEvalKit `{model}_{dataset}.xlsx` / `.tsv`."""
    path = Path(path)
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            return predictions_from_records((json.loads(line) for line in fh if line.strip()), literal=literal)
    table = read_table(path, literal=literal)
    if "prediction" not in table or "index" not in table:
        raise SuiteError(f"{path}: a prediction file needs `index` and `prediction` columns")
    return table[["index", "prediction"]]


def _failure_reason(by_key: pd.DataFrame, key: int | str) -> str | None:
    """Why a dataset row cannot be scored: no prediction, or the runner recorded an inference error."""
    if key not in by_key.index:
        return NO_PREDICTION
    error = by_key.at[key, "error"] if "error" in by_key else None
    return error if isinstance(error, str) and error else None


def align(data: pd.DataFrame, predictions: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Dataset rows (in dataset order) that have a prediction, plus failures for those that do not.

    A prediction whose index is not in the dataset is an error, as VLMEvalKit asserts the
    prediction file is the dataset or a subset of it.
    """
    keys = [index_key(v) for v in data["index"]]
    pred = predictions.assign(_key=[index_key(v) for v in predictions["index"]]).drop_duplicates("_key", keep="last")
    unknown = set(pred["_key"]) - set(keys)
    if unknown:
        raise SuiteError(
            f"{len(unknown)} predictions have an index not in the dataset, e.g. {sorted(map(str, unknown))[:3]}"
        )
    by_key = pred.set_index("_key")
    failures: list[dict[str, str]] = []
    keep: list[bool] = []
    for key, raw in zip(keys, data["index"]):
        reason = _failure_reason(by_key, key)
        if reason is not None:
            failures.append({"uid": str(raw), "reason": reason})
        keep.append(reason is None)
    merged = data.loc[keep].copy()
    merged["prediction"] = [by_key.at[index_key(v), "prediction"] for v in merged["index"]]
    return merged.reset_index(drop=True), failures


def reject_rows(rows: pd.DataFrame, reasons: list[str | None]) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Rows without a reason, plus one failure per row with one (data VLMEvalKit would score silently wrong)."""
    failures = [{"uid": str(i), "reason": r} for i, r in zip(rows["index"], reasons) if r]
    keep = [not r for r in reasons]
    return rows.loc[keep].reset_index(drop=True), failures


def empty_answer(value: Any) -> str | None:
    """The reason a ground-truth `answer` cell cannot be scored against: NaN (empty, or a pandas NA string)."""
    return "answer cell is empty (or a pandas NA string): nothing to score against" if pd.isna(value) else None


def vlmevalkit_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The dataset rows as VLMEvalKit's own dataset holds them, where a loader normalised them otherwise.

    A loader records the layout it read in `table.attrs["layout"]`; only one differs from the table:
    Video-MME's July-2024 TSV, whose option lines VLMEvalKit keeps in `question` (no `candidates`).
    """
    if "candidates" not in table or "layout" not in table.attrs:
        return table
    from vita_eval.data.videomme import LAYOUT_JULY2024, to_july2024

    return to_july2024(table) if table.attrs["layout"] == LAYOUT_JULY2024 else table


def write_vlmevalkit_xlsx(table: pd.DataFrame, predictions: pd.DataFrame, path: str | Path) -> Path:
    """Write VLMEvalKit's `{model}_{dataset}.xlsx`: dataset rows (`vlmevalkit_rows`) without `image`, plus `prediction`.

    Rows without a prediction keep an empty cell (so TEST submissions stay complete). Formula
    conversion is OFF, as in HEAD's xlsxwriter `strings_to_formulas=False`: "=1+1" stays text.
    """
    path = Path(path)
    by_key = {index_key(i): p for i, p in zip(predictions["index"], predictions["prediction"])}
    out = vlmevalkit_rows(table).drop(columns=[c for c in ("image",) if c in table]).copy()
    out["prediction"] = [by_key.get(index_key(i), np.nan) for i in out["index"]]
    with atomic_path(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as writer:
        out.to_excel(writer, index=False)
        for row in writer.sheets["Sheet1"].iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cell.data_type = "s"
    return path
