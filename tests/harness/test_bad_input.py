"""Bad input stays with its sample: undecodable lines, paths out of the data root, odd images and audio,
cells VLMEvalKit would crash on or score silently wrong. Data are copies of the bundled sample suites."""
from __future__ import annotations

import base64
import io
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vita_eval.data import images
from vita_eval.data.asr import load_librispeech, load_manifest, load_wenetspeech
from vita_eval.data.tsv import load_tsv_suite
from vita_eval.data.videomme import load_videomme
from vita_eval.runner.rescore import rescore
from vita_eval.scorers.base import get_scorer
from vita_eval.types import SampleError

SAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "samples"
ESCAPE = "outside the suite's data root"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLES, tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the data root holding files a crafted path could point at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def _load_error(media) -> str:
    with pytest.raises(SampleError) as err:
        media.load()
    return str(err.value)


# ------------------------------------------------------------------ non-UTF-8 bytes
def test_non_utf8_lines_fail_their_own_utterance(root: Path) -> None:
    trans = next((root / "LibriSpeech" / "test-clean").rglob("*.trans.txt"))
    lines = trans.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"THE", b"TH\xff", 1)
    trans.write_bytes(b"".join(lines))
    libri = load_librispeech(root / "LibriSpeech" / "test-clean", suite="LibriSpeech_test_clean")
    assert len(libri.samples) == 4 and len(libri.problems) == 1
    assert libri.problems[0]["uid"] == lines[1].split(b" ")[0].decode()
    assert "not UTF-8 (byte 0xff" in libri.problems[0]["reason"] and "line 2" in libri.problems[0]["reason"]

    manifest = root / "manifest" / "asr.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b"RED", b"R\xc3\x28D", 1)  # an invalid two-byte sequence
    manifest.write_bytes(b"".join(lines))
    data = load_manifest(manifest, suite="ASR_manifest", root="..")
    assert [p["uid"] for p in data.problems] == ["line 1"] and len(data.samples) == len(lines) - 1

    meta = root / "WenetSpeech" / "WenetSpeech.json"
    text = meta.read_bytes()
    first = json.loads(text)["audios"][0]["segments"][0]
    meta.write_bytes(text.replace(first["text"].encode(), first["text"].encode()[:-3] + b"\xfe", 1))
    net = load_wenetspeech(root / "WenetSpeech", suite="WenetSpeech_test_net")
    assert [p["uid"] for p in net.problems] == [first["sid"]] and "not UTF-8" in net.problems[0]["reason"]
    assert [s.uid for s in net.samples] != [] and first["sid"] not in {s.uid for s in net.samples}


# ------------------------------------------------------------------ audio
def test_empty_reference_is_a_problem_and_an_unscorable_one_a_failure(root: Path) -> None:
    manifest = root / "manifest" / "asr.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    entries[0]["text"] = "   "
    entries[1]["text"] = "<NOISE> ，"  # not empty as text, empty once normalised (tag and punctuation)
    manifest.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    data = load_manifest(manifest, suite="ASR_manifest", root="..")
    assert data.problems == [{"uid": "line 1", "reason": f"{manifest} line 1: empty reference text "
                              "(it would count every hypothesis word as an insertion)"}]
    preds = pd.DataFrame({"index": data.table["index"], "prediction": data.table["answer"]})
    result = get_scorer("asr").score(data.table, preds, profile="vlmevalkit-2026.08", judge=None)
    assert [f["uid"] for f in result.failures] == [entries[1]["id"]]
    assert "empty after the wenet normalizer" in result.failures[0]["reason"]
    assert result.metrics["wer"] == 0.0 and result.metrics["cer"] == 0.0  # the rest are scored


def test_segment_past_the_end_of_its_audio_fails(root: Path) -> None:
    meta_path = root / "WenetSpeech" / "WenetSpeech.json"
    meta = json.loads(meta_path.read_text())
    net = [s for s in meta["audios"][0]["segments"] if "TEST_NET" in s["subsets"]]
    net[0]["end_time"] = net[0]["begin_time"] + 60.0  # the opus file is 23 s long
    meta_path.write_text(json.dumps(meta, ensure_ascii=False))
    data = load_wenetspeech(root / "WenetSpeech", suite="WenetSpeech_test_net")
    reason = _load_error(data.samples[0].audio)
    assert "runs past the end of its audio" in reason and "the audio is 22.9" in reason
    assert data.samples[1].audio.load().size > 0


def test_long_wav_is_refused_from_its_header_without_decoding(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "clips" / "long.wav"
    path.parent.mkdir()
    with wave.open(str(path), "wb") as out:  # 30 minutes of silence, 16 kHz mono 16-bit
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(bytes(2 * 16000 * 60 * 30))
    manifest = tmp_path / "asr.jsonl"
    manifest.write_text(json.dumps({"audio": "clips/long.wav", "text": "hello", "language": "en"}) + "\n")
    import vita15.audio_features as features

    def never(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(features, "load_audio", never)
    reason = _load_error(load_manifest(manifest, suite="m").samples[0].audio)
    assert "audio too long (1800.0 s, from the file header" in reason and "not decoded" in reason


# ------------------------------------------------------------------ paths out of the data root
def test_videomme_video_id_and_symlinks_cannot_leave_the_root(root: Path, outside: Path) -> None:
    vroot = root / "Video-MME"
    videos = sorted((vroot / "video").glob("*.mp4"))
    shutil.copy(videos[0], outside / "secret.mp4")
    parquet = vroot / "videomme" / "test-00000-of-00001.parquet"
    table = pd.read_parquet(parquet)
    first, second = table["videoID"].unique()[:2]
    table.loc[table["videoID"] == first, "videoID"] = "../../../outside/secret"
    table.to_parquet(parquet)
    videos[1].unlink()
    videos[1].symlink_to(outside / "secret.mp4")  # the second video is a symlink out
    data = load_videomme(vroot, suite="Video-MME")
    by_video = {s.fields["video"]: s for s in data.samples}
    assert ESCAPE in _load_error(by_video["../../../outside/secret"].video)
    assert ESCAPE in _load_error(by_video[second].video) and "resolves to" in _load_error(by_video[second].video)
    third = next(s for s in data.samples if s.fields["video"] not in ("../../../outside/secret", second))
    assert third.video.load().n_frames > 0
    allowed = load_videomme(vroot, suite="Video-MME", allow_outside_root=True)
    assert all(s.video.load().n_frames > 0 for s in allowed.samples)


def test_audio_paths_cannot_leave_the_root(root: Path, outside: Path) -> None:
    flacs = sorted((root / "LibriSpeech" / "test-clean").rglob("*.flac"))
    shutil.copy(flacs[0], outside / "secret.flac")
    flacs[0].unlink()
    flacs[0].symlink_to(outside / "secret.flac")
    libri = load_librispeech(root / "LibriSpeech" / "test-clean", suite="LibriSpeech_test_clean")
    assert ESCAPE in _load_error(libri.samples[0].audio) and libri.samples[1].audio.load().size > 0
    allowed = load_librispeech(root / "LibriSpeech" / "test-clean", suite="x", allow_outside_root=True)
    assert allowed.samples[0].audio.load().size > 0

    manifest = root / "manifest" / "asr.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    entries[0]["audio"] = str(outside / "secret.flac")  # absolute
    entries[1]["audio"] = "../../outside/secret.flac"  # relative, climbing out
    manifest.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    data = load_manifest(manifest, suite="ASR_manifest", root="..")
    assert ESCAPE in _load_error(data.samples[0].audio) and ESCAPE in _load_error(data.samples[1].audio)
    assert data.samples[2].audio.load().size > 0


def test_image_path_cells_cannot_leave_the_root(tmp_path: Path, outside: Path) -> None:
    Image.new("RGB", (8, 8), (1, 2, 3)).save(outside / "secret.png")
    folder = tmp_path / "tsv"
    folder.mkdir()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(folder / "fine.png")
    (folder / "link.png").symlink_to(outside / "secret.png")
    cells = ["../outside/secret.png", str(outside / "secret.png"), "link.png", "fine.png"]
    path = folder / "MMBench_DEV_EN.tsv"
    pd.DataFrame({"index": range(4), "image_path": cells, "question": "q"}).to_csv(path, sep="\t", index=False)
    data = load_tsv_suite(path, suite="MMBench_DEV_EN", required_columns=["question"])
    for sample in data.samples[:3]:
        assert ESCAPE in _load_error(sample.images[0])
    assert data.samples[3].images[0].load().getpixel((0, 0)) == (9, 9, 9)
    allowed = load_tsv_suite(path, suite="MMBench_DEV_EN", required_columns=["question"], allow_outside_root=True)
    assert all(s.images[0].load().getpixel((0, 0)) == (1, 2, 3) for s in allowed.samples[:3])


# ------------------------------------------------------------------ images
def _b64(image: Image.Image, **save) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save)
    return base64.b64encode(buffer.getvalue()).decode()


def test_16bit_grey_png_keeps_its_contrast() -> None:
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    decoded = np.asarray(images.decode_base64_image(_b64(Image.fromarray(ramp))))
    assert decoded.shape == (64, 64, 3)
    np.testing.assert_array_equal(decoded[..., 0], (ramp >> 8).astype(np.uint8))  # Pillow: 97%+ at 255
    assert (decoded == 255).mean() < 0.01


def test_huge_image_is_reduced_on_decode_and_tiles_alike(monkeypatch) -> None:
    from vita15.image_processing import candidate_grids, choose_grid, dynamic_tiles

    for size in [(1024, 768), (4000, 3000), (5000, 5000), (640, 20000)]:  # normal and odd shapes: untouched
        assert images.reduction_factor(*size) == 1
    assert images.reduction_factor(12000, 12000) == 8
    # the same rule on a smaller image (fast to encode), with the size threshold lowered
    monkeypatch.setattr(images, "REDUCE_MIN_PIXELS", 1_000_000)
    width, height = 4000, 3000
    y, x = np.mgrid[0:height, 0:width]
    scene = Image.fromarray(np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8))
    factor = images.reduction_factor(width, height)
    decoded = images.decode_base64_image(_b64(scene, compress_level=1))
    assert factor >= 2 and decoded.size == (width // factor, height // factor)
    buffer = io.BytesIO()
    scene.save(buffer, format="JPEG", quality=95)  # JPEGs are decoded at a reduced DCT scale instead
    jpeg = images.decode_base64_image(base64.b64encode(buffer.getvalue()).decode())
    assert jpeg.size == decoded.size
    for tiles in (12,):
        grids = candidate_grids(1, tiles)
        assert choose_grid(*decoded.size, grids) == choose_grid(width, height, grids)
        reduced, full = dynamic_tiles(decoded, max_num=tiles), dynamic_tiles(scene, max_num=tiles)
        assert len(reduced) == len(full)
        diff = np.abs(np.asarray(reduced[0], dtype=np.int16) - np.asarray(full[0], dtype=np.int16))
        assert diff[..., :2].mean() < 2.0  # smooth channels: the same picture


# ------------------------------------------------------------------ cells VLMEvalKit would crash on or misscore
def _mmbench(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "MMBench_DEV_EN.tsv", sep="\t").drop(columns=["image"])


def test_mmbench_bad_index_fails_alone_and_odd_answers_are_noted(root: Path) -> None:
    table = _mmbench(root)
    preds = pd.DataFrame({"index": table["index"], "prediction": table["answer"]})
    table["index"], preds["index"] = table["index"].astype(object), preds["index"].astype(object)
    table.loc[0, "index"] = preds.loc[0, "index"] = "q0"
    table.loc[1, "answer"] = np.nan
    table.loc[2, "answer"] = "E"
    result = get_scorer("mmbench").score(table, preds, profile="vlmevalkit-2026.08", judge=None,
                                         dataset="MMBench_DEV_EN")
    assert result.failures[0] == {"uid": "q0", "reason": "index 'q0' is not an integer (MMBench groups "
                                  "circular copies by index % 1e6)"}
    notes = " ".join(result.notes)
    assert "1 rows have an empty answer cell" in notes and "1 rows have an answer that is not one of" in notes
    assert 0 < result.metrics["Overall"] < 1  # the other groups are scored


def test_mathvista_unclosed_choices_fail_alone_and_empty_answers_are_noted(root: Path) -> None:
    table = pd.read_csv(root / "MathVista_MINI.tsv", sep="\t").drop(columns=["image"])
    choice_rows = table.index[table["question_type"] == "multi_choice"]
    table.loc[choice_rows[0], "choices"] = "['red', 'blue'"
    table.loc[table.index[table["question_type"] != "multi_choice"][0], "answer"] = np.nan
    preds = pd.DataFrame({"index": table["index"], "prediction": table["answer"].astype(str)})
    result = get_scorer("mathvista").score(table, preds, profile="vlmevalkit-2026.08", judge=None)
    bad = str(table.loc[choice_rows[0], "index"])
    assert [f["uid"] for f in result.failures] == [bad] and "not a list literal" in result.failures[0]["reason"]
    assert any("1 rows have an empty answer cell" in n for n in result.notes)
    assert result.n == len(table) - 1 and result.metrics["Overall"] > 0


def test_mme_empty_answer_is_a_failure_scored_wrong(root: Path) -> None:
    table = pd.read_csv(root / "MME.tsv", sep="\t").drop(columns=["image"])
    preds = pd.DataFrame({"index": table["index"], "prediction": table["answer"]})
    table.loc[3, "answer"] = np.nan
    result = get_scorer("mme").score(table, preds, profile="vlmevalkit-2026.08", judge=None)
    assert [f["uid"] for f in result.failures] == ["3"] and "scored wrong" in result.failures[0]["reason"]
    assert result.per_sample["score"].sum() == len(table) - 1


def test_truncated_tsv_is_said_and_the_rest_scored(root: Path, tmp_path: Path) -> None:
    raw = (root / "MME.tsv").read_bytes()
    (root / "MME.tsv").write_bytes(raw[: int(len(raw) * 0.6)])  # a download cut short, mid-row
    complete = load_tsv_suite(root / "MME.tsv", suite="MME")
    assert len(complete.problems) == 1 and "file ends inside this row" in complete.problems[0]["reason"]
    table = complete.table.copy()
    table["prediction"] = table["answer"]
    preds = tmp_path / "tiny_MME.xlsx"
    table.to_excel(preds, index=False)
    scores = rescore("MME", root / "MME.tsv", preds, profile="ms-vlmeval-0.0.20", judge="none",
                     judge_base_url=None, out=tmp_path / "out")
    notes = " ".join(scores["notes"])
    assert "MME.tsv ends mid-row: the file looks truncated" in notes
    assert "categories have no rows and are left out" in notes  # ms-vlmeval skips them silently
    assert scores["metrics"]["perception"] > 0 and scores["n_failed"] == 1
