"""Loading VLMEvalKit image-suite TSVs (MME, MMBench_*, MathVista_MINI) as distributed.

The table is read with `pd.read_csv(sep="\\t")` defaults on purpose: VLMEvalKit does the
same, so pandas' NA strings turn e.g. an MMBench option "None" into NaN exactly as the
reference scorer sees it. Then VLMEvalKit's load steps are applied: index references
are resolved and an all integer-like `index` becomes int. Two deviations, both said:
a row with a NaN `image` stays in the table and fails as its own sample (VLMEvalKit
drops it, `skip_noimg`, which for MME leaves its image pair unratable), and a file that
ends inside a row (a truncated download) loses that row with a reason and a note.
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


def ends_mid_row(path: Path) -> bool:
    """Whether the file's last byte is not a newline: pandas then reads a torn last row as if whole."""
    with open(path, "rb") as fh:
        if fh.seek(0, 2) == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) not in (b"\n", b"\r")


def drop_torn_last_row(table: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, list[dict[str, str]], list[str]]:
    """(table, problems, notes) without a last row cut by truncation (see `ends_mid_row`)."""
    if table.empty or not ends_mid_row(path):
        return table, [], []
    uid = str(table["index"].iloc[-1])
    reason = f"{path} row index={uid}: the file ends inside this row (truncated?); row not used"
    note = (f"{path.name} ends mid-row: the file looks truncated ({len(table) - 1} complete rows read); "
            "rows after the cut are missing from this score")
    return table.iloc[:-1], [{"uid": uid, "reason": reason}], [note]


@register("loader", "tsv")
def load_tsv_suite(
    path: Path, *, suite: str, required_columns: Sequence[str] = (), jpeg_roundtrip: bool = True,
    allow_outside_root: bool = False,
) -> SuiteData:
    """Load an image-suite TSV: the scorer's table (no `image` column) and lazy samples.

    `required_columns` are checked (plus `index`); TEST splits without `answer` load
    fine unless `answer` is required. `jpeg_roundtrip` reproduces VLMEvalKit's dump of
    each image to `<index>.jpg` (see `vita_eval.data.images`). `image_path` files must lie
    in the TSV's folder or VLMEvalKit's image folders unless `allow_outside_root`.
    """
    path = Path(path)
    table = read_table(path)
    require_columns(table, path, ["index", *[c for c in required_columns if c != "index"]])
    table, problems, notes = drop_torn_last_row(table, path)
    table = table.reset_index(drop=True)
    images = row_image_media(table, tsv_path=path, suite=suite, jpeg_roundtrip=jpeg_roundtrip,
                             allow_outside=allow_outside_root)
    table["index"] = normalize_index(table, path)
    table = table.drop(columns=["image"], errors="ignore")
    samples = [
        Sample(suite=suite, uid=str(fields["index"]), fields=fields, images=media)
        for fields, media in zip(table.to_dict(orient="records"), images)
    ]
    return SuiteData(table=table, samples=samples, files={str(path): file_md5(path)}, problems=problems, notes=notes)
