"""Engine: the loss falls, a resumed run continues the uninterrupted curve, exports load strictly."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from vita15.checkpoint import load_vita
from vita15.train.engine import DistContext, TrainConfig, latest_checkpoint, train_phase
from vita15.train.objectives import LMObjective
from vita15.train.stages import phases

from .conftest import data_config

CPU = DistContext(rank=0, world=1, device=torch.device("cpu"))


def _objective(mini_data: Path, seed: int = 0) -> LMObjective:
    data = data_config(mini_data, "small.json")
    return LMObjective(phases("2.2")[0], data, {"size": "tiny", "seed": seed}, None, distributed=False)


def _losses(out_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out_dir / "train_log.jsonl").read_text().splitlines()]


def _cfg(**kw) -> TrainConfig:
    base = {"lr": 3e-3, "warmup_ratio": 0.0, "batch_size": 2, "grad_accum": 2, "grad_checkpointing": True,
            "export_dtype": "fp32", "max_shard_mb": 16}
    return TrainConfig(**{**base, **kw})


def test_loss_falls_when_overfitting(mini_data, tmp_path) -> None:
    train_phase(_objective(mini_data), "2.2", _cfg(lr=1e-2, max_steps=10, grad_accum=1, batch_size=4), tmp_path, CPU)
    losses = _losses(tmp_path)
    assert len(losses) == 10
    assert losses[-1] < 0.7 * losses[0] and max(losses[-3:]) < min(losses[:3]), losses


def test_resume_continues_the_uninterrupted_curve(mini_data, tmp_path) -> None:
    cfg = _cfg(max_steps=4)
    straight = tmp_path / "straight"
    export = train_phase(_objective(mini_data), "2.2", cfg, straight, CPU)

    resumed = tmp_path / "resumed"
    assert train_phase(_objective(mini_data), "2.2", cfg, resumed, CPU, stop_after=2) is None  # "killed"
    assert latest_checkpoint(resumed).name == "step-000002"
    # a fresh process: new objective from the same seed; everything else comes from the checkpoint
    export2 = train_phase(_objective(mini_data), "2.2", cfg, resumed, CPU)
    torch.testing.assert_close(_losses(resumed), _losses(straight), rtol=1e-4, atol=1e-5)

    # the exports are complete official-layout checkpoints (load_vita is strict about keys)
    model, _ = load_vita(export, "cpu", "fp32")
    model2, _ = load_vita(export2, "cpu", "fp32")
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["skipped"] == 0


def test_epoch_batches_split_ranks_and_group_lengths() -> None:
    from vita15.train.engine import epoch_batches

    ranks = [DistContext(r, 2, torch.device("cpu")) for r in range(2)]
    plain = [epoch_batches(37, 4, ctx, seed=1, epoch=0) for ctx in ranks]
    assert len(plain[0]) == len(plain[1]) == 5 and all(len(b) == 4 for r in plain for b in r)
    assert {i for r in plain for b in r for i in b} == set(range(37))  # every sample, wrapped to fill
    assert plain[0] != epoch_batches(37, 4, ranks[0], seed=1, epoch=1)  # reshuffled each epoch
    lengths = [1000 if i % 10 == 0 else 100 for i in range(160)]
    grouped = epoch_batches(160, 4, DistContext(0, 1, torch.device("cpu")), seed=0, epoch=0, lengths=lengths)
    mixed = sum(len({lengths[i] for i in b}) > 1 for b in grouped)  # at most one per 64-sample window
    assert mixed <= 3 and sorted(i for b in grouped for i in b) == list(range(160))
