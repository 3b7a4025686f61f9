"""Audio front end: decoding, torchaudio-compatible resampling, Kaldi fbank, length formulas."""

from __future__ import annotations

import math
import shutil
import subprocess
import wave as wavmod
from pathlib import Path

import av
import numpy as np
import pytest

from vita15.audio_features import (
    SAMPLE_RATE,
    AudioError,
    fbank,
    llm_length,
    load_audio,
    num_frames,
    resample,
)

HAVE_TOOLS = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None
needs_tools = pytest.mark.skipif(not HAVE_TOOLS, reason="espeak-ng and sox are needed to make test speech")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def speech_22k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real espeak-ng utterance (22.05 kHz mono s16)."""
    if not HAVE_TOOLS:
        pytest.skip("espeak-ng/sox missing")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "The quick brown fox jumps over the lazy dog."], check=True)
    return path


def _sox(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["sox", str(src), *args, str(dst)], check=True)
    return dst


def _read_wav_int16(path: Path) -> tuple[np.ndarray, int]:
    with wavmod.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return data.reshape(-1, w.getnchannels())[:, 0].astype(np.float32) / 32768.0, w.getframerate()


def _encode(path: Path, wave: np.ndarray, sr: int, codec: str, fmt: str) -> Path:
    """Write a mono file with PyAV (sox has no opus handler here)."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=sr)
        stream.layout = "mono"
        step = stream.codec_context.frame_size or 1024
        for i in range(0, len(wave), step):
            chunk = (wave[i : i + step] * 32767).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate, frame.pts = sr, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _tone(freq: float, sr: int, seconds: float, amp: float = 0.4) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


def kaldi_fbank_reference(wave: np.ndarray, sr: int = 16000, n_mels: int = 80) -> np.ndarray:
    """Independent float64 Kaldi fbank (published algorithm, Kaldi defaults, energy_floor 0, dither 0)."""
    x = wave.astype(np.float64) * 32768.0
    flen, shift, nfft = 400, 160, 512
    n = 1 + (len(x) - flen) // shift
    frames = np.stack([x[i * shift : i * shift + flen] for i in range(n)])
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames[:, 1:] = frames[:, 1:] - 0.97 * frames[:, :-1]
    frames[:, 0] = frames[:, 0] * (1 - 0.97)
    povey = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(flen) / (flen - 1))) ** 0.85
    power = np.abs(np.fft.rfft(frames * povey, n=nfft)) ** 2  # (n, 257)
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(sr / 2)
    delta = (hi - lo) / (n_mels + 1)
    bins_mel = mel(np.arange(nfft // 2) * sr / nfft)
    banks = np.zeros((n_mels, nfft // 2))
    for m in range(n_mels):
        left, center, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
        up = (bins_mel - left) / (center - left)
        down = (right - bins_mel) / (right - center)
        inside = (bins_mel > left) & (bins_mel < right)
        banks[m] = np.where(inside, np.where(bins_mel <= center, up, down), 0.0)
    energies = power[:, : nfft // 2] @ banks.T
    return np.log(np.maximum(energies, np.finfo(np.float32).eps))


def _torchaudio_formula(x: np.ndarray, orig: int, new: int, j: int, zeros: int = 6, rolloff: float = 0.99) -> float:
    """Output sample j of torchaudio's sinc_interp_hann resampler, summed directly in float64."""
    g = math.gcd(orig, new)
    o, nw = orig // g, new // g
    base = min(o, nw) * rolloff
    tau = np.clip((np.arange(len(x)) / o - j / nw) * base, -zeros, zeros)
    kernel = np.sinc(tau) * np.cos(np.pi * tau / zeros / 2) ** 2 * base / o
    return float(np.dot(x.astype(np.float64), kernel))


# --------------------------------------------------------------------------- fbank


@needs_tools
def test_fbank_matches_independent_kaldi_reference(speech_22k: Path, tmp_path: Path) -> None:
    wave16 = load_audio(_sox(speech_22k, tmp_path / "s16.wav", "-r", "16000"))
    ours = fbank(wave16).numpy()
    ref = kaldi_fbank_reference(wave16)
    assert ours.shape == ref.shape == (num_frames(len(wave16)), 80)
    assert ours.dtype == np.float32
    strong = ref > 4.0  # float32 vs float64 rounding matters only in near-silent bins
    assert strong.mean() > 0.5
    assert np.abs(ours - ref)[strong].max() < 1e-3
    assert np.abs(ours - ref).max() < 5e-3
    assert np.abs(ours - ref).mean() < 1e-4


@pytest.mark.parametrize("n", [400, 559, 560, 16000, 16159, 64000])
def test_fbank_frame_count(n: int) -> None:
    rng = np.random.default_rng(n)
    feats = fbank(rng.uniform(-0.1, 0.1, n).astype(np.float32))
    assert feats.shape == (1 + (n - 400) // 160, 80) == (num_frames(n), 80)


def test_fbank_too_short_and_dither() -> None:
    with pytest.raises(AudioError, match="399 samples"):
        fbank(np.zeros(399, np.float32))
    x = np.random.default_rng(0).uniform(-0.1, 0.1, 4000).astype(np.float32)
    assert np.array_equal(fbank(x).numpy(), fbank(x).numpy())  # dither 0 is deterministic
    assert not np.array_equal(fbank(x, dither=1.0).numpy(), fbank(x).numpy())


# --------------------------------------------------------------------------- lengths


def test_llm_length_matches_upstream_slicing() -> None:
    for t in range(0, 1200):
        assert llm_length(t) == len(list(range(t))[2::2][2::2][0::2]), t
    assert llm_length(98) == 12  # 1 s of audio
    assert llm_length(400) == 50
    assert llm_length(num_frames(4 * SAMPLE_RATE)) == 49  # 4 s = 398 frames (snip_edges)


# --------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resample_length_and_frequency(sr: int) -> None:
    x = _tone(1000.0, sr, 1.3)
    y = resample(x, sr)
    assert y.dtype == np.float32 and len(y) == math.ceil(len(x) * SAMPLE_RATE / sr)
    assert abs(_peak_hz(y, SAMPLE_RATE) - 1000.0) < 2.0
    mid = y[len(y) // 4 : -len(y) // 4]
    assert abs(np.sqrt(np.mean(mid**2)) - 0.4 / math.sqrt(2)) < 0.01  # passband gain ~1


@pytest.mark.parametrize("sr", [8000, 44100, 48000])
def test_resample_equals_windowed_sinc_formula(sr: int) -> None:
    x = np.random.default_rng(sr).uniform(-0.5, 0.5, sr // 10).astype(np.float32)
    y = resample(x, sr)
    for j in [0, 1, 7, len(y) // 2, len(y) - 2, len(y) - 1]:
        assert abs(y[j] - _torchaudio_formula(x, sr, SAMPLE_RATE, j)) < 1e-5, j


def test_resample_removes_content_above_new_nyquist() -> None:
    y = resample(_tone(12000.0, 48000, 1.0), 48000)  # 12 kHz cannot exist at 16 kHz
    assert np.sqrt(np.mean(y[2000:-2000] ** 2)) < 0.01


def test_resample_identity_at_16k() -> None:
    x = _tone(440.0, SAMPLE_RATE, 0.1)
    assert np.array_equal(resample(x, SAMPLE_RATE), x)


# --------------------------------------------------------------------------- load_audio


@needs_tools
def test_load_wav_and_flac(speech_22k: Path, tmp_path: Path) -> None:
    native, sr = _read_wav_int16(speech_22k)
    wave = load_audio(speech_22k)
    assert wave.dtype == np.float32 and wave.ndim == 1
    np.testing.assert_array_equal(wave, resample(native, sr))
    flac = load_audio(_sox(speech_22k, tmp_path / "s.flac", "-r", "44100"))
    assert abs(len(flac) - len(wave)) <= 2
    assert np.corrcoef(flac[: len(wave) - 2], wave[: len(wave) - 2])[0, 1] > 0.99


@needs_tools
def test_load_stereo_keeps_first_channel(tmp_path: Path) -> None:
    path = tmp_path / "st.wav"
    synth = ["synth", "0.5", "sine", "300", "sine", "2000"]  # left 300 Hz, right 2 kHz
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "2", str(path), *synth], check=True)
    wave = load_audio(path)
    assert abs(_peak_hz(wave, SAMPLE_RATE) - 300.0) < 4.0


@needs_tools
def test_load_segment_wav(speech_22k: Path) -> None:
    native, sr = _read_wav_int16(speech_22k)
    seg = load_audio(speech_22k, offset_s=0.5, duration_s=1.25)
    a = round(0.5 * sr)
    np.testing.assert_array_equal(seg, resample(native[a : a + round(1.25 * sr)], sr))
    tail = load_audio(speech_22k, offset_s=1.0)
    np.testing.assert_array_equal(tail, resample(native[round(1.0 * sr) :], sr))


@pytest.mark.parametrize(
    ("name", "codec", "fmt"),
    [("a.opus", "libopus", "ogg"), ("a.ogg", "libopus", "ogg"), ("a.mp3", "libmp3lame", "mp3"), ("a.m4a", "aac", "mp4")],
)
def test_load_lossy_formats_and_segments(tmp_path: Path, name: str, codec: str, fmt: str) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"PyAV lacks {codec}")
    t = np.arange(48000 * 4) / 48000
    src = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))).astype(np.float32)
    path = _encode(tmp_path / name, src, 48000, codec, fmt)
    full = load_audio(path)
    assert abs(len(full) - 4 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    assert abs(_peak_hz(full, SAMPLE_RATE) - 440.0) < 2.0
    seg = load_audio(path, offset_s=2.3, duration_s=1.0)  # seeks, then trims by timestamp
    assert len(seg) == SAMPLE_RATE
    a = round(2.3 * SAMPLE_RATE)
    inner = slice(200, -200)  # away from the resampler's edge effects
    assert np.abs(seg[inner] - full[a : a + SAMPLE_RATE][inner]).max() < 1e-3


def test_zero_length_and_unreadable_files_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    with wavmod.open(str(empty), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    with pytest.raises(AudioError, match="empty.wav"):
        load_audio(empty)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="garbage.wav"):
        load_audio(garbage)
    with pytest.raises(AudioError, match="missing.flac"):
        load_audio(tmp_path / "missing.flac")


def test_segment_past_the_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    with wavmod.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((_tone(300, 16000, 0.5) * 32767).astype(np.int16).tobytes())
    with pytest.raises(AudioError, match="short.wav"):
        load_audio(path, offset_s=3.0, duration_s=1.0)
    with pytest.raises(AudioError, match="short.wav"):
        load_audio(path, offset_s=-1.0)
