"""FSDP2 on 2 CPU processes (gloo) through `torchrun` and the `vita-train` CLI, plus CLI config handling."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from vita15.checkpoint import load_vita
from vita15.train.cli import RECIPES, apply_overrides, find_config, load_yaml, merge
from vita15.train.data import DataConfig
from vita15.train.engine import TrainConfig
from vita15.train.stages import STAGES

from .conftest import data_config


def test_two_rank_fsdp_stage_trains_and_exports(mini_data, tiny_vita_ckpt, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = {"stage": "2.2", "output_dir": str(out), "init": str(tiny_vita_ckpt),
           "data": data_config(mini_data, "small.json"),
           "train": {"lr": 1e-3, "batch_size": 1, "grad_accum": 1, "max_steps": 2, "warmup_ratio": 0.0,
                     "grad_checkpointing": True, "export_dtype": "fp32", "cpu_threads": 1}}
    config = tmp_path / "stage.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
           "-m", "vita15.train.cli", "--stage", "2.2", "--config", str(config)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    log = [json.loads(line) for line in (out / "2.2" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    before, _ = load_vita(tiny_vita_ckpt, "cpu", "fp32")
    after, _ = load_vita(out / "2.2" / "export", "cpu", "fp32")  # strict: no missing/unexpected keys
    old, new = before.state_dict(), after.state_dict()
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert any(k.startswith("model.layers.") for k in changed)
    assert any(k.startswith("model.audio_encoder.adpter.") for k in changed)  # the spoken sample's rank
    assert not any(k.startswith(("model.vision_tower.", "model.audio_encoder.encoder.")) for k in changed)


def test_bundled_configs_are_valid() -> None:
    for path in RECIPES.glob("*.yaml"):
        cfg = load_yaml(path)
        entries = [merge(cfg.get("defaults", {}), e) for e in cfg["stages"]] if "stages" in cfg else [cfg]
        for entry in entries:
            assert str(entry["stage"]) in STAGES, path
            TrainConfig.from_dict(entry.get("train", {}))
            for over in entry.get("phase_overrides", {}).values():
                TrainConfig.from_dict(merge(entry.get("train", {}), over.get("train", {})))
            data = {k: v for k, v in entry["data"].items() if k != "root"}
            DataConfig.from_dict(data)
    assert {p.stem for p in RECIPES.glob("stage*.yaml")} == {f"stage{s.replace('.', '_')}" for s in STAGES}


def test_overrides_and_config_lookup() -> None:
    cfg = apply_overrides({"train": {"lr": 1.0}}, ["train.lr=2e-5", "train.epochs=3", "data.files=[a.json]"])
    assert cfg["data"] == {"files": ["a.json"]} and cfg["train"]["epochs"] == 3
    assert TrainConfig.from_dict(cfg["train"]).lr == 2e-5  # YAML reads "2e-5" as a string
    assert find_config("tiny") == RECIPES / "tiny.yaml"
    with pytest.raises(FileNotFoundError, match="bundled"):
        find_config("no-such-recipe")
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({"learning_rate": 1})
    assert Path(find_config("stage2_2")).is_file()


def test_gpu_fsdp_bench_smoke_on_cpu(tmp_path) -> None:
    """Single process, tiny size: the meta-device build, random init and JSON report work."""
    from vita15.train.gpu_fsdp_bench import parse_args, run

    out = tmp_path / "bench.json"
    result = run(parse_args(["--size", "tiny", "--steps", "1", "--warmup", "1", "--batch-size", "1",
                             "--text-tokens", "32", "--answer-tokens", "4", "--out", str(out)]))
    assert json.loads(out.read_text())["tokens_per_s"] == result["tokens_per_s"] > 0
    assert result["spliced_tokens_per_rank_step"] == 32 + 4 + 256 + 125
    assert all(torch.isfinite(torch.tensor(result["losses"])))
