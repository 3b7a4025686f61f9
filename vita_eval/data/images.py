"""Lazy decoding of VLMEvalKit image cells (`image`, `image_path`) to PIL images.

Cells follow VLMEvalKit's conventions: `image` holds base64 JPEG/PNG, a list literal of
several base64 strings, or (64 characters or fewer) the `index` of another row whose
image it reuses; without an `image` column, `image_path` names files on disk. Each
image is a `Media` whose loader raises `SampleError` naming the file, row and column,
so one bad cell fails one sample.

VLMEvalKit hands the model not the decoded base64 but the file it dumped it to:
`<index>.jpg` for a single image (PIL's default JPEG quality), the `image_path` name for
list cells. `jpeg_roundtrip=True` reproduces that lossy step so the pixels match.
"""
from __future__ import annotations

import ast
import base64
import io
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from PIL import Image

from vita_eval.types import Media, SampleError, SuiteError

INDEX_REF_MAX_LEN = 64  # VLMEvalKit: an image cell this short is another row's index

_MMBENCH_SPLITS = ("MMBench_DEV_EN", "MMBench_TEST_EN", "MMBench_DEV_CN", "MMBench_TEST_CN")
# VLMEvalKit's img_root_map: MMBench splits share one image folder per version
_IMG_ROOTS = {
    **{name: "MMBench" for name in _MMBENCH_SPLITS},
    **{f"{name}_V11": "MMBench_V11" for name in _MMBENCH_SPLITS},
    **{name: "MMBench" for name in ("MMBench_CN", "MMBench_V11", "MMBench_CN_V11")},
}


def lmu_data_root() -> Path:
    """VLMEvalKit's data root: `$LMUData` if set and existing, else `~/LMUData`."""
    env = os.environ.get("LMUData")
    if env and Path(env).exists():
        return Path(env)
    return Path.home() / "LMUData"


def img_root_name(suite: str) -> str:
    """Folder under `<root>/images/` where VLMEvalKit keeps a suite's images (MMBench shares)."""
    return _IMG_ROOTS.get(suite, suite)


def cell_to_list(cell: object) -> list[str]:
    """A cell as a list of strings: a `[...]` list literal is parsed, anything else is one item."""
    text = str(cell)
    if text.startswith("[") and text.endswith("]"):
        value = ast.literal_eval(text)
        if not isinstance(value, list):
            raise ValueError(f"list literal expected, got {type(value).__name__}")
        return [str(x) for x in value]
    return [text]


def _finish(image: Image.Image, jpeg_roundtrip: bool) -> Image.Image:
    """RGB image, optionally passed through PIL's default JPEG encoding as VLMEvalKit's dump does."""
    if image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    if jpeg_roundtrip:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG")
        image = Image.open(io.BytesIO(buffer.getvalue()))
    return image.convert("RGB")


def decode_base64_image(data: str, *, jpeg_roundtrip: bool = False) -> Image.Image:
    """Decode a base64 JPEG/PNG string to an RGB PIL image (raises on corrupt data)."""
    raw = base64.b64decode(data)
    image = Image.open(io.BytesIO(raw))
    image.load()
    return _finish(image, jpeg_roundtrip)


def _failing(message: str) -> Callable[[], Image.Image]:
    """A loader that reports a problem found while building the table, at load time."""

    def load() -> Image.Image:
        raise SampleError(message)

    return load


def _base64_loader(data: str, source: str, jpeg_roundtrip: bool) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        try:
            return decode_base64_image(data, jpeg_roundtrip=jpeg_roundtrip)
        except Exception as exc:
            raise SampleError(f"{source}: not a decodable base64 image ({type(exc).__name__}: {exc})") from exc

    return load


def _path_loader(name: str, search: list[Path], source: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        candidates = [Path(name)] if Path(name).is_absolute() else [d / name for d in search]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            tried = ", ".join(str(p) for p in candidates)
            raise SampleError(f"{source}: image file {name!r} not found (tried {tried})")
        try:
            with Image.open(found) as image:
                image.load()
                return _finish(image, jpeg_roundtrip=False)
        except Exception as exc:
            raise SampleError(f"{source}: cannot decode image file {found} ({type(exc).__name__}: {exc})") from exc

    return load


class _RowImages:
    """Builds the `Media` of each row of one table; holds what all rows share."""

    def __init__(self, table: pd.DataFrame, tsv_path: Path, suite: str, jpeg_roundtrip: bool) -> None:
        self.table = table
        self.tsv_path = tsv_path
        self.jpeg_roundtrip = jpeg_roundtrip
        self.by_index = {str(k): str(v) for k, v in zip(table["index"], table["image"])} if "image" in table else {}
        root = lmu_data_root() / "images"
        folders = [tsv_path.parent, root / img_root_name(suite), root / tsv_path.stem]
        self.search = list(dict.fromkeys(folders))

    def source(self, index: str, column: str) -> str:
        return f"{self.tsv_path} row index={index} column {column}"

    def media(self, index: str, row: pd.Series) -> list[Media]:
        if "image" in row:
            return self._from_image_cell(index, row)
        return self._from_paths(index, row["image_path"])

    def _resolve(self, index: str) -> tuple[str, str, str]:
        """(cell, note, owner): the row's base64 cell with an index reference replaced by its target,
        and the index of the row that holds the cell."""
        cell = self.by_index[index]
        if len(cell) > INDEX_REF_MAX_LEN:
            return cell, "", index
        target = self.by_index.get(cell)
        if target is None or len(target) <= INDEX_REF_MAX_LEN:
            raise SampleError(
                f"{self.source(index, 'image')}: cell {cell!r} ({len(cell)} chars) is neither an image "
                f"nor the index of a row holding one"
            )
        return target, f" (image of index={cell})", cell

    def _from_image_cell(self, index: str, row: pd.Series) -> list[Media]:
        source = self.source(index, "image")
        try:
            cell, note, owner = self._resolve(index)
            items = cell_to_list(cell)
        except SampleError as exc:
            return [Media("image", source, _failing(str(exc)))]
        except (ValueError, SyntaxError) as exc:
            return [Media("image", source, _failing(f"{source}: bad list literal ({exc})"))]
        key = f"{self.tsv_path}#{owner}"
        if len(items) == 1:
            return [Media("image", source + note, _base64_loader(items[0], source + note, self.jpeg_roundtrip), key)]
        names = cell_to_list(row["image_path"]) if "image_path" in row else []
        media = []
        for j, data in enumerate(items):
            src = f"{source}[{j}]{note}"
            as_jpeg = self.jpeg_roundtrip and j < len(names) and names[j].lower().endswith((".jpg", ".jpeg"))
            media.append(Media("image", src, _base64_loader(data, src, as_jpeg), f"{key}[{j}]"))
        return media

    def _from_paths(self, index: str, cell: object) -> list[Media]:
        source = self.source(index, "image_path")
        try:
            names = cell_to_list(cell)
        except (ValueError, SyntaxError) as exc:
            return [Media("image", source, _failing(f"{source}: bad list literal ({exc})"))]
        return [
            Media("image", f"{source}[{j}]" if len(names) > 1 else source, _path_loader(name, self.search, source))
            for j, name in enumerate(names)
        ]


def row_image_media(
    table: pd.DataFrame, *, tsv_path: Path, suite: str, jpeg_roundtrip: bool = True
) -> list[list[Media]]:
    """Lazy images of every row of `table` (rows in order; `index` column as in the file).

    `table` must hold `image` or `image_path`; rows whose `image` is NaN must already be
    dropped (VLMEvalKit's skip_noimg), as references resolve only among the rows given.
    """
    if "image" not in table and "image_path" not in table:
        raise SuiteError(f"{tsv_path}: no 'image' or 'image_path' column")
    rows = _RowImages(table, tsv_path, suite, jpeg_roundtrip)
    return [rows.media(str(row["index"]), row) for _, row in table.iterrows()]
