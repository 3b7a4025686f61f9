"""vita15.video_io on tiny PyAV-written clips whose frame number is drawn into the colour."""
from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vita15.video_io import VideoError, open_video

STEP = 20  # grey level per frame number: frame i is uniformly i * STEP


def write_numbered_clip(path: Path, n: int, fps: int = 10, codec: str = "libx264") -> Path:
    """An n-frame clip at `fps` whose frame i is a uniform grey of level i * STEP."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * STEP, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def frame_number(image) -> int:
    return round(float(np.asarray(image).mean()) / STEP)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_numbered_clip(tmp_path_factory.mktemp("video") / "clip.mp4", n=12)


def test_metadata(clip: Path) -> None:
    video = open_video(clip)
    assert video.path == clip
    assert video.n_frames == 12
    assert video.fps == pytest.approx(10.0)
    assert video.duration_s == pytest.approx(1.2, abs=0.11)


def test_frames_at_exact_indices(clip: Path) -> None:
    video = open_video(clip)
    indices = [7, 0, 3, 11, 3]
    frames = video.frames(indices)
    assert [f.mode for f in frames] == ["RGB"] * 5 and frames[0].size == (32, 32)
    assert [frame_number(f) for f in frames] == indices
    assert video.frame_times([0, 5, 11]) == pytest.approx([0.0, 0.5, 1.1])
    assert video.frames([]) == []


def test_out_of_range_index(clip: Path) -> None:
    with pytest.raises(VideoError, match=r"clip.mp4: frame index 12 out of range \(12 frames\)"):
        open_video(clip).frames([2, 12])


def test_counts_frames_when_container_lacks_count(tmp_path: Path) -> None:
    path = write_numbered_clip(tmp_path / "clip.mkv", n=5, codec="mpeg4")
    video = open_video(path)
    assert video.n_frames == 5
    assert [frame_number(f) for f in video.frames([4, 1])] == [4, 1]


@pytest.mark.needs_tools('sox')
def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(VideoError, match="bad.mp4"):
        open_video(bad)
    with pytest.raises(VideoError, match="absent.mp4"):
        open_video(tmp_path / "absent.mp4")
    audio_only = tmp_path / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "8000", str(audio_only), "synth", "0.1", "sine", "440"], check=True)
    with pytest.raises(VideoError, match="tone.wav: no video stream"):
        open_video(audio_only)


def test_repeated_frame_requests_decode_once(tmp_path, monkeypatch) -> None:
    """Three questions about one video: the frames are decoded the first time only."""
    import vita15.video_io as video_io

    path = tmp_path / "clip.mp4"
    write_numbered_clip(path, 12)
    handle = video_io.open_video(path)
    calls = []
    original = video_io.VideoHandle._decode
    monkeypatch.setattr(video_io.VideoHandle, "_decode", lambda self, idx: calls.append(idx) or original(self, idx))
    first = handle.frames([1, 5, 9])
    again = video_io.open_video(path).frames([1, 5, 9])
    assert len(calls) == 1 and [f.tobytes() for f in first] == [f.tobytes() for f in again]
