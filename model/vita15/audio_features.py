"""Audio loading and Kaldi fbank features for VITA-1.5's speech input (spec §3.1).

Upstream decodes with ``torchaudio.load``, resamples with ``torchaudio.transforms.Resample``
defaults and computes ``torchaudio.compliance.kaldi.fbank`` on ``wave * 32768``. torchaudio cannot
be installed next to transformers here, so decoding goes through PyAV, the resampling kernel is
re-implemented in torch and the fbank comes from kaldi-native-fbank (same Kaldi algorithm).
"""

from __future__ import annotations

import math
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
import torch

SAMPLE_RATE = 16000
N_MELS = 80
FRAME_LENGTH = 400  # 25 ms at 16 kHz
FRAME_SHIFT = 160  # 10 ms at 16 kHz
# Decoding starts this long before a requested offset so lossy decoders (opus, mp3) have converged
# by the first kept sample; the pre-roll samples are dropped.
SEEK_PREROLL_S = 0.5


class AudioError(ValueError):
    """An audio file or waveform that cannot be turned into model input."""


# --------------------------------------------------------------------------- decoding


def load_audio(path: str | Path, offset_s: float = 0.0, duration_s: float | None = None) -> np.ndarray:
    """Decode ``path`` to float32 mono 16 kHz in [-1, 1], optionally only a segment.

    The first channel is kept (upstream's Kaldi fbank reads channel 0, it does not downmix).
    ``offset_s``/``duration_s`` cut the segment at the file's own rate before resampling, which is
    how WenetSpeech segments are taken out of long opus files without decoding them whole.
    Not clipped: as upstream, resampling ringing may overshoot +-1 by a hair.
    """
    import av  # only file decoding needs PyAV; features and the encoder do not

    path = Path(path)
    if offset_s < 0 or (duration_s is not None and duration_s < 0):
        raise AudioError(f"{path}: offset_s and duration_s must be >= 0 (got {offset_s}, {duration_s})")
    try:
        wave, sr = _decode_segment(path, offset_s, duration_s, seek=offset_s > 0)
    except AudioError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc})") from exc
    if wave.size == 0:
        raise AudioError(f"{path}: no audio samples in segment offset={offset_s}s duration={duration_s}s")
    return resample(wave, sr)


def _decode_segment(path: Path, offset_s: float, duration_s: float | None, *, seek: bool) -> tuple[np.ndarray, int]:
    """Samples [offset, offset+duration) of the first channel at the native rate."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        origin = stream.start_time or 0  # pts of the first sample a full decode returns (mp3 delay)
        if seek:
            target = max(0.0, offset_s - SEEK_PREROLL_S)
            container.seek(origin + int(target / stream.time_base), stream=stream)
        chunks: list[np.ndarray] = []
        sr = pos = start = 0  # pos: absolute sample index of the next decoded sample
        end: int | None = None
        for i, frame in enumerate(container.decode(stream)):
            if i == 0:
                sr = frame.sample_rate
                if seek and frame.pts is None:  # position unknown: decode from the start instead
                    return _decode_segment(path, offset_s, duration_s, seek=False)
                pos = round(float((frame.pts - origin) * frame.time_base) * sr) if seek else 0
                start = round(offset_s * sr)
                end = None if duration_s is None else start + round(duration_s * sr)
            samples = _first_channel(frame)
            lo = max(start - pos, 0)
            hi = len(samples) if end is None else min(end - pos, len(samples))
            if hi > lo:
                chunks.append(samples[lo:hi])
            pos += len(samples)
            if end is not None and pos >= end:
                break
    return _join(chunks), sr


def _join(chunks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _first_channel(frame: av.AudioFrame) -> np.ndarray:
    """Channel 0 of a decoded frame as float32, integers scaled like torchaudio.load (x / 2^(bits-1))."""
    data = frame.to_ndarray()
    fmt = frame.format.name.rstrip("p")
    channels = len(frame.layout.channels)
    row = data[0] if frame.format.is_planar else data.reshape(-1, channels)[:, 0]
    if fmt in _INT_SCALE:
        offset = 128.0 if fmt == "u8" else 0.0
        return ((row.astype(np.float64) - offset) / _INT_SCALE[fmt]).astype(np.float32)
    return row.astype(np.float32)


# --------------------------------------------------------------------------- resampling


def resample(wave: np.ndarray, sr: int) -> np.ndarray:
    """Resample to 16 kHz exactly like ``torchaudio.transforms.Resample(sr, 16000)`` with defaults.

    Method: band-limited windowed-sinc interpolation (Hann window, lowpass_filter_width 6,
    rolloff 0.99), the kernel built in float64 and used in float32 as a strided conv1d; output
    length ceil(N * 16000 / sr). Upstream's model was trained on audio resampled this way.
    """
    if sr <= 0:
        raise AudioError(f"sample rate must be positive, got {sr}")
    wave = np.asarray(wave, dtype=np.float32)
    if sr == SAMPLE_RATE:
        return wave
    gcd = math.gcd(sr, SAMPLE_RATE)
    orig, new = sr // gcd, SAMPLE_RATE // gcd
    kernel, width = _sinc_kernel(orig, new)
    x = torch.from_numpy(np.ascontiguousarray(wave)).reshape(1, 1, -1)
    x = torch.nn.functional.pad(x, (width, width + orig))
    y = torch.nn.functional.conv1d(x, kernel, stride=orig)  # (1, new, frames)
    y = y.transpose(1, 2).reshape(-1)
    target = math.ceil(new * wave.shape[-1] / orig)
    return y[:target].numpy()


def _sinc_kernel(orig: int, new: int, width_zeros: int = 6, rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """One polyphase filter per output phase: (new, 1, 2*width + orig) float32, and the half width."""
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx
    t = (t * base).clamp(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return (sinc * window * (base / orig)).to(torch.float32), width


# --------------------------------------------------------------------------- features


def fbank(wave: np.ndarray, *, dither: float = 0.0) -> torch.Tensor:
    """80-bin Kaldi log-mel fbank (T, 80) of a 16 kHz wave in [-1, 1], as upstream computes it.

    Kaldi defaults except energy_floor 0: 25/10 ms povey frames, snip_edges, DC removal,
    pre-emphasis 0.97, 512-pt power spectrum, mel 20 Hz..Nyquist, log floored at float eps.
    ``dither`` > 0 adds random noise (upstream's train.yaml value); 0 keeps features deterministic.
    """
    return torch.from_numpy(fbank_array(wave, dither))


def fbank_array(wave: np.ndarray, dither: float = 0.0) -> np.ndarray:
    """`fbank` as a NumPy array (what `FbankPool` workers return)."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    if wave.size < FRAME_LENGTH:
        raise AudioError(f"audio too short for fbank: {wave.size} samples < {FRAME_LENGTH} (25 ms at 16 kHz)")
    computer = knf.OnlineFbank(_fbank_options(dither))
    computer.accept_waveform(SAMPLE_RATE, (wave * 32768.0).tolist())
    computer.input_finished()
    n = computer.num_frames_ready
    return np.stack([computer.get_frame(i) for i in range(n)]).astype(np.float32)


class FbankPool:
    """`fbank` in worker processes. kaldi-native-fbank holds the GIL while it computes, so threads
    preparing requests ahead of the GPU would run it one at a time; processes run it in parallel."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = max(1, workers)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def __call__(self, wave: np.ndarray, *, dither: float = 0.0) -> torch.Tensor:
        return torch.from_numpy(self._pool.submit(fbank_array, np.asarray(wave, dtype=np.float32), dither).result())

    def warm_up(self) -> None:
        """Start every worker process in the background (each imports torch once)."""
        silence = np.zeros(FRAME_LENGTH, dtype=np.float32)
        for _ in range(self.workers):
            self._pool.submit(fbank_array, silence)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _fbank_options(dither: float) -> knf.FbankOptions:
    opts = knf.FbankOptions()
    frame = opts.frame_opts
    frame.samp_freq = float(SAMPLE_RATE)
    frame.frame_length_ms = 25.0
    frame.frame_shift_ms = 10.0
    frame.dither = float(dither)  # knf's default is not 0
    frame.preemph_coeff = 0.97
    frame.remove_dc_offset = True
    frame.window_type = "povey"
    frame.round_to_power_of_two = True
    frame.snip_edges = True
    opts.mel_opts.num_bins = N_MELS
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0  # <= 0 means relative to Nyquist
    opts.energy_floor = 0.0
    opts.use_energy = False
    opts.use_power = True
    opts.use_log_fbank = True
    return opts


def num_frames(n_samples: int) -> int:
    """Fbank frame count with snip_edges: 1 + (N - 400) // 160 (0 when shorter than a frame)."""
    return 0 if n_samples < FRAME_LENGTH else 1 + (n_samples - FRAME_LENGTH) // FRAME_SHIFT


def encoder_length(n_frames: int) -> int:
    """Frames after the 4x conv subsampling: floor((floor((T-1)/2) - 1) / 2), never negative."""
    return max(((n_frames - 1) // 2 - 1) // 2, 0)


def llm_length(n_frames: int) -> int:
    """LLM audio tokens for T fbank frames: ceil(T'/2) after subsampling (spec §3.1).

    Equals upstream's ``len(ones(T)[2::2][2::2][0::2])``: 98 frames (1 s) -> 12, 400 -> 50.
    """
    return (encoder_length(n_frames) + 1) // 2
