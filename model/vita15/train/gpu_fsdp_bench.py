"""Throughput and memory of stage 2.2 under FSDP2: a few optimizer steps on random weights.

    torchrun --nproc-per-node 2 -m vita15.train.gpu_fsdp_bench --size full --out bench.json   (2 GPUs)
    torchrun --nproc-per-node 2 -m vita15.train.gpu_fsdp_bench --size tiny --out bench.json   (CPU, gloo)

The model is built on the meta device, sharded, then materialised shard by shard on each device
and filled with seeded random weights, so the full 8.3 B-parameter model never exists on one
device. Each micro-batch mimics a stage-2.2 sample: one image tile, one audio clip and text,
the answer tokens learned. Same module, sharding, optimizer and precision as `vita-train`.
Reports tokens/s (spliced tokens, all ranks), seconds/step and peak memory per rank as JSON.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch
import torch.distributed as dist

from vita15.checkpoint import init_random_weights_
from vita15.configuration_vita import VitaModelConfig
from vita15.conversation import AUDIO_TOKEN_INDEX, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from vita15.modeling_vita import build_model

from .data import Batch
from .engine import DistContext, TrainConfig, init_distributed, shard
from .model_io import MODEL_SIZES
from .objectives import VitaLM
from .stages import apply_trainable, param_groups, phases

AUDIO_FRAMES = 1000  # 10 s of fbank frames → 125 LLM tokens


def build_sharded(cfg: VitaModelConfig, train: TrainConfig, ctx: DistContext, seed: int) -> VitaLM:
    """Meta-device build → stage-2.2 trainable set → FSDP2 → per-rank materialisation + random init."""
    with torch.device("meta"):
        vita = build_model(cfg)
    apply_trainable(vita, phases("2.2")[0].trainable)
    module = VitaLM(vita, dummy_media=True)
    if train.grad_checkpointing:
        module.enable_grad_checkpointing()
    if ctx.world > 1:
        module = shard(module, train, ctx)
    module.to_empty(device=ctx.device)
    _reset_rotary(module, ctx.device)
    with torch.no_grad():
        init_random_weights_(module, seed)
    return module


def _reset_rotary(module: torch.nn.Module, device: torch.device) -> None:
    """RoPE frequencies are non-persistent buffers: `to_empty` leaves them uninitialised."""
    for sub in module.modules():
        if hasattr(sub, "inv_freq") and hasattr(sub, "config"):
            fresh = type(sub)(sub.config)
            sub.inv_freq = fresh.inv_freq.to(device)
            sub.original_inv_freq = fresh.original_inv_freq.to(device)


def synthetic_batch(batch_size: int, text_tokens: int, answer_tokens: int, image_size: int,
                    vocab: int, generator: torch.Generator) -> Batch:
    """Rows of [image placeholder, text, audio placeholder, answer]; answers are learned."""
    ids = torch.randint(0, vocab, (batch_size, text_tokens + answer_tokens + 2), generator=generator)
    ids[:, 0] = IMAGE_TOKEN_INDEX
    ids[:, text_tokens + 1] = AUDIO_TOKEN_INDEX
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, -answer_tokens:] = ids[:, -answer_tokens:]
    pixels = torch.randn(batch_size, 3, image_size, image_size, generator=generator)
    audio = torch.randn(batch_size, AUDIO_FRAMES, 80, generator=generator)
    return Batch([f"bench{i}" for i in range(batch_size)], ids, torch.ones_like(ids), labels, pixels, audio,
                 torch.full((batch_size,), AUDIO_FRAMES))


def _peak_memory_gb(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"allocated_gb": torch.cuda.max_memory_allocated(device) / 1e9,
                "reserved_gb": torch.cuda.max_memory_reserved(device) / 1e9}
    return {"host_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def run(args: argparse.Namespace) -> dict:
    ctx = init_distributed()
    cfg = MODEL_SIZES[args.size]()
    train = TrainConfig(lr=2e-5, batch_size=args.batch_size, grad_accum=1, precision=args.precision,
                        grad_checkpointing=not args.no_grad_checkpointing)
    torch.manual_seed(args.seed)
    module = build_sharded(cfg, train, ctx, args.seed)
    module.train()
    optimizer = torch.optim.AdamW(param_groups(module, train.lr, 0.0), lr=train.lr)
    generator = torch.Generator().manual_seed(args.seed + ctx.rank)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if ctx.world == 1 and ctx.device.type == "cuda" else None
    times, tokens, losses = [], [], []
    for step in range(args.warmup + args.steps):
        batch = synthetic_batch(args.batch_size, args.text_tokens, args.answer_tokens,
                                cfg.vision.image_size, cfg.llm.vocab_size, generator)
        batch = Batch(**{k: v.to(ctx.device) if isinstance(v, torch.Tensor) else v for k, v in vars(batch).items()})
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast if autocast is not None else torch.enable_grad():
            loss, n_tokens = module(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.requires_grad], train.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
            tokens.append(int(n_tokens))
            losses.append(float(loss.detach()))
    memory = _peak_memory_gb(ctx.device)
    per_rank = [None] * ctx.world
    if ctx.world > 1:
        dist.all_gather_object(per_rank, memory)
    else:
        per_rank = [memory]
    step_s = sum(times) / len(times)
    result = {
        "size": args.size, "world_size": ctx.world, "device": torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else "cpu",
        "precision": args.precision if ctx.device.type == "cuda" else "fp32", "fsdp": ctx.world > 1,
        "grad_checkpointing": train.grad_checkpointing, "batch_size_per_rank": args.batch_size,
        "spliced_tokens_per_rank_step": sum(tokens) / len(tokens), "steps_timed": len(times),
        "seconds_per_step": step_s, "tokens_per_s": sum(tokens) * ctx.world / sum(times),
        "losses": losses, "peak_memory_per_rank": per_rank,
        "params_total": sum(p.numel() for p in module.parameters()),
        "params_trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "torch": torch.__version__,
    }
    if ctx.main:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    if ctx.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(MODEL_SIZES), default="full")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=2, help="samples per rank per step")
    parser.add_argument("--text-tokens", type=int, default=1536)
    parser.add_argument("--answer-tokens", type=int, default=128)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--no-grad-checkpointing", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="gpu_fsdp_bench.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
