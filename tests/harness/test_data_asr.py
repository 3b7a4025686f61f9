"""ASR layouts built in tmp dirs with sox-made FLAC/WAV and PyAV-made opus."""
from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from vita_eval.data.asr import load_aishell, load_librispeech, load_manifest, load_wenetspeech
from vita_eval.types import SampleError, SuiteError

HAVE_AUDIO = importlib.util.find_spec("vita15.audio_features") is not None
needs_audio = pytest.mark.skipif(not HAVE_AUDIO, reason="vita15.audio_features (audio engineer) not present yet")
COLUMNS = ["index", "answer", "language", "set"]


def tone(path: Path, seconds: float, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", "1", str(path), "synth", str(seconds), "sine", "440"],
                   check=True)
    return path


def opus(path: Path, seconds: float) -> Path:
    """A 48 kHz mono opus file (sox cannot write opus)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        t = np.arange(int(48000 * seconds)) / 48000
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.needs_tools('sox')
def test_librispeech(tmp_path: Path) -> None:
    chapter = tmp_path / "test-other" / "1688" / "142285"
    tone(chapter / "1688-142285-0000.flac", 0.3)
    (chapter / "1688-142285.trans.txt").write_text(
        "1688-142285-0000 THERE'S IRON THEY SAY IN ALL OUR BLOOD\n1688-142285-0001 MISSING AUDIO\n1688-142285-0002\n",
        encoding="utf-8")
    data = load_librispeech(tmp_path / "test-other", suite="librispeech_test_other")
    assert list(data.table.columns) == COLUMNS
    assert data.table["index"].tolist() == ["1688-142285-0000", "1688-142285-0001"]
    assert data.table["answer"][0] == "THERE'S IRON THEY SAY IN ALL OUR BLOOD"
    assert set(data.table["language"]) == {"en"} and set(data.table["set"]) == {"librispeech_test_other"}
    assert [p["uid"] for p in data.problems] == ["1688-142285-0002"]
    assert data.samples[0].fields["audio_path"].endswith("1688-142285-0000.flac")
    assert len(data.files) == 1
    if HAVE_AUDIO:
        wave = data.samples[0].audio.load()
        assert wave.dtype == np.float32 and wave.ndim == 1 and abs(len(wave) - 4800) <= 160
        with pytest.raises(SampleError, match="1688-142285-0001.flac"):
            data.samples[1].audio.load()


@pytest.mark.needs_tools('sox')
def test_aishell_any_depth_and_intersection(tmp_path: Path) -> None:
    root = tmp_path / "data_aishell"
    for uid in ["BAC009S0764W0121", "BAC009S0764W0122", "BAC009S0764W0999"]:
        tone(root / "extracted" / "wav" / "test" / "S0764" / f"{uid}.wav", 0.2)
    tone(root / "wav" / "train" / "S0002" / "BAC009S0002W0122.wav", 0.1)
    (root / "transcript").mkdir()
    (root / "transcript" / "aishell_transcript_v0.8.txt").write_text(
        "BAC009S0002W0122 而 对 楼市 成交\nBAC009S0764W0121 甚至 出现 交易 几乎 停滞 的 情况\n"
        "BAC009S0764W0122 一二 线 城市\n", encoding="utf-8")
    data = load_aishell(root, suite="aishell1_test")
    assert data.table["index"].tolist() == ["BAC009S0764W0121", "BAC009S0764W0122"]
    assert data.table["answer"][0] == "甚至 出现 交易 几乎 停滞 的 情况"
    assert set(data.table["language"]) == {"zh"}
    with pytest.raises(SuiteError, match="aishell_transcript_v0.8.txt not found"):
        load_aishell(tmp_path / "data_aishell" / "extracted", suite="x")


@needs_audio
@pytest.mark.needs_tools('sox')
def test_aishell_decodes(tmp_path: Path) -> None:
    tone(tmp_path / "wav" / "test" / "S1" / "U1.wav", 0.25, rate=16000)
    (tmp_path / "transcript").mkdir()
    (tmp_path / "transcript" / "aishell_transcript_v0.8.txt").write_text("U1 你 好\n", encoding="utf-8")
    wave = load_aishell(tmp_path, suite="aishell").samples[0].audio.load()
    assert wave.dtype == np.float32 and abs(len(wave) - 4000) <= 160


def wenet_meta(tmp_path: Path) -> Path:
    opus(tmp_path / "audio" / "test_net" / "X0000.opus", 2.0)
    meta = {"audios": [{
        "aid": "X0000", "path": "audio/test_net/X0000.opus", "duration": 2.0, "subsets": ["TEST_NET"],
        "segments": [
            {"sid": "X0000_0", "begin_time": 0.0, "end_time": 0.5, "text": "今天天气", "subsets": ["TEST_NET"]},
            {"sid": "X0000_1", "begin_time": 0.5, "end_time": 1.25, "text": "很好", "subsets": ["TEST_NET"]},
            {"sid": "X0000_2", "begin_time": 1.25, "end_time": 2.0, "text": "会议", "subsets": ["TEST_MEETING"]},
        ],
    }]}
    path = tmp_path / "WenetSpeech.json"
    path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return path


def test_wenetspeech_subsets(tmp_path: Path) -> None:
    wenet_meta(tmp_path)
    net = load_wenetspeech(tmp_path, suite="wenetspeech_test_net")
    assert net.table["index"].tolist() == ["X0000_0", "X0000_1"]
    assert net.samples[1].fields["offset_s"] == 0.5 and net.samples[1].fields["duration_s"] == 0.75
    meeting = load_wenetspeech(tmp_path, suite="wenetspeech_test_meeting", subset="TEST_MEETING")
    assert meeting.table["answer"].tolist() == ["会议"]
    with pytest.raises(SuiteError, match="no utterances"):
        load_wenetspeech(tmp_path, suite="dev", subset="DEV")
    if HAVE_AUDIO:
        wave = net.samples[1].audio.load()
        assert wave.dtype == np.float32 and abs(len(wave) - 12000) <= 320


def test_wenetspeech_bad_metadata(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="WenetSpeech.json: not found"):
        load_wenetspeech(tmp_path, suite="x")
    (tmp_path / "WenetSpeech.json").write_text(json.dumps(
        {"audios": [{"path": "a.opus", "segments": [{"sid": "s", "subsets": ["TEST_NET"], "text": "t"}]}]}))
    with pytest.raises(SuiteError, match=r"audios\[0\].segments\[0\].*begin_time"):
        load_wenetspeech(tmp_path, suite="x")


@pytest.mark.needs_tools('sox')
def test_manifest(tmp_path: Path) -> None:
    tone(tmp_path / "clips" / "a.wav", 1.0, rate=8000)
    lines = [
        {"audio": "clips/a.wav", "text": "Hello there.", "id": "utt-a"},
        {"audio": "clips/a.wav", "text": "你好", "language": "zh", "offset": 0.25, "duration": 0.5},
        {"audio": "clips/a.wav", "text": "Bonjour", "language": "fr"},
        {"text": "no audio"},
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n{broken\n", encoding="utf-8")
    data = load_manifest(path, suite="custom", language="en")
    assert data.table["index"].tolist() == ["utt-a", "2"]
    assert data.table["language"].tolist() == ["en", "zh"]
    assert data.table["answer"].tolist() == ["Hello there.", "你好"]
    assert [p["uid"] for p in data.problems] == ["line 3", "line 4", "line 6"]
    assert "set.jsonl line 3: language 'fr'" in data.problems[0]["reason"]
    assert data.samples[1].fields["audio_path"] == str(tmp_path / "clips" / "a.wav")
    no_default = load_manifest(path, suite="custom")
    assert no_default.table["index"].tolist() == ["2"]
    if HAVE_AUDIO:
        assert abs(len(data.samples[0].audio.load()) - 16000) <= 160
        assert abs(len(data.samples[1].audio.load()) - 8000) <= 160


@pytest.mark.needs_tools('sox')
def test_duplicate_ids(tmp_path: Path) -> None:
    tone(tmp_path / "a.wav", 0.1)
    path = tmp_path / "m.jsonl"
    path.write_text('{"audio": "a.wav", "text": "x", "id": "1", "language": "en"}\n' * 2, encoding="utf-8")
    with pytest.raises(SuiteError, match=r"m.jsonl: duplicate utterance id\(s\) \['1'\]"):
        load_manifest(path, suite="m")
