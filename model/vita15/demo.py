"""The reference demo's one-shot query (`video_audio_demo.py`): media files in, one request out.

`model-dump` and `ask` both build their request here, so the prompt they give the model is the
same for the same inputs: the demo's placeholders (`"<image>"*tiles + "\\n"`, video frames sampled
at 1 fps clamped to 4..16, `<audio>` appended to the user turn) and its system prompt per modality
(video when frames are given, image when images are, lang otherwise). Media are decoded before any
model is loaded, so a missing or unreadable file is reported first and costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .audio_features import load_audio
from .image_processing import demo_frame_indices, load_image


@dataclass
class DemoQuery:
    """Duck-typed like the harness Request that `inference.prepare_request` reads."""

    text: str
    images: list[Image.Image] = field(default_factory=list)
    frames: list[Image.Image] = field(default_factory=list)
    audio: np.ndarray | None = None  # float32 mono 16 kHz
    max_tiles: int = 12
    modality: str = "image"
    uid: str = "query"

    @property
    def audio_seconds(self) -> float:
        return 0.0 if self.audio is None else len(self.audio) / 16000


def video_frames(path: str | Path) -> list[Image.Image]:
    """The demo's frames of a video file: 1 fps, at least 4 and at most 16 (uniformly resampled)."""
    from .video_io import open_video

    handle = open_video(path)
    return handle.frames(demo_frame_indices(handle.n_frames, handle.fps))


def load_query(
    question: str = "",
    images: Sequence[str | Path | Image.Image] = (),
    video: str | Path | None = None,
    audio: str | Path | np.ndarray | None = None,
    max_tiles: int = 12,
) -> DemoQuery:
    """Decode the media of one demo query; raises ImageError / AudioError / VideoError naming the file."""
    pil_images = [im if isinstance(im, Image.Image) else load_image(im) for im in images]
    frames = video_frames(video) if video is not None else []
    wave = load_audio(audio) if isinstance(audio, (str, Path)) else audio
    return DemoQuery(text=question, images=pil_images, frames=frames, audio=wave, max_tiles=max_tiles,
                     modality="video" if frames else "image")
