"""The VITA-1.5 model as the runner sees it: Requests in, Outputs out, batched.

`builtin:tiny` is the embedded tiny VITA: the committed trained checkpoint in
`benchmarks/models/tiny-vita` when present, otherwise a tiny random-weight checkpoint
written deterministically from seed 0 into the user cache on first use.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch

from vita_eval.registry import register
from vita_eval.types import Output, Request

BUNDLED_TINY = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "models" / "tiny-vita"
CACHE = Path.home() / ".cache" / "vita-eval" / "models"


def resolve_model_path(spec: str, *, create: bool = True) -> Path:
    """A checkpoint folder, or the embedded tiny VITA for `builtin:tiny` (written on first use unless not `create`)."""
    if spec != "builtin:tiny":
        path = Path(spec)
        if not path.is_dir():
            raise FileNotFoundError(f"model directory not found: {path}")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a VITA checkpoint folder (no config.json)")
        return path
    if (BUNDLED_TINY / "config.json").exists():
        return BUNDLED_TINY
    target = CACHE / "tiny-vita-random-seed0"
    if create and not (target / "config.json").exists():
        _write_random_tiny(target)
    return target


def _write_random_tiny(target: Path) -> None:
    """Write into a private folder, then rename: ranks racing on first use never see half a checkpoint."""
    from vita15.checkpoint import write_checkpoint
    from vita15.configuration_vita import tiny_config

    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    write_checkpoint(tmp, tiny_config(), seed=0, dtype=torch.float32)
    try:
        os.rename(tmp, target)
    except OSError:  # another process finished first; its copy is identical (same seed)
        shutil.rmtree(tmp, ignore_errors=True)


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return dtype


class VitaModel:
    """Adapter from the harness's Request/Output to `vita15.inference.VitaInference`."""

    def __init__(self, path: Path, *, device: str, dtype: str, name: str | None = None):
        from vita15.inference import VitaInference

        self.path = path
        self.name = name or path.name
        self.device, self.dtype = device, dtype
        self.engine = VitaInference.from_pretrained(path, device=device, dtype=dtype)
        self.identity: dict[str, Any] = {
            "path": str(path.resolve()), "name": self.name,
            "config_sha256": _sha256(path / "config.json"),
            "index_sha256": _sha256(path / "model.safetensors.index.json") or _sha256(path / "random_init.json")
            or _sha256(path / "model.safetensors"),
        }

    def generate(self, requests: Sequence[Request]) -> list[Output]:
        gen = requests[0].gen
        results = self.engine.generate(
            list(requests), do_sample=gen.do_sample, temperature=gen.temperature, top_p=gen.top_p,
            max_new_tokens=gen.max_new_tokens, stop=gen.stop, seed=gen.seed,
        )
        return [Output(raw=g.raw, answer=g.answer, n_prompt_tokens=g.n_prompt_tokens, n_new_tokens=g.n_new_tokens,
                       warnings=list(g.warnings)) for g in results]


@register("model", "vita")
def load(spec: str, *, device: str, dtype: str, name: str | None = None) -> VitaModel:
    """VITA-1.5 checkpoints in the official layout: a folder, or builtin:tiny (the embedded tiny VITA)."""
    return VitaModel(resolve_model_path(spec), device=device, dtype=dtype, name=name)
