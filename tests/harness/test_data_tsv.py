"""Image-suite TSVs built in tmp dirs: base64 cells, index references, lists, paths, errors."""
from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vita_eval.data.images import cell_to_list, decode_base64_image, img_root_name
from vita_eval.data.tsv import load_tsv_suite
from vita_eval.types import SampleError, SuiteError


def png_b64(color: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_tsv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def mme(tmp_path: Path) -> Path:
    red, green = png_b64((255, 0, 0)), png_b64((0, 255, 0))
    rows = [
        {"index": 0, "image": red, "question": "Is it red? Please answer yes or no.", "answer": "Yes",
         "category": "color", "image_path": "a.png"},
        {"index": 1, "image": "0", "question": "Is it blue? Please answer yes or no.", "answer": "No",
         "category": "color", "image_path": "a.png"},
        {"index": 2, "image": green, "question": "Is it green?", "answer": "Yes", "category": "color",
         "image_path": "b.png"},
        {"index": 3, "image": "not base64 at all" * 8, "question": "Broken?", "answer": "No", "category": "OCR",
         "image_path": "c.png"},
        {"index": 4, "image": None, "question": "No image", "answer": "No", "category": "OCR", "image_path": "d"},
    ]
    return write_tsv(tmp_path / "MME.tsv", rows)


def test_mme_table_and_images(mme: Path) -> None:
    data = load_tsv_suite(mme, suite="MME", required_columns=["question", "answer", "category"], jpeg_roundtrip=False)
    assert list(data.table["index"]) == [0, 1, 2, 3, 4]
    assert all(type(i) is int for i in data.table["index"])
    assert "image" not in data.table.columns
    assert [s.uid for s in data.samples] == ["0", "1", "2", "3", "4"]
    assert data.samples[0].fields["question"].startswith("Is it red")
    assert data.problems == [] and data.notes == []
    with pytest.raises(SampleError) as empty:  # an empty image cell fails its own row (VLMEvalKit: skip_noimg)
        data.samples[4].images[0].load()
    assert "skip_noimg" in str(empty.value) and "index=4" in str(empty.value)
    assert list(data.files) == [str(mme)] and len(data.files[str(mme)]) == 32

    first = data.samples[0].images[0].load()
    assert first.mode == "RGB" and first.size == (80, 60) and first.getpixel((5, 5)) == (255, 0, 0)
    reused = data.samples[1].images[0].load()  # index-reference cell "0"
    assert reused.getpixel((5, 5)) == (255, 0, 0)
    assert "image of index=0" in data.samples[1].images[0].source
    assert data.samples[2].images[0].load().getpixel((0, 0)) == (0, 255, 0)


def test_corrupt_cell_fails_only_its_sample(mme: Path) -> None:
    data = load_tsv_suite(mme, suite="MME", required_columns=["question"])
    with pytest.raises(SampleError) as err:
        data.samples[3].images[0].load()
    message = str(err.value)
    assert str(mme) in message and "index=3" in message and "column image" in message


def test_jpeg_roundtrip_matches_vlmevalkit_dump(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    cell = base64.b64encode(buffer.getvalue()).decode()
    dumped = io.BytesIO()
    noisy.save(dumped, format="JPEG")  # what VLMEvalKit writes to <index>.jpg
    expected = np.asarray(Image.open(dumped).convert("RGB"))
    path = write_tsv(tmp_path / "MathVista_MINI.tsv", [{"index": 7, "image": cell, "question": "q", "answer": "1"}])
    data = load_tsv_suite(path, suite="MathVista_MINI", required_columns=["question", "answer"])
    assert np.array_equal(np.asarray(data.samples[0].images[0].load()), expected)
    assert np.array_equal(np.asarray(decode_base64_image(cell)), np.asarray(noisy))


def test_missing_columns_is_suite_error(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "MMBench_DEV_EN.tsv", [{"index": 0, "image": png_b64((1, 2, 3)), "question": "q"}])
    with pytest.raises(SuiteError) as err:
        load_tsv_suite(path, suite="MMBench_DEV_EN", required_columns=["question", "A", "B", "answer"])
    assert str(path) in str(err.value) and "'A'" in str(err.value) and "'answer'" in str(err.value)
    with pytest.raises(SuiteError, match="not found"):
        load_tsv_suite(tmp_path / "nope.tsv", suite="x", required_columns=[])


def test_mmbench_none_option_is_nan_and_circular_refs(tmp_path: Path) -> None:
    rows = [
        {"index": 5, "question": "Pick", "hint": None, "A": "cat", "B": "None", "C": "dog", "D": None,
         "answer": "A", "category": "c", "l2-category": "l2", "image": png_b64((9, 9, 9)), "split": "test"},
        {"index": 1000005, "question": "Pick", "hint": None, "A": "dog", "B": "cat", "C": "None", "D": None,
         "answer": "B", "category": "c", "l2-category": "l2", "image": "5", "split": "test"},
    ]
    path = write_tsv(tmp_path / "MMBench_TEST_EN.tsv", [{k: v for k, v in r.items() if k != "answer"} for r in rows])
    data = load_tsv_suite(path, suite="MMBench_TEST_EN", required_columns=["question", "A", "B"])
    first = data.samples[0].fields
    assert first["A"] == "cat" and math.isnan(first["B"]) and math.isnan(first["hint"])
    assert data.table["index"].tolist() == [5, 1000005] and "answer" not in data.table  # TEST split
    assert data.samples[1].images[0].load().getpixel((0, 0)) == (9, 9, 9)


def test_bad_index_reference(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "MME.tsv", [{"index": "a", "image": "zz", "question": "q"}])
    data = load_tsv_suite(path, suite="MME", required_columns=[])
    assert data.table["index"].tolist() == ["a"]
    with pytest.raises(SampleError, match=r"index=a column image: cell 'zz'"):
        data.samples[0].images[0].load()


def test_multi_image_list_literal(tmp_path: Path) -> None:
    cell = str([png_b64((255, 0, 0)), png_b64((0, 0, 255))])
    path = write_tsv(tmp_path / "Multi.tsv", [{"index": 1, "image": cell, "image_path": "['x.jpg', 'y.png']", "question": "q"}])
    data = load_tsv_suite(path, suite="Multi", required_columns=["question"])
    media = data.samples[0].images
    assert [m.source.rsplit(" ", 1)[-1] for m in media] == ["image[0]", "image[1]"]
    assert media[1].load().getpixel((3, 3)) == (0, 0, 255)  # png name: lossless
    assert cell_to_list("['a', 'b']") == ["a", "b"] and cell_to_list("abc") == ["abc"]


def test_image_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (4, 4), (10, 20, 30)).save(tmp_path / "local.png")
    lmu = tmp_path / "lmu"
    (lmu / "images" / "MMBench").mkdir(parents=True)
    Image.new("RGB", (4, 4), (40, 50, 60)).save(lmu / "images" / "MMBench" / "shared.jpg", quality=100)
    monkeypatch.setenv("LMUData", str(lmu))
    rows = [
        {"index": 0, "image_path": "local.png", "question": "q"},
        {"index": 1, "image_path": "shared.jpg", "question": "q"},
        {"index": 2, "image_path": "['local.png', 'missing.png']", "question": "q"},
    ]
    path = write_tsv(tmp_path / "MMBench_DEV_EN.tsv", rows)
    data = load_tsv_suite(path, suite="MMBench_DEV_EN", required_columns=["question"])
    assert img_root_name("MMBench_DEV_CN_V11") == "MMBench_V11" and img_root_name("MMBench_V11") == "MMBench"
    assert data.samples[0].images[0].load().getpixel((0, 0)) == (10, 20, 30)
    assert data.samples[1].images[0].load().size == (4, 4)
    assert len(data.samples[2].images) == 2
    with pytest.raises(SampleError, match=r"index=2 column image_path.*'missing.png' not found"):
        data.samples[2].images[1].load()
