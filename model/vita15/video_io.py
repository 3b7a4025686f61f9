"""Video reading with PyAV: frame counts, average rate and frames at given indices.

VLMEvalKit samples Video-MME frames by *index* (`int(i * step)` over `len(vid)`) and
derives subtitle times from `index / avg_fps`, so the API here is index based. Frames
are fetched by decoding sequentially once and keeping the wanted ones: seeking in
H.264/HEVC lands on key frames and needs careful pts bookkeeping to hit an exact
index, while a single sequential pass is exact by construction and fast enough for
benchmark clips (threaded decoding; RGB conversion only for kept frames).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
from PIL import Image


class VideoError(ValueError):
    """A video that cannot be opened or decoded; the message names the file."""


# Benchmarks ask several questions about one video in a row (Video-MME: 3), each with the same
# frame indices: keep the last few decodes so a video is decoded once, not once per question.
# One cache per thread: worker threads each prepare whole groups, and never share a dict.
_CACHE_SIZE = 4
_local = threading.local()


def _frame_cache() -> OrderedDict[tuple[str, float, tuple[int, ...]], list[Image.Image]]:
    if not hasattr(_local, "frames"):
        _local.frames = OrderedDict()
    return _local.frames


def _open_stream(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open `path` and its first video stream with threaded decoding."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"{path}: cannot open video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _decoded_frames(path: Path) -> Iterator[av.VideoFrame]:
    """Yield every frame of the first video stream in output order."""
    container, stream = _open_stream(path)
    with container:
        try:
            yield from container.decode(stream)
        except av.FFmpegError as exc:
            raise VideoError(f"{path}: decoding failed: {exc}") from exc


@dataclass
class VideoHandle:
    """Metadata of one video plus index-based frame access (the file is reopened per call)."""

    path: Path
    fps: float
    duration_s: float
    _n_frames: int | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        """Frame count from the container, or counted by decoding when it is absent."""
        if self._n_frames is None:
            self._n_frames = sum(1 for _ in _decoded_frames(self.path))
            if self._n_frames == 0:
                raise VideoError(f"{self.path}: no decodable frames")
        return self._n_frames

    def frames(self, indices: Sequence[int]) -> list[Image.Image]:
        """RGB frames at exactly `indices` (output order, 0-based), returned in the order asked."""
        key = (str(self.path.resolve()), self.path.stat().st_mtime, tuple(indices))
        cache = _frame_cache()
        if key in cache:
            cache.move_to_end(key)
            return list(cache[key])
        frames = self._decode(indices)
        cache[key] = frames
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
        return list(frames)

    def _decode(self, indices: Sequence[int]) -> list[Image.Image]:
        wanted = set(indices)
        if not wanted:
            return []
        if min(wanted) < 0:
            raise VideoError(f"{self.path}: negative frame index {min(wanted)}")
        last = max(wanted)
        kept: dict[int, Image.Image] = {}
        decoded = 0
        for i, frame in enumerate(_decoded_frames(self.path)):
            decoded = i + 1
            if i in wanted:
                kept[i] = frame.to_image()
            if i >= last:
                break
        missing = sorted(wanted - kept.keys())
        if missing:
            raise VideoError(f"{self.path}: frame index {missing[0]} out of range ({decoded} frames)")
        return [kept[i] for i in indices]

    def frame_times(self, indices: Sequence[int]) -> list[float]:
        """Nominal times `index / fps` in seconds, as VLMEvalKit's subtitle lookup computes them."""
        return [i / self.fps for i in indices]


def open_video(path: str | Path) -> VideoHandle:
    """Probe a video's rate, duration and (if stored) frame count; raise VideoError if unusable."""
    path = Path(path)
    container, stream = _open_stream(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        stored = stream.frames or None
    if not rate or rate <= 0:
        raise VideoError(f"{path}: video stream has no frame rate")
    handle = VideoHandle(path=path, fps=float(rate), duration_s=duration, _n_frames=stored)
    if handle.duration_s <= 0:
        handle.duration_s = handle.n_frames / handle.fps
    return handle
