"""Fixtures for the training tests: a handful of VITA-JSON samples with real media files.

Media are made without espeak (noise + tones for speech), so these tests only need PyAV.
"""
from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from vita15 import synthetic as syn
from vita15.checkpoint import write_checkpoint, write_tokenizer
from vita15.configuration_vita import tiny_config
from vita15.conversation import load_tokenizer

MME = " Please answer yes or no. Answer the question using a single word or phrase."


def _write_wav(path: Path, seconds: float, freq: float, seed: int) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((x * 32767).astype("<i2").tobytes())


def _sample(sid: str, human: str, gpt: str, **media) -> dict:
    return {"set": media.pop("set", "imgs"), "id": sid, **media,
            "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]}


@pytest.fixture(scope="session")
def mini_data(tmp_path_factory) -> Path:
    """images/, audio/, videos/ and good.json (every modality), small.json (no video), asr.json, bad.json."""
    root = tmp_path_factory.mktemp("mini_data")
    for folder in ("images", "audio", "videos"):
        (root / folder).mkdir()
    for i in range(2):
        syn.draw_scene(i).image.save(root / "images" / f"img{i}.png")
        _write_wav(root / "audio" / f"a{i}.wav", 1.2 + 0.3 * i, 300 + 200 * i, i)
    syn.write_video(root / "videos" / "v0.mp4", syn.video_facts(0), size=112)
    good = [
        _sample("cap0", "<image>\nDescribe the image briefly.", "The image shows shapes.", image="img0.png"),
        _sample("qa0", "<image>\nIs there a red circle in this image?" + MME, "Yes", image="img1.png"),
        _sample("asr0", "Please recognize the speech and only output the recognized content:\n<audio>",
                "THE RED CIRCLE", audio="a0.wav"),
        _sample("spoken0", "<image>\n<audio>\n", "No", image="img0.png", audio="a1.wav"),
        _sample("vid0", "<video>\n\nWhat moves?\nA. circle\nB. square\nAnswer: ", "A", video="v0.mp4", set="vids"),
    ]
    asr = [_sample(f"asr{i}", "Please recognize the speech and only output the recognized content:\n<audio>",
                   ["THE RED CIRCLE", "THE BLUE SQUARE IS ABOVE"][i], audio=f"a{i}.wav") for i in range(2)]
    bad = [
        good[1],
        _sample("missing_image", "<image>\nWhat is it?", "A", image="nope.png"),
        {"set": "imgs", "id": "swapped_turns", "image": "img0.png",
         "conversations": [{"from": "gpt", "value": "<image>\nHi"}, {"from": "human", "value": "Yes"}]},
        _sample("no_placeholder", "What is it?", "A", image="img0.png"),
    ]
    for name, samples in (("good.json", good), ("small.json", good[:4]), ("asr.json", asr), ("bad.json", bad)):
        (root / name).write_text(json.dumps(samples, ensure_ascii=False))
    return root


def data_config(root: Path, *files: str) -> dict:
    return {"files": [str(root / f) for f in files],
            "image_folders": {"imgs": str(root / "images"), "vids": str(root / "videos")},
            "audio_folder": str(root / "audio"), "max_frames": 4, "min_frames": 4, "cache_media": True}


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer(path)
    return load_tokenizer(path)


@pytest.fixture(scope="session")
def tiny_vita_ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("tiny_vita"), tiny_config(), seed=0, dtype=torch.float32)


@pytest.fixture(autouse=True)
def _single_thread():
    """Two shared cores: one intra-op thread is faster and keeps the suite predictable."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
