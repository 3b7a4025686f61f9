"""Loading and exporting the VITA model for training: what every objective shares.

Kept apart from the objectives so that `ctc.py`, `tts_losses.py` and `objectives.py` all
import it without importing each other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vita15.checkpoint import (
    _write_configs,
    _write_shards,
    build_random,
    load_vita,
    write_tokenizer,
)
from vita15.configuration_vita import (
    VitaModelConfig,
    load_config,
    tiny_config,
    vita15_config,
)
from vita15.modeling_vita import VITAQwen2ForCausalLM

MODEL_SIZES = {"tiny": tiny_config, "full": vita15_config}


def load_model(model_cfg: dict[str, Any], init: Path | None) -> tuple[VITAQwen2ForCausalLM, Any, VitaModelConfig]:
    """The previous phase's export, or seeded random weights (`model: {size, seed}`) in fp32."""
    if init is not None:
        model, tokenizer = load_vita(init, "cpu", torch.float32)
        return model, tokenizer, load_config(init)
    size = model_cfg.get("size", "tiny")
    if size not in MODEL_SIZES:
        raise ValueError(f"model.size must be one of {sorted(MODEL_SIZES)}, got {size!r}")
    cfg = MODEL_SIZES[size]()
    model = build_random(cfg, "cpu", torch.float32, int(model_cfg.get("seed", 0)))
    return model, None, cfg


def export_vita(state: dict[str, torch.Tensor], cfg: VitaModelConfig, out_dir: Path,
                dtype: torch.dtype, max_shard_bytes: int) -> Path:
    """Official layout (config, tokenizer, audio-encoder folder, sharded safetensors + index).

    `vita15.checkpoint` has no "save this model" function; this reuses its writer helpers.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("model*.safetensors*"):
        stale.unlink()
    cfg.llm.dtype = {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32")
    _write_configs(out_dir, cfg)
    write_tokenizer(out_dir)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype) for k, v in state.items()}
    _write_shards(out_dir, state, max_shard_bytes)
    return out_dir


def default_tokenizer_dir() -> Path:
    """Tokenizer files for a random-init model: written once by the checkpoint writer's helper."""
    target = Path.home() / ".cache" / "vita-train" / "tokenizer"
    if not (target / "tokenizer.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        write_tokenizer(target)
    return target
