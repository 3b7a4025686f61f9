"""GPU evidence for three fast-engine parts, each beside the path it replaces, on a full-size VITA-1.5
of seeded random weights (bf16). Run by scripts/gpu_bench.sh; writes OUT/gpu_checks.json.

1. uint8 tiles normalised on the GPU equal the CPU float path bit for bit.
2. Whale encoder from CUDA graphs with fused attention vs eager upstream code: the embeddings' relative
   difference, and the time per batch of 16 clips (host launch time included).
3. Packed prefill over the slot cache: fused layers (`vita15.prefill_step`) vs transformers' Qwen2
   layers, the engine's attention (flash varlen; cuDNN for sequences of `LONG_TOKENS` or more) vs
   flash alone (`long_tokens = None`) vs one SDPA call per sequence (`SlotCache.flash = False`), on
   one 1,700-position sequence (an MME image prefix), 96 sequences of 90 after a 105-position past
   (LibriSpeech clips after the system prompt) and 2 of 6,140 after 60 (Video-MME frame blocks).
4. A decode step of 256 slots over 600 keys: flash varlen in place vs SDPA under an additive mask.
5. The ViT on 64 tiles with the engine's attention backends (cuDNN first) vs flash attention.

Usage: python scripts/gpu_checks.py OUT [CHECK ...]   (default: all of pixels whale prefill decode vit)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from vita15.audio_whale import split_audio
from vita15.checkpoint import build_random
from vita15.configuration_vita import vita15_config
from vita15.decode_step import DecodeStep
from vita15.engine import VIT_BACKENDS
from vita15.image_processing import normalize_pixels
from vita15.kv_slots import SLOT_ATTENTION, SlotCache
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


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))


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
        diff = max(relative(b, a) for a, b in zip(eager(), graph()) if len(a))
        eager_ms, graph_ms = timed_ms(eager), timed_ms(graph)
        out[f"16x{frames}"] = {"relative_diff": round(diff, 5), "eager_ms": round(eager_ms, 2),
                               "graph_ms": round(graph_ms, 2), "speedup": round(eager_ms / graph_ms, 2)}
    out["graph_failures"] = graphs.failures
    return out


def check_prefill(model, device: torch.device) -> dict:
    DecodeStep(model).prepare()  # the fused projections both paths use
    model.set_attn_implementation(SLOT_ATTENTION)
    cfg, dtype = model.config, model.model.embed_tokens.weight.dtype
    step, out = PrefillStep(model), {}
    gen = torch.Generator(device=device).manual_seed(2)
    for name, rows, width, past in (("1x1700", 1, 1700, 0), ("96x90_after_105", 96, 90, 105),
                                    ("2x6140_after_60", 2, 6140, 60)):
        x = torch.randn(1, rows * width, cfg.hidden_size, device=device, dtype=dtype, generator=gen)
        capacity = -(-(past + width) // 256) * 256
        cache = SlotCache(cfg, rows, capacity, device, dtype)
        plan = cache.pack(list(range(rows)), [past] * rows, [width] * rows)
        fused = lambda: step(x, plan.positions, cache)  # noqa: E731
        plain = lambda: model.model(  # noqa: E731
            inputs_embeds=x, position_ids=plan.positions, attention_mask=torch.ones(1, 1, 1, 1, dtype=torch.bool,
            device=device), past_key_values=cache, use_cache=True, slot_cache=cache).last_hidden_state
        with torch.no_grad():
            a, b = fused(), plain()
            fused_ms, plain_ms = timed_ms(fused, 5), timed_ms(plain, 5)
            entry = {"long_sequences_by_cudnn": plan.n_flash < rows}
            if plan.n_flash < rows:  # the same forward with every sequence on flash varlen
                cache.long_tokens = None
                flash_only = fused()
                flash_ms = timed_ms(fused, 5)
                entry.update({"flash_only_ms": round(flash_ms, 2), "cudnn_speedup": round(flash_ms / fused_ms, 3),
                              "cudnn_vs_flash_relative_diff": round(relative(a, flash_only), 5)})
            cache.flash = False
            c = fused()
            sdpa_ms = timed_ms(fused, 3)
        flop = 2 * 7.07e9 * rows * width
        entry.update({"fused_vs_transformers_relative_diff": round(relative(a, b), 5), "fused_ms": round(fused_ms, 2),
                      "transformers_ms": round(plain_ms, 2), "speedup": round(plain_ms / fused_ms, 3),
                      "fused_tflops": round(flop / fused_ms / 1e9, 1),
                      "fast_vs_sdpa_per_sequence_relative_diff": round(relative(a, c), 5),
                      "sdpa_per_sequence_ms": round(sdpa_ms, 2), "fast_attention_speedup": round(sdpa_ms / fused_ms, 3)})
        out[name] = entry
    return out


def check_decode(model, device: torch.device) -> dict:
    cfg, dtype = model.config, model.model.embed_tokens.weight.dtype
    step, batch, keys = DecodeStep(model), 256, 600
    step.prepare()
    cache = SlotCache(cfg, batch, 1024, device, dtype)
    gen = torch.Generator(device=device).manual_seed(4)
    for layer in cache.layers:
        layer.k_store.normal_(generator=gen)
        layer.v_store.normal_(generator=gen)
    ids = torch.randint(0, 1000, (batch,), device=device, generator=gen)
    pos = torch.randint(keys // 2, keys, (batch,), device=device, generator=gen)
    rows = torch.arange(batch, device=device)[:, None]
    run = lambda: step(ids, pos, cache, rows, keys)  # noqa: E731
    with torch.no_grad():
        flash = run()
        flash_ms = timed_ms(run)
        cache.flash = False
        masked = run()
        masked_ms = timed_ms(run)
    return {"batch": batch, "keys": keys, "flash_ms": round(flash_ms, 2), "masked_sdpa_ms": round(masked_ms, 2),
            "speedup": round(masked_ms / flash_ms, 3), "relative_diff": round(relative(flash, masked), 5)}


def check_vit(model, device: torch.device) -> dict:
    tiles = torch.randint(0, 256, (64, 3, 448, 448), dtype=torch.uint8, device=device,
                          generator=torch.Generator(device=device).manual_seed(5))

    def encode(backends):
        with sdpa_kernel(backends, set_priority=True):
            return model.encode_images(tiles)

    flash_backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with torch.no_grad():
        fast, flash = encode(VIT_BACKENDS), encode(flash_backends)
        fast_ms, flash_ms = timed_ms(lambda: encode(VIT_BACKENDS), 5), timed_ms(lambda: encode(flash_backends), 5)
    return {"tiles": 64, "engine_backends_ms": round(fast_ms, 2), "flash_ms": round(flash_ms, 2),
            "speedup": round(flash_ms / fast_ms, 3), "relative_diff": round(relative(fast, flash), 5)}


CHECKS = {"pixels": lambda model, device: check_pixels(device), "whale": check_whale, "prefill": check_prefill,
          "decode": check_decode, "vit": check_vit}


def main(out_dir: str, names: list[str]) -> None:
    device = torch.device("cuda")
    model = build_random(vita15_config(), "cuda", torch.bfloat16, 0).eval()
    with torch.no_grad():
        result = {name: CHECKS[name](model, device) for name in names or CHECKS}
    result["gpu"] = torch.cuda.get_device_name()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "gpu_checks.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu_out", sys.argv[2:])
