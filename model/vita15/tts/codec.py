"""TiCodec: the VITA-1.5 codec that turns speech-decoder codes into a 24 kHz waveform.

Decoding = codebook lookup (1 code per 600 samples) + 8 fixed global "speaker" tokens → HiFi-GAN
style generator. The encoder and nearest-neighbour quantisation exist so that the released
``codec/final.pt`` (which stores them) loads strictly; speech output never uses them.

The checkpoint stores weight-normalised convolutions as ``weight_g``/``weight_v``; the modules here
hold plain ``weight`` tensors (weight norm removed, as upstream does right after loading), and
:func:`stored_state_dict` / :func:`load_stored_state_dict` convert between the two layouts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.1
GLOBAL_TOKENS = (473, 975, 419, 219, 565, 121, 550, 616)


@dataclass(frozen=True)
class CodecConfig:
    """Values of ``codec/model.json``; defaults are the Freeze-Omni / VITA-1.5 ones.

    ``code_dim`` and ``encoder_base_channels`` are hard-coded (512, 32) upstream; they are config
    fields here only so that scaled-down test checkpoints keep the same architecture.
    """

    resblock: str = "1"
    upsample_rates: tuple[int, ...] = (8, 5, 5, 3)
    upsample_kernel_sizes: tuple[int, ...] = (16, 11, 11, 5)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    sampling_rate: int = 24000
    n_code_groups: int = 1
    residul_layer: int = 1
    n_codes: int = 1024
    global_code_num: int = 8
    global_feature_conv: tuple[int, ...] = (128, 64, 128, 3, 1)
    global_tokens: tuple[int, ...] = GLOBAL_TOKENS
    code_dim: int = 512
    encoder_base_channels: int = 32

    @property
    def hop_length(self) -> int:
        """Samples per code (600 for [8, 5, 5, 3])."""
        return math.prod(self.upsample_rates)

    @property
    def global_dim(self) -> int:
        return self.global_feature_conv[2]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CodecConfig:
        """Read the known keys; training-only keys of the upstream file are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: _tupled(v) for k, v in data.items() if k in known}
        cfg = cls(**values)
        if cfg.resblock != "1":
            raise ValueError(f"codec model.json: resblock {cfg.resblock!r} unsupported (VITA-1.5 uses '1')")
        return cfg

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def _wn(module: nn.Module) -> nn.Module:
    """Mark a layer whose weight is stored weight-normalised (``weight_g``/``weight_v``)."""
    module.stored_weight_norm = True
    return module


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """HiFi-GAN ResBlock1: three (dilated conv, conv) pairs with residual connections."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            _wn(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=_padding(kernel_size, d)))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            _wn(nn.Conv1d(channels, channels, kernel_size, 1, padding=_padding(kernel_size)))
            for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


def _resblocks(cfg: CodecConfig, channels: list[int], reverse: bool) -> nn.ModuleList:
    kernels = list(cfg.resblock_kernel_sizes)
    dilations = list(cfg.resblock_dilation_sizes)
    if reverse:
        kernels, dilations = kernels[::-1], dilations[::-1]
    return nn.ModuleList(
        ResBlock1(ch, k, tuple(d)) for ch in channels for k, d in zip(kernels, dilations)
    )


class Generator(nn.Module):
    """Codes embedding (B, code_dim, T) + global vector (B, global_dim) → waveform (B, 1, hop·T)."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        c0 = cfg.upsample_initial_channel
        channels = [c0 // 2 ** (i + 1) for i in range(len(cfg.upsample_rates))]
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.conv_pre = _wn(nn.Conv1d(cfg.code_dim, c0, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            _wn(nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
        )
        self.resblocks = _resblocks(cfg, channels, reverse=False)
        self.conv_post = _wn(nn.Conv1d(channels[-1], 1, 7, 1, padding=3))
        if cfg.global_dim not in channels:
            raise ValueError(f"codec: no generator stage has {cfg.global_dim} channels for the global vector")
        # Upstream adds the global vector after every stage whose width equals its size.
        self.global_stages = frozenset(i for i, ch in enumerate(channels) if ch == cfg.global_dim)

    def forward(self, x: torch.Tensor, global_vec: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
            if i in self.global_stages:
                x = x + global_vec.unsqueeze(-1)
        return torch.tanh(self.conv_post(F.leaky_relu(x, LRELU_SLOPE)))


class GlobalTokenEncoder(nn.Module):
    """Utterance-level style vector from mid-level encoder features (time-averaged convs)."""

    def __init__(self, cin: int, hidden: int, cout: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        pad = (kernel_size - stride) // 2
        self.conv = nn.Sequential(
            nn.Conv1d(cin, hidden, kernel_size, stride, pad, bias=False),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Conv1d(hidden, hidden, kernel_size, stride, pad, bias=False),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Conv1d(hidden, cout, kernel_size, stride, pad, bias=False),
            nn.LeakyReLU(LRELU_SLOPE),
        )
        self.fn = nn.Sequential(nn.Linear(cout, cout), nn.LeakyReLU(LRELU_SLOPE), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.conv(x).mean(dim=2))


class Encoder(nn.Module):
    """Waveform (B, 1, N) → code features (B, code_dim, N/hop) and a global vector (B, global_dim)."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        base = cfg.encoder_base_channels
        n = len(cfg.upsample_rates)
        channels = [base * 2 ** (i + 1) for i in range(n)]
        if channels[-1] != cfg.code_dim:
            raise ValueError(f"codec: encoder width {channels[-1]} must equal code_dim {cfg.code_dim}")
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.global_stage = n // 2 - 1
        self.conv_pre = _wn(nn.Conv1d(1, base, 7, 1, padding=3))
        down = list(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))[::-1]
        self.ups = nn.ModuleList(
            _wn(nn.Conv1d(base * 2**i, base * 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(down)
        )
        self.resblocks = _resblocks(cfg, channels, reverse=True)
        # Upstream uses ch // 16 groups; max(1, ·) only matters for scaled-down test widths.
        self.normalize = nn.ModuleList(
            nn.GroupNorm(max(1, ch // 16), ch, eps=1e-6) for ch in channels for _ in range(self.num_kernels)
        )
        self.conv_post = nn.Conv1d(cfg.code_dim, cfg.code_dim, 3, 1, padding=1)
        # Stored in the checkpoint but not used by the reference forward pass.
        self.linear = nn.Sequential(nn.Linear(cfg.global_dim, cfg.global_dim), nn.LeakyReLU(LRELU_SLOPE))
        self.GlobalTokenEncoder = GlobalTokenEncoder(*cfg.global_feature_conv)

    def _stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        # Reference order: the GroupNorm is applied to the running sum after each resblock.
        xs: torch.Tensor | None = None
        for j in range(i * self.num_kernels, (i + 1) * self.num_kernels):
            y = self.resblocks[j](x)
            xs = self.normalize[j](y if xs is None else xs + y)
        assert xs is not None
        return xs / self.num_kernels

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv_pre(wave)
        global_vec: torch.Tensor | None = None
        for i, down in enumerate(self.ups):
            x = self._stage(i, down(F.leaky_relu(x, LRELU_SLOPE)))
            if i == self.global_stage:
                global_vec = self.GlobalTokenEncoder(x)
        assert global_vec is not None
        return self.conv_post(F.leaky_relu(x)), global_vec


class Codebook(nn.Module):
    """One VQ codebook (``<list>.<k>.embedding.weight`` in the checkpoint)."""

    def __init__(self, n_codes: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_codes, dim)

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the closest code (Euclidean) for each row of ``x`` (N, dim)."""
        return torch.cdist(x.float(), self.embedding.weight.float()).argmin(dim=1)


def _level_name(level: int) -> str:
    return "quantizer_modules" if level == 0 else f"quantizer_modules{level + 1}"


class Quantizer(nn.Module):
    """Residual, grouped codebooks for the frame codes plus the global-token codebooks."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        if cfg.code_dim % cfg.n_code_groups or cfg.global_dim % cfg.global_code_num:
            raise ValueError("codec: code_dim / global dim not divisible by the number of groups")
        self.n_groups = cfg.n_code_groups
        self.n_levels = cfg.residul_layer
        for level in range(cfg.residul_layer):
            books = nn.ModuleList(
                Codebook(cfg.n_codes, cfg.code_dim // cfg.n_code_groups) for _ in range(cfg.n_code_groups)
            )
            self.add_module(_level_name(level), books)
        self.quantizer_modules_globaltokens = nn.ModuleList(
            Codebook(cfg.n_codes, cfg.global_dim // cfg.global_code_num) for _ in range(cfg.global_code_num)
        )

    def _level(self, level: int) -> nn.ModuleList:
        return getattr(self, _level_name(level))

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, T, groups·levels) → summed level embeddings (B, code_dim, T)."""
        if codes.shape[-1] != self.n_groups * self.n_levels:
            raise ValueError(f"codec: codes need {self.n_groups * self.n_levels} columns, got {codes.shape[-1]}")
        out: torch.Tensor | int = 0
        for level in range(self.n_levels):
            books = self._level(level)
            cols = [books[g].embedding(codes[..., level * self.n_groups + g]) for g in range(self.n_groups)]
            out = out + torch.cat(cols, dim=-1)
        assert isinstance(out, torch.Tensor)
        return out.transpose(1, 2)

    def embed_global(self, tokens: torch.Tensor) -> torch.Tensor:
        """Global tokens (B, global_code_num) → global vector (B, global_dim)."""
        books = self.quantizer_modules_globaltokens
        return torch.cat([books[k].embedding(tokens[:, k]) for k in range(len(books))], dim=-1)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Residual nearest-code search: (B, code_dim, T) → codes (B, T, groups·levels)."""
        b, c, t = features.shape
        residual = features.transpose(1, 2).reshape(b * t, c)
        codes = []
        for level in range(self.n_levels):
            books = self._level(level)
            parts = residual.split(c // self.n_groups, dim=-1)
            ids = [books[g].nearest(parts[g]) for g in range(self.n_groups)]
            quantised = torch.cat([books[g].embedding(ids[g]) for g in range(self.n_groups)], dim=-1)
            residual = residual - quantised
            codes.extend(ids)
        return torch.stack(codes, dim=-1).view(b, t, -1)

    def encode_global(self, global_vec: torch.Tensor) -> torch.Tensor:
        books = self.quantizer_modules_globaltokens
        parts = global_vec.split(global_vec.shape[-1] // len(books), dim=-1)
        return torch.stack([books[k].nearest(parts[k]) for k in range(len(books))], dim=-1)


class TiCodec(nn.Module):
    """Generator + quantizer (+ encoder) with the stored checkpoint's module names."""

    def __init__(self, cfg: CodecConfig, with_encoder: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.generator = Generator(cfg)
        self.quantizer = Quantizer(cfg)
        self.encoder = Encoder(cfg) if with_encoder else None

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    def default_global_tokens(self, batch: int = 1) -> torch.Tensor:
        device = self.quantizer.quantizer_modules_globaltokens[0].embedding.weight.device
        return torch.tensor([self.cfg.global_tokens] * batch, dtype=torch.long, device=device)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor, global_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (T,) or (B, T, K) → waveform (B, 1, hop·T) in [-1, 1], fixed speaker by default."""
        if codes.dim() == 1:
            codes = codes.view(1, -1, 1)
        codes = codes.to(self.quantizer._level(0)[0].embedding.weight.device)
        if global_tokens is None:
            global_tokens = self.default_global_tokens(codes.shape[0])
        x = self.quantizer.embed(codes)
        return self.generator(x, self.quantizer.embed_global(global_tokens))

    @torch.inference_mode()
    def encode(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform (B, N) → frame codes (B, N/hop, K) and global tokens (B, global_code_num)."""
        if self.encoder is None:
            raise RuntimeError("TiCodec was built without its encoder")
        features, global_vec = self.encoder(wave.unsqueeze(1))
        return self.quantizer.encode(features), self.quantizer.encode_global(global_vec)


def weight_norm_layers(module: nn.Module) -> list[str]:
    """Names of the sub-layers whose weight is stored as ``weight_g``/``weight_v``."""
    return [name for name, m in module.named_modules() if getattr(m, "stored_weight_norm", False)]


def _norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(v.float(), dim=tuple(range(1, v.dim())), keepdim=True)


def stored_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """State dict in the checkpoint layout: ``weight`` → ``weight_g`` (norm, dim 0) + ``weight_v``."""
    state = dict(module.state_dict())
    for name in weight_norm_layers(module):
        weight = state.pop(f"{name}.weight")
        state[f"{name}.weight_g"] = _norm_except_dim0(weight).to(weight.dtype)
        state[f"{name}.weight_v"] = weight
    return state


def fold_weight_norm(module: nn.Module, stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`stored_state_dict`: ``weight = g · v / ‖v‖`` (what remove_weight_norm does)."""
    state = dict(stored)
    for name in weight_norm_layers(module):
        g, v = state.pop(f"{name}.weight_g"), state.pop(f"{name}.weight_v")
        state[f"{name}.weight"] = (v.float() * (g.float() / _norm_except_dim0(v))).to(v.dtype)
    return state
