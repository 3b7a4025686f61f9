"""Data parallelism under torchrun: strided shards per rank, rank 0 merges and scores.

Shards are strided over prefix-sharing groups (`vita_eval.runner.schedule`), never inside one,
so the questions about one image stay on one rank and share their prefix there.

Works with one process (no torchrun), with gloo on CPUs, and with NCCL on GPUs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """VLMEvalKit's split: rank r takes items r, r+N, r+2N, ..."""
        return items[self.rank :: self.world]

    def shard_groups(self, groups: list[list]) -> list[list]:
        """Whole groups, balanced by size: the next group goes to the rank with the fewest items so far
        (ties to the lowest rank), which every rank computes alike."""
        loads, mine = [0] * self.world, []
        for group in groups:
            rank = min(range(self.world), key=lambda r: (loads[r], r))
            loads[rank] += len(group)
            if rank == self.rank:
                mine.append(group)
        return mine

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed(device: str) -> Dist:
    """Join the torchrun group if there is one; pick the GPU of this rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank=rank, world=world, local_rank=local_rank)


def shutdown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
