"""Resume reads nothing from a checkpoint folder as code, and survives a module that had no gradient yet.

A tiny two-layer objective keeps these tests fast; the engine, DCP and AdamW are the real ones.
"""
from __future__ import annotations

import builtins
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vita15.train.engine import DistContext, TrainConfig, epoch_batches, latest_checkpoint, train_phase
from vita15.train.resume_state import UnsafeCheckpoint, saved_keys

CPU = DistContext(rank=0, world=1, device=torch.device("cpu"))
N, BATCH, ACCUM = 16, 2, 1
CFG = dict(lr=1e-2, warmup_ratio=0.0, batch_size=BATCH, grad_accum=ACCUM, grad_checkpointing=False,
           group_by_length=False, max_steps=4, seed=0)


@dataclass
class Batch:
    x: torch.Tensor
    late: torch.Tensor  # 1 where the sample also trains the adapter


class TwoPart(nn.Module):
    """`base` trains on every batch; `adapter` only on samples marked late (none before step 2)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.base, self.adapter = nn.Linear(4, 4), nn.Linear(4, 4)

    def enable_grad_checkpointing(self) -> None:
        pass

    def shard_units(self) -> list[nn.Module]:
        return [self.base, self.adapter]

    def forward(self, batch: Batch) -> tuple[torch.Tensor, int]:
        loss = (self.base(batch.x) - 1).pow(2).mean()
        if bool(batch.late.any()):
            loss = loss + (self.adapter(batch.x[batch.late.bool()]) + 1).pow(2).mean()
        return loss, len(batch.x)


class Objective:
    def __init__(self) -> None:
        cfg = TrainConfig(**CFG)
        first = {i for b in epoch_batches(N, BATCH, CPU, cfg.seed, 0)[: 2 * ACCUM] for i in b}
        generator = torch.Generator().manual_seed(1)
        self.dataset = [(torch.randn(4, generator=generator), int(i not in first)) for i in range(N)]
        self.module, self.skipped = TwoPart(), []

    @staticmethod
    def collate(items: list) -> Batch:
        return Batch(torch.stack([x for x, _ in items]), torch.tensor([late for _, late in items]))

    @staticmethod
    def export(state: dict, out: Path, dtype: torch.dtype, max_bytes: int) -> None:
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


def _stopped(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert train_phase(Objective(), "t", TrainConfig(**CFG), out, CPU, stop_after=2) is None
    return out


def test_resume_when_a_trainable_module_had_no_gradient_yet(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    train_phase(Objective(), "t", TrainConfig(**CFG), straight, CPU)
    out = _stopped(tmp_path)
    keys = saved_keys(latest_checkpoint(out) / "dcp")
    assert any(k.startswith("optim.state.base.") for k in keys)
    assert not any(k.startswith("optim.state.adapter.") for k in keys)  # no gradient before the checkpoint
    train_phase(Objective(), "t", TrainConfig(**CFG), out, CPU)  # used to fail: Missing key optim.state.adapter...
    torch.testing.assert_close(_losses(out), _losses(straight), rtol=1e-6, atol=1e-7)


class _RunsCode:
    """Unpickling this writes a marker file: the proof that a load executed code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_crafted_dcp_metadata_is_refused_not_run(tmp_path: Path) -> None:
    out = _stopped(tmp_path)
    marker = tmp_path / "marker"
    (latest_checkpoint(out) / "dcp" / ".metadata").write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(UnsafeCheckpoint, match="builtins.exec"):
        train_phase(Objective(), "t", TrainConfig(**CFG), out, CPU)
    assert not marker.exists()


def test_crafted_trainer_pickle_is_never_opened(tmp_path: Path) -> None:
    out = _stopped(tmp_path)
    step = latest_checkpoint(out)
    for safe in step.glob("trainer-rank0.*"):
        safe.unlink()
    marker = tmp_path / "marker"
    (step / "trainer-rank0.pt").write_bytes(pickle.dumps(_RunsCode(marker)))  # an old-format file, crafted
    with pytest.raises(FileNotFoundError, match="pickle format of older versions"):
        train_phase(Objective(), "t", TrainConfig(**CFG), out, CPU)
    assert not marker.exists()
    assert json.loads((step / "COMPLETE").read_text())["step"] == 2
