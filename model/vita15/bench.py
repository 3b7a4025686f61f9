"""Speed / memory benchmark of VITA-1.5 with seeded random weights (no checkpoint needed).

    python -m vita15.bench --size full --device cuda --dtype bf16 --out bench.json

Scenarios: an image question with 13 tiles (12 + thumbnail), a 30 s spoken question and a 16-frame
video question. For each: prefill time (media encoding + splicing + prefill forward), mean time per
decoded token (greedy, KV cache, fixed token count) and peak memory.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from torch.nn.attention import sdpa_kernel
from transformers import DynamicCache

from .checkpoint import build_random, resolve_dtype, write_tokenizer
from .configuration_vita import tiny_config, vita15_config
from .conversation import load_tokenizer
from .inference import DECODE_BACKENDS, VitaInference


def scenarios(seed: int = 0) -> dict[str, SimpleNamespace]:
    """Synthetic requests of the three benchmark shapes."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (1344, 1792, 3), dtype=np.uint8))  # 4:3 → 4×3 grid
    frame = Image.fromarray(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8))
    speech = (0.1 * rng.standard_normal(30 * 16000)).astype(np.float32)
    base = dict(images=[], frames=[], audio=None, max_tiles=12)
    return {
        "image_13_tiles": SimpleNamespace(uid="image", text="Describe this image in detail.", modality="image",
                                          **{**base, "images": [image]}),
        "audio_30s": SimpleNamespace(uid="audio", text="", modality="lang", **{**base, "audio": speech}),
        "video_16_frames": SimpleNamespace(uid="video", text="What happens in this video?", modality="video",
                                           **{**base, "frames": [frame] * 16}),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)


@torch.no_grad()
@sdpa_kernel(DECODE_BACKENDS)
def run_scenario(engine: VitaInference, request: SimpleNamespace, decode_tokens: int) -> dict:
    model, device = engine.model, engine.model.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    embeds, _ = engine.embed_requests([request])
    cache = DynamicCache(config=model.config)
    hidden = model.model(inputs_embeds=embeds[0][None], past_key_values=cache, use_cache=True).last_hidden_state
    token = model.lm_head(hidden[:, -1]).argmax(-1, keepdim=True)
    _sync(device)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(decode_tokens):
        hidden = model.model(input_ids=token, past_key_values=cache, use_cache=True).last_hidden_state
        token = model.lm_head(hidden[:, -1]).argmax(-1, keepdim=True)
    _sync(device)
    decode = time.perf_counter() - start
    return {
        "n_prompt_tokens": len(embeds[0]),
        "prefill_s": prefill,
        "decode_tokens": decode_tokens,
        "decode_s_per_token": decode / max(decode_tokens, 1),
        "peak_memory_bytes": _peak_bytes(device),
    }


def bench(size: str, device: str, dtype: str, decode_tokens: int = 32, seed: int = 0, warmup: bool = True) -> dict:
    cfg = vita15_config() if size == "full" else tiny_config()
    model = build_random(cfg, device, resolve_dtype(dtype), seed)
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp))
        tokenizer = load_tokenizer(tmp)
    engine = VitaInference(model, tokenizer)
    if warmup:  # first calls pay for kernel selection and allocator growth
        run_scenario(engine, scenarios(seed)["image_13_tiles"], 1)
    results = {name: run_scenario(engine, req, decode_tokens) for name, req in scenarios(seed).items()}
    dev = torch.device(device)
    return {
        "size": size,
        "device": device,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "dtype": dtype,
        "torch": torch.__version__,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "scenarios": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vita15.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="bf16")
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    report = bench(args.size, args.device, args.dtype, args.decode_tokens, args.seed, warmup=not args.no_warmup)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["scenarios"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
