"""Lazy decoding of VLMEvalKit image cells (`image`, `image_path`) to PIL images.

Cells follow VLMEvalKit's conventions: `image` holds base64 JPEG/PNG, a list literal of
several base64 strings, or (64 characters or fewer) the `index` of another row whose
image it reuses; without an `image` column, `image_path` names files on disk. Each
image is a `Media` whose loader raises `SampleError` naming the file, row and column,
so one bad cell fails one sample.

VLMEvalKit hands the model not the decoded base64 but the file it dumped it to:
`<index>.jpg` for a single image (PIL's default JPEG quality), the `image_path` name for
list cells. `jpeg_roundtrip=True` reproduces that lossy step so the pixels match.

Inputs VLMEvalKit would mishandle are handled here, each said in the sample's reason:
an empty `image` cell fails its own row (VLMEvalKit drops it, `skip_noimg`); `image_path`
files must stay inside the suite's folders (`vita_eval.data.paths`); 16-bit grey images
keep their contrast (`to_8bit`); and an image far larger than any tiling of it needs is
reduced while it is decoded (`reduction_factor`), so a 12000x12000 PNG does not cost a GB.
"""
from __future__ import annotations

import ast
import base64
import io
import logging
import os
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vita_eval.data.paths import inside_root
from vita_eval.types import Media, SampleError, SuiteError, fail_loading

log = logging.getLogger(__name__)

INDEX_REF_MAX_LEN = 64  # VLMEvalKit: an image cell this short is another row's index
EMPTY_IMAGE_CELL = ("empty image cell; the row counts as failed (VLMEvalKit drops it, skip_noimg, under every "
                    "pinned profile; for MME its rating then cannot pair the image's questions)")

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


_16BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Images below this many pixels are always decoded whole, so normal benchmark images tile exactly as before.
REDUCE_MIN_PIXELS = 36_000_000
_TILE, _MAX_TILES = 448, 12  # VITA-1.5's InternViT tile side and the largest tile budget a preset uses


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit grey as 8-bit by its high byte (value >> 8), as Pillow itself reduces 16-bit RGB PNGs.

    Pillow's `convert("L"/"RGB")` of an `I;16` image clips every value above 255 to white
    instead, which turns almost every pixel of a normal 16-bit image white.
    """
    if image.mode not in _16BIT_GREY:
        return image
    values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8
    return Image.fromarray(values.astype(np.uint8), mode="L")


def _grid(width: int, height: int, max_num: int) -> tuple[int, int]:
    from vita15.image_processing import candidate_grids, choose_grid

    return choose_grid(width, height, candidate_grids(1, max_num), _TILE)


def reduction_factor(width: int, height: int) -> int:
    """The largest integer factor an image can be shrunk by on decode without changing its tiling.

    VITA's tiler resizes every image to (cols x 448, rows x 448) for a grid chosen from its size
    and tile budget; a factor is kept only if, for every budget up to 12 tiles, the shrunk image
    picks the same grid and is still at least that large (the tiler still downsizes it).
    Images under REDUCE_MIN_PIXELS are never shrunk.
    """
    if width * height < REDUCE_MIN_PIXELS:
        return 1
    grids = {n: _grid(width, height, n) for n in range(1, _MAX_TILES + 1)}
    need_w = max(c for c, _ in grids.values()) * _TILE
    need_h = max(r for _, r in grids.values()) * _TILE
    factor = max(1, min(width // need_w, height // need_h))
    while factor > 1:
        w, h = width // factor, height // factor
        if all(_grid(w, h, n) == grid for n, grid in grids.items()):
            return factor
        factor -= 1
    return 1


def decode_bounded(image: Image.Image) -> Image.Image:
    """Decode an opened image, shrunk while decoding when it is far larger than its tiling needs.

    JPEGs are decoded at a reduced DCT scale (`draft`), others are reduced right after decoding
    (`reduce`, a box filter) so only one full-size buffer ever exists.
    """
    factor = reduction_factor(*image.size)
    if factor == 1:
        image.load()
        return image
    width, height = image.size
    target = (width // factor, height // factor)
    if image.format == "JPEG":
        image.draft(image.mode, target)
    image.load()
    scale = min(image.width // target[0], image.height // target[1])
    if scale > 1:
        image = image.reduce(scale)
    log.info("image %dx%d reduced on decode to %dx%d (its tiling needs no more)", width, height, *image.size)
    return image


def _finish(image: Image.Image, jpeg_roundtrip: bool) -> Image.Image:
    """RGB image, optionally passed through PIL's default JPEG encoding as VLMEvalKit's dump does."""
    image = to_8bit(image)
    if image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    if jpeg_roundtrip:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG")
        image = Image.open(io.BytesIO(buffer.getvalue()))
    return image.convert("RGB")


def decode_base64_image(data: str, *, jpeg_roundtrip: bool = False) -> Image.Image:
    """Decode a base64 JPEG/PNG string to an RGB PIL image (raises on corrupt data)."""
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    return _finish(decode_bounded(image), jpeg_roundtrip)


def _load_base64(data: str, source: str, jpeg_roundtrip: bool) -> Image.Image:
    """Loaders are partials of module functions, so samples pickle (preparation processes)."""
    try:
        return decode_base64_image(data, jpeg_roundtrip=jpeg_roundtrip)
    except Exception as exc:
        raise SampleError(f"{source}: not a decodable base64 image ({type(exc).__name__}: {exc})") from exc


def _load_path(name: str, search: list[Path], source: str, allow_outside: bool) -> Image.Image:
    candidates = [Path(name)] if Path(name).is_absolute() else [d / name for d in search]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        tried = ", ".join(str(p) for p in candidates)
        raise SampleError(f"{source}: image file {name!r} not found (tried {tried})")
    found = inside_root(found, search, allow_outside=allow_outside, what=source)
    try:
        with Image.open(found) as image:
            return _finish(decode_bounded(image), jpeg_roundtrip=False)
    except Exception as exc:
        raise SampleError(f"{source}: cannot decode image file {found} ({type(exc).__name__}: {exc})") from exc


class _RowImages:
    """Builds the `Media` of each row of one table; holds what all rows share."""

    def __init__(self, table: pd.DataFrame, tsv_path: Path, suite: str, jpeg_roundtrip: bool,
                 allow_outside: bool) -> None:
        self.table = table
        self.tsv_path = tsv_path
        self.jpeg_roundtrip = jpeg_roundtrip
        self.allow_outside = allow_outside
        self.by_index: dict[str, str | None] = (
            {str(k): None if pd.isna(v) else str(v) for k, v in zip(table["index"], table["image"])}
            if "image" in table else {})
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
        if cell is None:
            raise SampleError(f"{self.source(index, 'image')}: {EMPTY_IMAGE_CELL}")
        if len(cell) > INDEX_REF_MAX_LEN:
            return cell, "", index
        target = self.by_index.get(cell)
        if cell in self.by_index and target is None:
            raise SampleError(f"{self.source(index, 'image')}: refers to row index={cell}, whose image cell is empty")
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
            return [Media("image", source, partial(fail_loading, str(exc)))]
        except (ValueError, SyntaxError) as exc:
            return [Media("image", source, partial(fail_loading, f"{source}: bad list literal ({exc})"))]
        key = f"{self.tsv_path}#{owner}"
        if len(items) == 1:
            return [Media("image", source + note, partial(_load_base64, items[0], source + note, self.jpeg_roundtrip), key)]
        names = cell_to_list(row["image_path"]) if "image_path" in row else []
        media = []
        for j, data in enumerate(items):
            src = f"{source}[{j}]{note}"
            as_jpeg = self.jpeg_roundtrip and j < len(names) and names[j].lower().endswith((".jpg", ".jpeg"))
            media.append(Media("image", src, partial(_load_base64, data, src, as_jpeg), f"{key}[{j}]"))
        return media

    def _from_paths(self, index: str, cell: object) -> list[Media]:
        source = self.source(index, "image_path")
        try:
            names = cell_to_list(cell)
        except (ValueError, SyntaxError) as exc:
            return [Media("image", source, partial(fail_loading, f"{source}: bad list literal ({exc})"))]
        return [
            Media("image", f"{source}[{j}]" if len(names) > 1 else source,
                  partial(_load_path, name, self.search, source, self.allow_outside))
            for j, name in enumerate(names)
        ]


def row_image_media(
    table: pd.DataFrame, *, tsv_path: Path, suite: str, jpeg_roundtrip: bool = True, allow_outside: bool = False
) -> list[list[Media]]:
    """Lazy images of every row of `table` (rows in order; `index` column as in the file).

    `table` must hold `image` or `image_path`. A row whose `image` is empty (NaN) gets an image
    that fails with EMPTY_IMAGE_CELL, and so does a row referring to it.
    """
    if "image" not in table and "image_path" not in table:
        raise SuiteError(f"{tsv_path}: no 'image' or 'image_path' column")
    rows = _RowImages(table, tsv_path, suite, jpeg_roundtrip, allow_outside)
    return [rows.media(str(row["index"]), row) for _, row in table.iterrows()]
