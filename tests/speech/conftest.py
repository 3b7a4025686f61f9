"""Fixtures for the speech tests: a tiny checkpoint WITH TTS modules, a scene image, a spoken clip."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

LIBRI = Path(__file__).resolve().parents[2] / "benchmarks" / "samples" / "LibriSpeech" / "test-clean" / "9001" / "100"


@pytest.fixture(scope="session")
def tts_ckpt(tmp_path_factory) -> Path:
    """Tiny VITA (seed 0) with a tiny random vita_tts_ckpt, as `model-init --size tiny --with-tts` writes it."""
    from vita15.checkpoint import write_checkpoint
    from vita15.configuration_vita import tiny_config

    return write_checkpoint(tmp_path_factory.mktemp("tiny_tts"), tiny_config(), seed=0, dtype=torch.float32,
                            with_tts=True)


@pytest.fixture(scope="session")
def scene_png(tmp_path_factory) -> Path:
    from vita15.synthetic import draw_scene

    path = tmp_path_factory.mktemp("img") / "scene.png"
    draw_scene(3).image.resize((896, 448)).save(path)  # 2x1 grid + thumbnail = 3 tiles at max_tiles >= 2
    return path


@pytest.fixture(scope="session")
def question_flac() -> Path:
    """A bundled spoken sentence (espeak, 16 kHz FLAC)."""
    return LIBRI / "9001-100-0000.flac"


@pytest.fixture(scope="session")
def engine(tts_ckpt):
    from vita15.inference import VitaInference

    return VitaInference.from_pretrained(tts_ckpt, device="cpu", dtype="fp32")
