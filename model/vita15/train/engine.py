"""The training loop shared by every phase: torchrun + FSDP2, AdamW, cosine schedule, resume, logs.

- Distributed: launched by `torchrun` (env `WORLD_SIZE` > 1) → process group (NCCL on GPU, gloo on
  CPU) and FSDP2 `fully_shard` on the objective's units, bf16 mixed precision on GPU.
  A single process trains the plain module (bf16 autocast on GPU).
- Data order is a function of (seed, epoch) only, so the data position is one integer
  (micro-batches consumed); a checkpoint stores it with model/optimizer (DCP, sharded), scheduler and
  every rank's RNG state, and a restart in the same output folder continues from the latest one.
  A resume runs no code from the checkpoint folder (`resume_state`: JSON + safetensors trainer
  state, DCP metadata through an allowlist unpickler), and a trainable parameter that had no
  gradient yet when the checkpoint was taken resumes, as it would have gone on, without optimizer state.
- Logs: a tqdm bar on rank 0 and `train_log.jsonl` (one line per optimizer step).
- The phase ends with the objective's export (for VITA: the official checkpoint layout).
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from vita15.checkpoint import DTYPES

from .resume_state import SafeFileSystemReader, SafeLoadPlanner, load_trainer_state, save_trainer_state, saved_keys
from .stages import param_groups

logger = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"
CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"
LENGTH_GROUP = 16  # global batches per length-sorted window


@dataclass
class TrainConfig:
    """Hyper-parameters of one phase (recipe key `train`); defaults follow spec §7.2."""

    lr: float = 2e-5
    projector_lr: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8  # per device
    grad_accum: int = 2
    max_grad_norm: float = 1.0
    grad_checkpointing: bool = True
    precision: str = "bf16"  # GPU compute dtype; CPU always trains in fp32
    seed: int = 0
    save_every: int = 0  # optimizer steps between checkpoints; 0 = only the final one
    keep_checkpoints: int = 2
    export_dtype: str = "bf16"
    max_shard_mb: int = 5120
    group_by_length: bool = True  # needs `dataset.lengths` (VITA-JSON data); else plain shuffling
    cpu_threads: int | None = None  # torch intra-op threads on CPU (1 is fastest on a busy box)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"train: unknown keys {unknown} (known: {sorted(known)})")
        floats = {f.name for f in fields(cls) if str(f.type).startswith("float")}
        # YAML 1.1 reads `2e-5` (no dot) as a string
        return cls(**{k: float(v) if k in floats and isinstance(v, str) else v for k, v in raw.items()})


@dataclass
class DistContext:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed() -> DistContext:
    """Process group from torchrun's environment; a plain process is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistContext(dist.get_rank() if world > 1 else 0, world, device)


# ---------------------------------------------------------------------- data order
def epoch_batches(n: int, batch_size: int, ctx: DistContext, seed: int, epoch: int,
                  lengths: list[int] | None = None) -> list[list[int]]:
    """This rank's micro-batches of one epoch: a seeded permutation, padded by wrapping so every
    rank gets the same number of full batches (like `DistributedSampler(drop_last=False)`).

    With `lengths`, each window of 16 global batches is sorted by length before it is cut (LLaVA's
    length-grouped sampling): a 1000-token video then no longer pads a batch of 300-token samples.
    """
    generator = torch.Generator().manual_seed(seed * 1000003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    per_step = batch_size * ctx.world
    total = math.ceil(n / per_step) * per_step
    order = (order * math.ceil(total / n))[:total]
    if lengths is not None:
        window = per_step * LENGTH_GROUP
        order = [i for w in range(0, total, window) for i in sorted(order[w : w + window], key=lambda j: -lengths[j])]
        steps = [order[i : i + per_step] for i in range(0, total, per_step)]
        order = [i for k in torch.randperm(len(steps), generator=generator).tolist() for i in steps[k]]
    batches = [order[i : i + per_step] for i in range(0, total, per_step)]
    return [b[ctx.rank * batch_size : (ctx.rank + 1) * batch_size] for b in batches]


def micro_batches(dataset, collate, cfg: TrainConfig, ctx: DistContext, start: int) -> Iterator[tuple[int, Any]]:
    """(position, batch) from micro-batch `start` on, epoch after epoch."""
    lengths = getattr(dataset, "lengths", None) if cfg.group_by_length else None
    per_epoch = len(epoch_batches(len(dataset), cfg.batch_size, ctx, cfg.seed, 0))
    position = start
    while True:
        epoch, offset = divmod(position, per_epoch)
        batches = epoch_batches(len(dataset), cfg.batch_size, ctx, cfg.seed, epoch, lengths)
        for indices in batches[offset:]:
            yield position, collate([dataset[i] for i in indices])
            position += 1


# ---------------------------------------------------------------------- checkpoints
def latest_checkpoint(out_dir: Path) -> Path | None:
    done = sorted(p for p in (out_dir / CHECKPOINTS).glob("step-*") if (p / COMPLETE).is_file())
    return done[-1] if done else None


def save_checkpoint(out_dir: Path, module, optimizer, scheduler, step: int, position: int,
                    cfg: TrainConfig, ctx: DistContext) -> Path:
    """Sharded model + optimizer (DCP), then per-rank scheduler/RNG/position; COMPLETE marks it usable."""
    path = out_dir / CHECKPOINTS / f"step-{step:06d}"
    model_sd, optim_sd = get_state_dict(module, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(path / "dcp"))
    save_trainer_state(path, ctx.rank, step=step, position=position, scheduler=scheduler.state_dict())
    ctx.barrier()
    if ctx.main:
        (path / COMPLETE).write_text(json.dumps({"step": step, "position": position}) + "\n")
        old = sorted(p for p in (out_dir / CHECKPOINTS).glob("step-*") if p != path)
        for stale in old[: max(0, len(old) - cfg.keep_checkpoints + 1)]:
            shutil.rmtree(stale)
    ctx.barrier()
    return path


def load_checkpoint(path: Path, module, optimizer, scheduler, ctx: DistContext) -> tuple[int, int]:
    """Restore everything `save_checkpoint` stored; returns (step, data position)."""
    model_sd, optim_sd = get_state_dict(module, optimizer)  # (this gives every parameter optimizer state)
    unstepped = _drop_unsaved_optim_state(optim_sd, saved_keys(path / "dcp"))
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, storage_reader=SafeFileSystemReader(str(path / "dcp")), planner=SafeLoadPlanner())
    # Not strict where parameters have no state on purpose (dcp.load already required every saved key);
    # they are left without state, so AdamW initialises it at their first gradient, as it would have.
    set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"],
                   options=StateDictOptions(strict=not unstepped))
    trainer = load_trainer_state(path, ctx.rank)
    scheduler.load_state_dict(trainer["scheduler"])
    return int(trainer["step"]), int(trainer["position"])


def _drop_unsaved_optim_state(optim_sd: dict[str, Any], saved: set[str]) -> list[str]:
    """Remove (and name) parameters that have no optimizer state in the checkpoint.

    AdamW creates a parameter's state at its first gradient, so a trainable module that had none
    before the checkpoint (e.g. an adapter fed only by later batches) has no `optim.state.<name>.*`
    keys there; asking DCP for them fails with "Missing key".
    """
    prefix = "optim.state."
    stepped = {key[len(prefix):].rsplit(".", 1)[0] for key in saved if key.startswith(prefix)}
    missing = [name for name in optim_sd["state"] if name not in stepped]
    for name in missing:
        del optim_sd["state"][name]
    return missing


# ---------------------------------------------------------------------- model setup
def shard(module: torch.nn.Module, cfg: TrainConfig, ctx: DistContext) -> torch.nn.Module:
    """FSDP2 over the module's `shard_units()` and the root (bf16 params / fp32 reductions on GPU)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy()
    if ctx.device.type == "cuda" and cfg.precision != "fp32":
        mp = MixedPrecisionPolicy(param_dtype=DTYPES[cfg.precision], reduce_dtype=torch.float32)
    for unit in module.shard_units():
        fully_shard(unit, mp_policy=mp)
    fully_shard(module, mp_policy=mp)
    return module


def _autocast(cfg: TrainConfig, ctx: DistContext):
    """Single-GPU mixed precision (FSDP casts parameters itself)."""
    if ctx.world == 1 and ctx.device.type == "cuda" and cfg.precision != "fp32":
        return torch.autocast("cuda", dtype=DTYPES[cfg.precision])
    return nullcontext()


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if hasattr(batch, "__dataclass_fields__"):
        return type(batch)(**{k: _to_device(v, device) for k, v in vars(batch).items()})
    return batch


def _reduce_mean(values: list[float], ctx: DistContext) -> list[float]:
    if ctx.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return (t / ctx.world).tolist()


# ---------------------------------------------------------------------- the loop
def total_steps(n_samples: int, cfg: TrainConfig, ctx: DistContext) -> int:
    per_epoch = len(epoch_batches(n_samples, cfg.batch_size, ctx, cfg.seed, 0)) / cfg.grad_accum
    return cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))


def _trim_log(log: Path, step: int) -> None:
    """After a resume, drop log lines of steps the killed run did after its last checkpoint."""
    if log.is_file():
        lines = [line for line in log.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        log.write_text("".join(line + "\n" for line in lines))


def train_phase(objective, name: str, cfg: TrainConfig, out_dir: Path, ctx: DistContext,
                stop_after: int | None = None) -> Path | None:
    """Train one phase in `out_dir` (resuming from its latest checkpoint) and export it.

    `stop_after` ends the run after that many optimizer steps (with a checkpoint, without export):
    it stands in for a killed job in tests. Returns the export folder (None when stopped early).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.cpu_threads and ctx.device.type == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    torch.manual_seed(cfg.seed + ctx.rank)
    random.seed(cfg.seed + ctx.rank)
    np.random.seed(cfg.seed + ctx.rank)
    if cfg.grad_checkpointing:
        objective.module.enable_grad_checkpointing()
    # FSDP moves each rank's shard to its device; only a single process moves the whole module
    module = shard(objective.module, cfg, ctx) if ctx.world > 1 else objective.module.to(ctx.device)
    module.train()
    # fused: one kernel per step instead of ~10 passes over every tensor (FSDP's DTensors use foreach)
    optimizer = torch.optim.AdamW(param_groups(module, cfg.lr, cfg.weight_decay, cfg.projector_lr), lr=cfg.lr,
                                  fused=ctx.world == 1)
    steps = total_steps(len(objective.dataset), cfg, ctx)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(cfg.warmup_ratio * steps), steps)
    step, position = 0, 0
    resume = latest_checkpoint(out_dir)
    if resume is not None:
        step, position = load_checkpoint(resume, module, optimizer, scheduler, ctx)
        logger.info("%s: resumed from %s (step %d, micro-batch %d)", name, resume, step, position)
    log = out_dir / LOG_FILE
    if ctx.main:
        _trim_log(log, step)
    data = micro_batches(objective.dataset, objective.collate, cfg, ctx, position)
    bar = tqdm(total=steps, initial=step, desc=f"stage {name}", disable=not ctx.main, dynamic_ncols=True)
    start = time.perf_counter()
    while step < steps:
        t0 = time.perf_counter()
        loss_sum, tokens = 0.0, 0
        for _ in range(cfg.grad_accum):
            position, batch = next(data)
            with _autocast(cfg, ctx):
                loss, n_tokens = module(_to_device(batch, ctx.device))
            (loss / cfg.grad_accum).backward()
            loss_sum += float(loss.detach()) / cfg.grad_accum
            tokens += int(n_tokens)
        position += 1
        grad_norm = torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.requires_grad], cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        mean_loss, mean_tokens = _reduce_mean([loss_sum, float(tokens)], ctx)
        dt = time.perf_counter() - t0
        record = {"phase": name, "step": step, "loss": mean_loss, "lr": scheduler.get_last_lr()[0],
                  "grad_norm": float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm),
                  "tokens": int(mean_tokens * ctx.world), "tokens_per_s": mean_tokens * ctx.world / dt,
                  "elapsed_s": time.perf_counter() - start}
        if ctx.main:
            with log.open("a") as f:
                f.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{record['lr']:.2e}")
            bar.update()
        stopping = stop_after is not None and step >= stop_after
        if stopping or (cfg.save_every and step % cfg.save_every == 0 and step < steps):
            save_checkpoint(out_dir, module, optimizer, scheduler, step, position, cfg, ctx)
        if stopping:
            bar.close()
            return None
    bar.close()
    return _finish(objective, module, name, cfg, out_dir, ctx, step, time.perf_counter() - start)


def _finish(objective, module, name: str, cfg: TrainConfig, out_dir: Path, ctx: DistContext,
            step: int, seconds: float) -> Path:
    """Gather the full state dict, export on rank 0, write `summary.json` with the skipped samples."""
    state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    export_dir = out_dir / "export"
    if ctx.main:
        objective.export(state, export_dir, DTYPES[cfg.export_dtype], cfg.max_shard_mb * 1024**2)
        skipped = objective.skipped
        summary = {"phase": name, "steps": step, "train_seconds": seconds, "samples": len(objective.dataset),
                   "skipped": len(skipped), "skipped_samples": skipped, "config": asdict(cfg)}
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        logger.info("stage %s done: %d steps in %.1f s, %d samples used, %d skipped -> %s",
                    name, step, seconds, len(objective.dataset), len(skipped), export_dir)
    ctx.barrier()
    return export_dir
