"""VITA-1.5's audio encoder ("Whale") and its adapter: fbank (B, T, 80) -> LLM embeddings (spec §3).

Module and buffer names mirror the checkpoint (``model.audio_encoder.*``), typos included
(``adpter``; ``bn2`` is a LayerNorm), so the official state dict loads without renaming.
The attention mask mode and the fbank dither come from the encoder's ``train.yaml``; the YAML
layout here is the one upstream's ``init_model``/``whaleEncoder`` reads (see ``from_train_yaml``).
"""

from __future__ import annotations

import contextvars
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from .audio_features import (
    FRAME_LENGTH,
    FRAME_SHIFT,
    N_MELS,
    SAMPLE_RATE,
    AudioError,
    encoder_length,
    llm_length,
)

MASK_MODES = ("full", "static_chunk", "dynamic_chunk")
# Upstream's sinusoid table has 5000 rows and is sliced, so at most 5000 encoder frames fit.
MAX_POSITIONS = 5000
MAX_FBANK_FRAMES = 4 * MAX_POSITIONS + 6  # largest T with encoder_length(T) <= MAX_POSITIONS
MAX_AUDIO_SECONDS = (FRAME_LENGTH + (MAX_FBANK_FRAMES - 1) * FRAME_SHIFT) / SAMPLE_RATE  # 200.075 s
FP16_MIN = float(torch.finfo(torch.float16).min)  # upstream's mask fill value, whatever the dtype


# --------------------------------------------------------------------------- config


@dataclass
class WhaleConfig:
    """Architecture and inference settings of the Whale encoder + adapter (defaults: VITA-1.5)."""

    llm_hidden: int = 3584
    d_model: int = 1024
    heads: int = 16
    ffn: int = 4096
    blocks: int = 24
    input_dim: int = N_MELS
    subsampling: int = 4
    mask_mode: str = "full"
    chunk_size: int = -1
    left_chunks: int = -1
    dither: float = 0.0
    dropout: float = 0.1  # embed / positional / residual / FFN dropout (training only)
    adapter_kernel: int = 5
    adapter_stride: int = 2
    adapter_hidden: int = 2048
    ln_eps: float = 1e-5
    adapter_ln_eps: float = 1e-3

    def __post_init__(self) -> None:
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}")
        if self.mask_mode == "static_chunk" and self.chunk_size <= 0:
            raise ValueError(f"static_chunk needs chunk_size > 0, got {self.chunk_size}")
        if self.subsampling != 4:
            raise ValueError(f"only Conv2dSubsampling4 exists upstream, got subsampling={self.subsampling}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if _sub_freq(self.input_dim) < 1:
            raise ValueError(f"input_dim {self.input_dim} is too small for two stride-2 convolutions")

    @classmethod
    def vita15_default(cls, llm_hidden: int = 3584) -> "WhaleConfig":
        """The VITA-1.5 encoder. The shipped train.yaml is unknown: full attention, dither 0."""
        return cls(llm_hidden=llm_hidden)

    @classmethod
    def tiny(cls, llm_hidden: int) -> "WhaleConfig":
        """Same architecture at ~60K parameters (plus the llm_hidden projection), for tests and toy checkpoints."""
        return cls(llm_hidden=llm_hidden, d_model=32, heads=2, ffn=64, blocks=2, adapter_hidden=64)

    @classmethod
    def from_train_yaml(cls, path: str | Path, llm_hidden: int) -> "WhaleConfig":
        """Read upstream's audio-encoder ``train.yaml`` (keys missing there take upstream's argparse defaults)."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read train.yaml ({exc})") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("encoder_conf"), dict):
            raise ValueError(f"{path}: not an audio-encoder train.yaml (no encoder_conf mapping)")
        try:
            return _config_from_yaml_dict(raw, llm_hidden)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def to_train_yaml(self, path: str | Path) -> None:
        """Write a train.yaml in upstream's layout that ``from_train_yaml`` and upstream both read."""
        fixed = (self.adapter_stride, self.adapter_hidden, self.ln_eps, self.adapter_ln_eps)
        if fixed != (2, 2 * self.d_model, 1e-5, 1e-3):
            raise ValueError("train.yaml cannot express adapter stride/hidden or LayerNorm eps other than upstream's")
        Path(path).write_text(yaml.safe_dump(_yaml_dict_from_config(self), sort_keys=False))


def _sub_freq(input_dim: int) -> int:
    """Frequency bins left after the two 3x3 stride-2 convolutions (19 for 80 mels)."""
    return ((input_dim - 1) // 2 - 1) // 2


# Upstream argparse defaults (whaleEncoder parses them before applying the YAML; dashes as in YAML).
_ENCODER_DEFAULTS: dict[str, Any] = {
    "encoder-layer-config": "tdnn-dtc",
    "encoder-input-dim": 256,
    "encoder-output-dim": 256,
    "subsampling-rate": 4,
    "subsampling-input-dim": 256,
    "subsampling-output-dim": 256,
    "subsampling-dropout-rate": 0.1,
    "transformer-input-dim": 256,
    "transformer-output-dim": 4,
    "transformer-attention-dim": 256,
    "transformer-attention-heads": 4,
    "transformer-linear-units": 1024,
    "transformer-num-blocks": 6,
    "transformer-dropout-rate": 0.1,
    "transformer-attention-dropout-rate": 0.0,
    "transformer-positional-dropout-rate": 0.1,
    "transformer-input-layer": "linear",
    "transformer-pos-enc-class": "abs-enc",
    "transformer-normalize-before": True,
    "transformer-concat-after": False,
    "transformer-positionwise-layer-type": "linear",
    "transformer-positionwise-conv-kernel_size": 1,
    "transformer-chunk_size": -1,
    "transformer-left_chunks": -1,
    "transformer-dynamic-chunks": True,
}
# Values this implementation supports (they are what VITA-1.5's printed module tree shows).
_REQUIRED = {
    "encoder-layer-config": "subsampling-transformer",
    "subsampling-rate": 4,
    "transformer-input-layer": "linear",
    "transformer-pos-enc-class": "rel-enc",
    "transformer-normalize-before": True,
    "transformer-concat-after": False,
    "transformer-positionwise-layer-type": "linear",
}
# audioEncoder constructor defaults upstream (a key missing from model_conf takes these) and the values needed.
_MODEL_DEFAULTS: dict[str, Any] = {
    "enc_out_dim": 512,
    "llm_embed_dim": 4096,
    "kernel_size": 3,
    "adpter_type": "cnn",
    "activation_func": "relu",
    "norm": "batch",
    "add_audio_bos_eos": False,
}
_MODEL_REQUIRED = {"adpter_type": "subsampling", "activation_func": "gelu", "norm": "layer", "add_audio_bos_eos": False}


def _encoder_args(encoder_conf: dict) -> dict[str, Any]:
    """Merge by argparse destination like upstream: defaults <- overview_conf <- para_conf[component], in order."""
    args = {_dest(k): v for k, v in _ENCODER_DEFAULTS.items()}

    def assign(conf: dict) -> None:
        for key, value in (conf or {}).items():
            if _dest(key) in args:
                args[_dest(key)] = value

    assign(encoder_conf.get("overview_conf"))
    for name in str(args["encoder_layer_config"]).split("-"):
        assign((encoder_conf.get("para_conf") or {}).get(name))
    return args


def _dest(key: str) -> str:
    """argparse destination of a YAML key ('transformer-chunk_size' -> 'transformer_chunk_size')."""
    return key.replace("-", "_")


def _config_from_yaml_dict(raw: dict, llm_hidden: int) -> WhaleConfig:
    args = _encoder_args(raw["encoder_conf"])
    for key, want in _REQUIRED.items():
        if args[_dest(key)] != want:
            raise ValueError(f"unsupported {key}={args[_dest(key)]!r} (this implementation needs {want!r})")
    d = int(args["transformer_attention_dim"])
    dim_keys = ("subsampling_output_dim", "transformer_input_dim", "transformer_output_dim", "encoder_output_dim")
    dims = [args[k] for k in dim_keys]
    if any(int(x) != d for x in dims):
        raise ValueError(f"subsampling/transformer/encoder dims {dims} must all equal attention dim {d}")
    input_dim = int(args["subsampling_input_dim"])
    if int(raw.get("input_dim", input_dim)) != input_dim or int(args["encoder_input_dim"]) != input_dim:
        raise ValueError(f"input_dim / encoder-input-dim / subsampling-input-dim disagree ({input_dim})")
    model = {**_MODEL_DEFAULTS, **(raw.get("model_conf") or {})}
    for key, want in _MODEL_REQUIRED.items():
        if model[key] != want:
            raise ValueError(f"unsupported model_conf.{key}={model[key]!r} (needs {want!r})")
    if int(model["enc_out_dim"]) != d:
        raise ValueError(f"model_conf.enc_out_dim {model['enc_out_dim']} != encoder dim {d}")
    if int(model["llm_embed_dim"]) != llm_hidden:
        raise ValueError(f"model_conf.llm_embed_dim {model['llm_embed_dim']} != llm_hidden {llm_hidden}")
    mode, chunk, left = _mask_mode(args)
    return WhaleConfig(
        llm_hidden=llm_hidden,
        d_model=d,
        heads=int(args["transformer_attention_heads"]),
        ffn=int(args["transformer_linear_units"]),
        blocks=int(args["transformer_num_blocks"]),
        input_dim=input_dim,
        mask_mode=mode,
        chunk_size=chunk,
        left_chunks=left,
        dither=_fbank_dither(raw.get("dataset_conf") or {}, input_dim),
        dropout=float(args["transformer_dropout_rate"]),
        adapter_kernel=int(model["kernel_size"]),
        adapter_hidden=2 * d,
    )


def _mask_mode(args: dict[str, Any]) -> tuple[str, int, int]:
    """Upstream: ``dynamic-chunks == True`` -> random chunks; else chunk_size > 0 -> static; else full."""
    chunk, left = int(args["transformer_chunk_size"]), int(args["transformer_left_chunks"])
    if chunk == 0:
        raise ValueError("transformer-chunk_size 0 is unusable (upstream divides by it)")
    if args["transformer_dynamic_chunks"] == True:  # noqa: E712 - upstream's exact test
        return "dynamic_chunk", chunk, left
    return ("static_chunk" if chunk > 0 else "full"), chunk, left


def _fbank_dither(dataset_conf: dict, input_dim: int) -> float:
    """fbank_conf.dither (0 when absent); the other fbank/resample values must match our fixed front end."""
    fb = dataset_conf.get("fbank_conf") or {}
    expect = {"num_mel_bins": input_dim, "frame_length": 25, "frame_shift": 10}
    for key, want in expect.items():
        if key in fb and fb[key] != want:
            raise ValueError(f"unsupported fbank_conf.{key}={fb[key]} (needs {want})")
    rate = (dataset_conf.get("resample_conf") or {}).get("resample_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise ValueError(f"unsupported resample_rate {rate} (needs {SAMPLE_RATE})")
    return float(fb.get("dither", 0.0))


def _yaml_dict_from_config(cfg: WhaleConfig) -> dict[str, Any]:
    d = cfg.d_model
    transformer = {
        "transformer-input-dim": d,
        "transformer-output-dim": d,
        "transformer-attention-dim": d,
        "transformer-attention-heads": cfg.heads,
        "transformer-linear-units": cfg.ffn,
        "transformer-num-blocks": cfg.blocks,
        "transformer-dropout-rate": cfg.dropout,
        "transformer-attention-dropout-rate": 0.0,
        "transformer-positional-dropout-rate": cfg.dropout,
        "transformer-input-layer": "linear",
        "transformer-pos-enc-class": "rel-enc",
        "transformer-normalize-before": True,
        "transformer-concat-after": False,
        "transformer-positionwise-layer-type": "linear",
        "transformer-chunk_size": cfg.chunk_size,
        "transformer-left_chunks": cfg.left_chunks,
        "transformer-dynamic-chunks": cfg.mask_mode == "dynamic_chunk",
    }
    return {
        "input_dim": cfg.input_dim,
        "is_json_cmvn": True,
        "encoder_conf": {
            "overview_conf": {
                "encoder-input-dim": cfg.input_dim,
                "encoder-output-dim": d,
                "encoder-layer-config": "subsampling-transformer",
            },
            "para_conf": {
                "subsampling": {
                    "subsampling-rate": cfg.subsampling,
                    "subsampling-input-dim": cfg.input_dim,
                    "subsampling-output-dim": d,
                    "subsampling-dropout-rate": cfg.dropout,
                },
                "transformer": transformer,
            },
        },
        # Only keys upstream's audioEncoder constructor accepts (llm_path is a required argument).
        "model_conf": {
            "llm_path": None,
            "freeze_llm": True,
            "enc_out_dim": d,
            "llm_embed_dim": cfg.llm_hidden,
            "kernel_size": cfg.adapter_kernel,
            "adpter_type": "subsampling",
            "activation_func": "gelu",
            "norm": "layer",
            "add_audio_bos_eos": False,
        },
        "dataset_conf": {
            "resample_conf": {"resample_rate": SAMPLE_RATE},
            "fbank_conf": {"num_mel_bins": cfg.input_dim, "frame_length": 25, "frame_shift": 10, "dither": cfg.dither},
        },
    }


# --------------------------------------------------------------------------- CMVN


def read_global_cmvn(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """JSON ``{mean_stat, var_stat, frame_num}`` -> float32 (mean, istd); variance floored at 1e-20."""
    path = Path(path)
    try:
        stats = json.loads(path.read_text())
        mean_stat = torch.tensor(stats["mean_stat"], dtype=torch.float64)
        var_stat = torch.tensor(stats["var_stat"], dtype=torch.float64)
        frames = float(stats["frame_num"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a global_cmvn JSON file ({exc})") from exc
    if mean_stat.shape != var_stat.shape or mean_stat.ndim != 1 or frames <= 0:
        raise ValueError(f"{path}: mean_stat/var_stat must be equal-length lists and frame_num > 0")
    mean = mean_stat / frames
    var = (var_stat / frames - mean * mean).clamp(min=1e-20)
    return mean.float(), var.rsqrt().float()


def write_global_cmvn(path: str | Path, mean_stat: Any, var_stat: Any, frame_num: float) -> None:
    """Write accumulated sums (sum x, sum x^2, frame count) in the layout ``read_global_cmvn`` reads."""
    as_list = lambda v: [float(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]  # noqa: E731
    stats = {"mean_stat": as_list(mean_stat), "var_stat": as_list(var_stat), "frame_num": float(frame_num)}
    Path(path).write_text(json.dumps(stats))


# --------------------------------------------------------------------------- masks


def pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, 1, T) True on valid frames. Compared in ``lengths``' dtype, so fp16 lengths keep upstream's rounding."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1)


def chunk_mask(size: int, chunk: int, left_chunks: int, device: torch.device | None = None) -> torch.Tensor:
    """(size, size): row i sees columns [max((i//c - L)*c, 0), min((i//c + 1)*c, size)); L < 0 -> from 0."""
    i = torch.arange(size, device=device)[:, None]
    j = torch.arange(size, device=device)[None, :]
    block = torch.div(i, chunk, rounding_mode="floor")
    start = torch.zeros_like(block) if left_chunks < 0 else ((block - left_chunks) * chunk).clamp(min=0)
    end = ((block + 1) * chunk).clamp(max=size)
    return (j >= start) & (j < end)


def attention_mask(
    valid: torch.Tensor, mode: str, chunk_size: int, left_chunks: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Self-attention mask for (B, 1, T) ``valid``: (B, 1, T) for full, (B, T, T) for chunk modes.

    ``dynamic_chunk`` follows WeNet's add_optional_chunk_mask with random chunk and left-chunk draws
    (one draw per call, as upstream does even at inference). Where upstream's draws would crash
    (T = 2: empty randint range) or are trivial (T <= 1) full attention is used.
    """
    size = valid.size(-1)
    if mode == "full":
        return valid
    if mode == "static_chunk":
        return valid & chunk_mask(size, chunk_size, left_chunks, valid.device)[None]
    if mode != "dynamic_chunk":
        raise ValueError(f"unknown mask mode {mode!r}")
    chunk, left = _dynamic_chunk(size, generator)
    return valid & chunk_mask(size, chunk, left, valid.device)[None]


def _dynamic_chunk(size: int, generator: torch.Generator | None) -> tuple[int, int]:
    if size <= 2:
        return max(size, 1), -1
    draw = int(torch.randint(1, size, (1,), generator=generator))
    if draw > size // 2:
        return size, -1
    chunk = draw % 25 + 1
    return chunk, int(torch.randint(0, (size - 1) // chunk, (1,), generator=generator))


# --------------------------------------------------------------------------- encoder modules


class GlobalCMVN(nn.Module):
    """(x - mean) * istd with persistent buffers (the checkpoint's bf16-rounded copies are the reference)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("istd", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.istd


class Conv2dSubsampling4(nn.Module):
    """Two 3x3 stride-2 convs (1/4 frame rate), channel-major flatten (index c*F' + f), Linear."""

    def __init__(self, input_dim: int, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, d_model, 3, 2), nn.ReLU(), nn.Conv2d(d_model, d_model, 3, 2), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(d_model * _sub_freq(input_dim), d_model))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = self.out(x.transpose(1, 2).reshape(b, t, c * f))
        return x, mask[:, :, 2::2][:, :, 2::2]


class Subsampling(nn.Module):
    """Holder that gives the checkpoint's ``enc.0.core.*`` names."""

    def __init__(self, cfg: WhaleConfig) -> None:
        super().__init__()
        self.core = Conv2dSubsampling4(cfg.input_dim, cfg.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.core(x, mask)


@lru_cache(maxsize=8)
def _sinusoid_table(d_model: int, device: str) -> torch.Tensor:
    """(5000, d) fp32 table: pe[p, 2k] = sin(p*w_k), pe[p, 2k+1] = cos(p*w_k). Not a buffer upstream."""
    position = torch.arange(MAX_POSITIONS, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / d_model))
    table = torch.zeros(MAX_POSITIONS, d_model, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


_FUSED_ATTENTION = contextvars.ContextVar("whale_fused_attention", default=False)


@contextmanager
def fused_attention() -> Iterator[None]:
    """Within it, `RelPositionAttention` runs as one SDPA call (the fast engine's captured graphs);
    outside it, as upstream writes it (the reference engine)."""
    token = _FUSED_ATTENTION.set(True)
    try:
        yield
    finally:
        _FUSED_ATTENTION.reset(token)


class RelPositionAttention(nn.Module):
    """Transformer-XL scores without rel_shift: the positional term depends on the absolute key index."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads, self.d_k = heads, d_model // heads
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1, self.heads, self.d_k)  # (B, T, H, d_k)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        q = self._split(self.linear_q(x))
        k = self._split(self.linear_k(x)).transpose(1, 2)
        v = self._split(self.linear_v(x)).transpose(1, 2)
        p = self._split(self.linear_pos(pos_emb.to(x.dtype))).transpose(1, 2)  # (1, H, T, d_k)
        if _FUSED_ATTENTION.get():
            out = self._fused(q, k, v, p, mask)
        else:
            content = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
            position = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))
            scores = (content + position) / math.sqrt(self.d_k)  # (B, H, T, T)
            blocked = ~mask.unsqueeze(1)  # (B, 1, 1|T, T)
            attn = torch.softmax(scores.masked_fill(blocked, FP16_MIN), dim=-1).masked_fill(blocked, 0.0)
            out = torch.matmul(attn, v)
        return self.linear_out(out.transpose(1, 2).reshape(x.size(0), -1, self.heads * self.d_k))

    def _fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """The same scores as one SDPA call: (q+u)k^T + (q+v)p^T = [q+u, q+v] [k, p]^T over doubled head
        dims, never materialising the (B, H, T, T) scores in the model dtype (the eager path makes
        six passes over them). A query that sees no key gives 0, as the eager path's masked_fill does."""
        query = torch.cat([q + self.pos_bias_u, q + self.pos_bias_v], dim=-1).transpose(1, 2)
        key = torch.cat([k, p.expand(k.size(0), -1, -1, -1)], dim=-1)
        visible = mask.unsqueeze(1)  # (B, 1, 1|T, T)
        seen = visible.any(-1, keepdim=True)
        out = F.scaled_dot_product_attention(query, key, v, attn_mask=visible | ~seen, scale=1 / math.sqrt(self.d_k))
        return out * seen


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, ffn)
        self.w_2 = nn.Linear(ffn, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(torch.relu(self.w_1(x))))


class EncoderBlock(nn.Module):
    """Pre-LN block: x += Attn(LN1 x); x += FFN(LN2 x)."""

    def __init__(self, cfg: WhaleConfig) -> None:
        super().__init__()
        self.self_attn = RelPositionAttention(cfg.d_model, cfg.heads)
        self.feed_forward = FeedForward(cfg.d_model, cfg.ffn, cfg.dropout)
        self.norm1 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.norm2 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.norm1(x), mask, pos_emb))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class Transformer(nn.Module):
    """``enc.1``: Linear-LN-Dropout-ReLU embed, x*sqrt(d) + sinusoid pos_emb, N blocks, after_norm."""

    def __init__(self, cfg: WhaleConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d, eps=cfg.ln_eps), nn.Dropout(cfg.dropout), nn.ReLU())
        self.pos_dropout = nn.Dropout(cfg.dropout)
        self.encoders = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.blocks))
        self.after_norm = nn.LayerNorm(d, eps=cfg.ln_eps)

    def forward(self, x: torch.Tensor, valid: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mask = attention_mask(valid, self.cfg.mask_mode, self.cfg.chunk_size, self.cfg.left_chunks, generator)
        x = self.embed(x) * math.sqrt(self.cfg.d_model)
        pos_emb = _sinusoid_table(self.cfg.d_model, str(x.device))[None, : x.size(1)]
        x, pos_emb = self.pos_dropout(x), self.pos_dropout(pos_emb)
        for block in self.encoders:
            x = block(x, mask, pos_emb)
        return self.after_norm(x)


class WhaleEncoder(nn.Module):
    """``encoder``: GlobalCMVN -> Conv2dSubsampling4 -> relative-position Transformer."""

    def __init__(self, cfg: WhaleConfig) -> None:
        super().__init__()
        self.global_cmvn = GlobalCMVN(cfg.input_dim)
        self.enc = nn.ModuleList([Subsampling(cfg), Transformer(cfg)])

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D), (B,) -> (B, T', d_model), valid mask (B, 1, T')."""
        valid = pad_mask(lengths, features.size(1))
        x, valid = self.enc[0](self.global_cmvn(features), valid)
        return self.enc[1](x, valid, generator), valid


class CNNSubsampling(nn.Module):
    """``adpter``: zero padded frames, right-pad k-1, Conv1d stride 2, LayerNorm(eps 1e-3), GELU, Linear."""

    def __init__(self, cfg: WhaleConfig) -> None:
        super().__init__()
        self.kernel, self.stride = cfg.adapter_kernel, cfg.adapter_stride
        self.conv1d2 = nn.Conv1d(cfg.d_model, cfg.adapter_hidden, cfg.adapter_kernel, cfg.adapter_stride)
        self.bn2 = nn.LayerNorm(cfg.adapter_hidden, eps=cfg.adapter_ln_eps)
        self.project = nn.Linear(cfg.adapter_hidden, cfg.llm_hidden)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.transpose(1, 2).masked_fill(~valid, 0.0)  # (B, C, T')
        x = self.conv1d2(F.pad(x, (0, self.kernel - 1)))
        x = F.gelu(self.bn2(x.transpose(1, 2)))
        return self.project(x), valid[:, :, 0 :: self.stride]


class AudioEncoder(nn.Module):
    """``model.audio_encoder``: fbank (B, T, 80) + lengths -> LLM embeddings (B, T_llm, llm_hidden) + lengths."""

    def __init__(self, cfg: WhaleConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = WhaleEncoder(cfg)
        self.adpter = CNNSubsampling(cfg)

    def set_global_cmvn(self, mean: torch.Tensor, istd: torch.Tensor) -> None:
        """Fill the CMVN buffers (e.g. from ``read_global_cmvn``) in their current dtype and device."""
        self.encoder.global_cmvn.mean.copy_(mean)
        self.encoder.global_cmvn.istd.copy_(istd)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings and per-row valid token counts; rows past their count are padding.

        ``lengths`` are compared in their own dtype (upstream passes fp16 lengths, which can drop
        the last frame(s) beyond 2048 frames); pass integer lengths for exact masks.
        """
        if features.dim() != 3 or features.size(-1) != self.cfg.input_dim:
            raise ValueError(f"features must be (B, T, {self.cfg.input_dim}), got {tuple(features.shape)}")
        if encoder_length(features.size(1)) > MAX_POSITIONS:
            raise AudioError(
                f"audio too long for the Whale encoder: {features.size(1)} fbank frames > {MAX_FBANK_FRAMES} "
                f"(max {MAX_AUDIO_SECONDS:.2f} s; its position table has {MAX_POSITIONS} rows)"
            )
        features = features.to(self.adpter.project.weight.dtype)
        hidden, valid = self.encoder(features, lengths, generator)
        embeds, valid = self.adpter(hidden, valid)
        return embeds, valid.squeeze(1).sum(-1)


def split_audio(embeds: torch.Tensor, counts: torch.Tensor | None, lengths: torch.Tensor) -> list[torch.Tensor]:
    """Each row's valid embeddings from `AudioEncoder` outputs. Integer frame counts on the host give
    the token counts (`llm_length`, equal to the encoder's) without waiting for the GPU to finish."""
    if lengths.device.type == "cpu" and not lengths.is_floating_point():
        n = [llm_length(int(t)) for t in lengths.tolist()]
    else:
        n = [int(c) for c in counts.tolist()]
    return [embeds[i, :k] for i, k in enumerate(n)]
