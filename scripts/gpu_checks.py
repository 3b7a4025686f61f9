"""GPU evidence for three fast-engine parts, each beside the path it replaces, on a full-size VITA-1.5
of seeded random weights (bf16). Run by scripts/gpu_bench.sh; writes OUT/gpu_checks.json.

1. uint8 tiles normalised on the GPU equal the CPU float path bit for bit.
2. Whale encoder from CUDA graphs vs eager: the same embeddings, and the time per batch of 16 clips
   (host launch time included: that is what the graphs remove).
3. Fused prefill (`vita15.prefill_step`) vs transformers' Qwen2 layers over the same slot cache:
   one 1,700-position row (flash, an MME image prefix) and 16 masked rows of 200 (ASR clips).

Usage: python scripts/gpu_checks.py OUT
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from vita15.audio_whale import split_audio
from vita15.checkpoint import build_random
from vita15.configuration_vita import vita15_config
from vita15.decode_step import DecodeStep
from vita15.image_processing import normalize_pixels
from vita15.kv_slots import SLOT_ATTENTION, SlotCache, SlotPlan
from vita15.prefill_step import PrefillStep
from vita15.whale_graphs import WhaleGraphs


def timed_ms(fn, n: int = 10) -> float:
    """Wall time per call with the GPU drained before and after (host launch cost included)."""
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1000


def check_pixels(device: torch.device) -> dict:
    pixels = torch.randint(0, 256, (16, 3, 448, 448), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return {"bitwise_equal": bool(torch.equal(normalize_pixels(pixels.to(device)).cpu(), normalize_pixels(pixels)))}


def check_whale(model, device: torch.device) -> dict:
    encoder = model.model.audio_encoder
    graphs = WhaleGraphs(encoder, device, model.model.embed_tokens.weight.dtype)
    out = {}
    gen = torch.Generator().manual_seed(1)
    for frames in (768, 2048):
        features = torch.randn(16, frames, 80, generator=gen).pin_memory()
        lengths = torch.randint(frames // 2, frames + 1, (16,), generator=gen)
        lengths[-2:] = 0  # padding rows, as the engine sends them
        eager = lambda: model.encode_audio(features.to(device, non_blocking=True), lengths)  # noqa: E731
        graph = lambda: split_audio(graphs(features, lengths), None, lengths)  # noqa: E731
        diff = max(float((a.float() - b.float()).abs().max()) if len(a) else 0.0 for a, b in zip(eager(), graph()))
        eager_ms, graph_ms = timed_ms(eager), timed_ms(graph)
        out[f"16x{frames}"] = {"max_abs_diff": diff, "eager_ms": round(eager_ms, 2), "graph_ms": round(graph_ms, 2),
                               "speedup": round(eager_ms / graph_ms, 2)}
    out["graph_failures"] = graphs.failures
    return out


def check_prefill(model, device: torch.device) -> dict:
    DecodeStep(model).prepare()  # the fused projections both paths use
    model.set_attn_implementation(SLOT_ATTENTION)
    cfg, dtype = model.config, model.model.embed_tokens.weight.dtype
    step, out = PrefillStep(model), {}
    gen = torch.Generator(device=device).manual_seed(2)
    for name, rows, width, flash in (("1x1700_flash", 1, 1700, True), ("16x200_masked", 16, 200, False)):
        x = torch.randn(rows, width, cfg.hidden_size, device=device, dtype=dtype, generator=gen)
        past = 30  # a round root (system prompt) already in the slots
        pos = past + torch.arange(width, device=device)[None].repeat(rows, 1)
        key_len = past + width
        cache = SlotCache(cfg, rows, key_len, device, dtype)
        slots = torch.arange(rows, device=device)
        cache.plan = SlotPlan(write_rows=slots[:, None], write_pos=pos, key_len=key_len, read_rows=slots)
        mask = None if flash else (torch.arange(key_len, device=device)[None, None, :] <= pos[:, :, None])[:, None]
        fused = lambda: step(x, pos, cache, mask, lower_right_causal=flash)  # noqa: E731
        plain = lambda: model.model(  # noqa: E731
            inputs_embeds=x, position_ids=pos, attention_mask=torch.ones(1, 1, 1, 1, dtype=torch.bool, device=device)
            if flash else mask, past_key_values=cache, use_cache=True, lower_right_causal=flash).last_hidden_state
        with torch.no_grad():
            a, b = fused().float(), plain().float()
            fused_ms, plain_ms = timed_ms(fused, 5), timed_ms(plain, 5)
        flop = 2 * 7.07e9 * rows * width
        out[name] = {"relative_diff": float((a - b).norm() / b.norm()), "fused_ms": round(fused_ms, 2),
                     "transformers_ms": round(plain_ms, 2), "speedup": round(plain_ms / fused_ms, 3),
                     "fused_tflops": round(flop / fused_ms / 1e9, 1)}
    return out


def main(out_dir: str) -> None:
    device = torch.device("cuda")
    model = build_random(vita15_config(), "cuda", torch.bfloat16, 0).eval()
    with torch.no_grad():
        result = {"pixels": check_pixels(device), "whale": check_whale(model, device),
                  "prefill": check_prefill(model, device), "gpu": torch.cuda.get_device_name()}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "gpu_checks.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu_out")
