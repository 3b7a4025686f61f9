"""Loading VLMEvalKit image-suite TSVs (MME, MMBench_*, MathVista_MINI) as distributed.

The table is read with `pd.read_csv(sep="\\t")` defaults on purpose: VLMEvalKit does the
same, so pandas' NA strings turn e.g. an MMBench option "None" into NaN exactly as the
reference scorer sees it. Then VLMEvalKit's load steps are applied: rows with a NaN
`image` are dropped (skip_noimg), index references are resolved, and an all
integer-like `index` becomes int.
"""
from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vita_eval.data.checksums import file_md5
from vita_eval.data.images import row_image_media
from vita_eval.registry import register
from vita_eval.types import Sample, SuiteData, SuiteError


def read_table(path: Path) -> pd.DataFrame:
    """The TSV with pandas defaults; unreadable files become a SuiteError naming the file."""
    if not path.is_file():
        raise SuiteError(f"{path}: data file not found")
    try:
        return pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: not a readable TSV ({exc})") from exc


def require_columns(table: pd.DataFrame, path: Path, required: Sequence[str]) -> None:
    """Raise SuiteError naming the file and every required column it lacks."""
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise SuiteError(f"{path}: missing required column(s) {missing}; found {list(table.columns)}")


def _as_int(value: object) -> int | None:
    """`value` as int when its string form is an int literal (VLMEvalKit's `istype(x, int)`)."""
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        return None
    return parsed if type(parsed) is int else None


def normalize_index(table: pd.DataFrame, path: Path) -> pd.Series:
    """`index` as ints if every value is integer-like, else as strings; must be unique."""
    as_str = [str(x) for x in table["index"]]
    ints = [_as_int(x) for x in as_str]
    values = as_str if None in ints else ints
    index = pd.Series(values, index=table.index, dtype=object)
    dupes = sorted({str(v) for v in index[index.duplicated()]})
    if dupes:
        raise SuiteError(f"{path}: duplicate index value(s) {dupes[:10]}")
    return index


def _drop_rows_without_image(table: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """VLMEvalKit's skip_noimg: rows whose `image` is NaN leave the suite; report them."""
    if "image" not in table:
        return table, []
    empty = table["image"].isna()
    problems = [
        {"uid": str(i), "reason": f"{path} row index={i} column image: empty cell (row dropped, as VLMEvalKit's skip_noimg)"}
        for i in table.loc[empty, "index"]
    ]
    return table[~empty], problems


@register("loader", "tsv")
def load_tsv_suite(
    path: Path, *, suite: str, required_columns: Sequence[str] = (), jpeg_roundtrip: bool = True
) -> SuiteData:
    """Load an image-suite TSV: the scorer's table (no `image` column) and lazy samples.

    `required_columns` are checked (plus `index`); TEST splits without `answer` load
    fine unless `answer` is required. `jpeg_roundtrip` reproduces VLMEvalKit's dump of
    each image to `<index>.jpg` (see `vita_eval.data.images`).
    """
    path = Path(path)
    table = read_table(path)
    require_columns(table, path, ["index", *[c for c in required_columns if c != "index"]])
    table, problems = _drop_rows_without_image(table, path)
    table = table.reset_index(drop=True)
    images = row_image_media(table, tsv_path=path, suite=suite, jpeg_roundtrip=jpeg_roundtrip)
    table["index"] = normalize_index(table, path)
    table = table.drop(columns=["image"], errors="ignore")
    samples = [
        Sample(suite=suite, uid=str(fields["index"]), fields=fields, images=media)
        for fields, media in zip(table.to_dict(orient="records"), images)
    ]
    return SuiteData(table=table, samples=samples, files={str(path): file_md5(path)}, problems=problems)
