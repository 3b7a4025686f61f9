"""Shared fixtures: one tiny official-layout checkpoint and the real Qwen2.5 tokenizer per session."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from vita15.checkpoint import write_checkpoint, write_tokenizer
from vita15.configuration_vita import tiny_config
from vita15.conversation import load_tokenizer


@dataclass
class Req:
    """Duck-typed like vita_eval.types.Request (the model package must not import vita_eval)."""

    uid: str
    text: str
    images: list = field(default_factory=list)
    frames: list = field(default_factory=list)
    audio: Any = None
    max_tiles: int = 6
    modality: str = "image"


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    return load_tokenizer(tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """fp32 tiny checkpoint, sharded (several files + index), seed 0."""
    path = tmp_path_factory.mktemp("tiny_vita")
    return write_checkpoint(path, tiny_config(), seed=0, dtype=torch.float32, max_shard_bytes=30 * 1024**2)


@pytest.fixture(scope="session")
def inference(tiny_ckpt):
    from vita15.inference import VitaInference

    return VitaInference.from_pretrained(tiny_ckpt, device="cpu", dtype="fp32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def random_image(rng, width: int, height: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
