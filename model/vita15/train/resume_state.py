"""Checkpoint files a resume reads without running code from them.

A training output folder may come from elsewhere (copied, downloaded, shared), and a resume
reads every checkpoint in it. Nothing there is unpickled freely:

- Trainer state (step, data position, LR scheduler, RNG states) is JSON plus a safetensors
  file for the torch RNG tensors, `trainer-rank<r>.json` / `.safetensors`.
- The distributed checkpoint's `.metadata` is a pickle written by `torch.distributed.checkpoint`;
  it is read by an unpickler that only knows the few DCP metadata classes, torch dtypes and
  layouts it needs (`MetadataUnpickler`), so a crafted file fails to load instead of running.
- DCP's non-tensor items (optimizer hyper-parameters) are loaded with `weights_only=True`
  (`SafeLoadPlanner`); tensors already are.
"""
from __future__ import annotations

import io
import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint._traverse import set_element  # what DefaultLoadPlanner.load_bytes uses
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

_DCP_META = "torch.distributed.checkpoint.metadata"
ALLOWED_GLOBALS = frozenset({
    (_DCP_META, name) for name in ("Metadata", "TensorStorageMetadata", "BytesStorageMetadata",
                                   "ChunkStorageMetadata", "TensorProperties", "MetadataIndex", "StorageMeta",
                                   "_MEM_FORMAT_ENCODING")
} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),  # maps a layout's name to the torch.layout
    ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "Path"),
    ("collections", "OrderedDict"),
})


class UnsafeCheckpoint(pickle.UnpicklingError):
    """A checkpoint file asks to build something a resume never needs (and so is refused)."""


class MetadataUnpickler(pickle.Unpickler):
    """Unpickles DCP `.metadata` only: every global outside ALLOWED_GLOBALS (or a torch dtype) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS or (module == "torch" and isinstance(getattr(torch, name, None),
                                                                                   torch.dtype)):
            return super().find_class(module, name)
        raise UnsafeCheckpoint(f"checkpoint metadata refers to {module}.{name}, which a DCP checkpoint never "
                               "holds; refusing to load it (the file may be crafted to run code)")


class SafeFileSystemReader(FileSystemReader):
    """`FileSystemReader` whose metadata is read by `MetadataUnpickler`."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as stream:
            metadata = MetadataUnpickler(stream).load()
        if not isinstance(metadata, Metadata):
            raise UnsafeCheckpoint(f"{path}: not DCP metadata ({type(metadata).__name__})")
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """`DefaultLoadPlanner` that loads non-tensor items with `weights_only=True` (plain data only)."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        obj = torch.load(value, weights_only=True)
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


def saved_keys(dcp_dir: Path) -> set[str]:
    """Flattened keys (`model.x`, `optim.state.x.exp_avg`, ...) a DCP checkpoint holds, read safely."""
    return set(SafeFileSystemReader(str(dcp_dir)).read_metadata().state_dict_metadata)


# ---------------------------------------------------------------------- trainer state


def _rng_json() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    version, state, gauss = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    return {"python": [version, list(state), gauss],
            "numpy": [name, key.tolist(), int(pos), int(has_gauss), float(cached)]}, tensors


def _set_rng(state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])


def trainer_files(folder: Path, rank: int) -> tuple[Path, Path]:
    return folder / f"trainer-rank{rank}.json", folder / f"trainer-rank{rank}.safetensors"


def save_trainer_state(folder: Path, rank: int, *, step: int, position: int, scheduler: dict[str, Any]) -> None:
    """Step, data position, scheduler state and this rank's RNG states, as JSON + safetensors."""
    rng, tensors = _rng_json()
    meta, weights = trainer_files(folder, rank)
    save_file(tensors, str(weights))
    meta.write_text(json.dumps({"step": step, "position": position, "scheduler": scheduler, "rng": rng}) + "\n")


def load_trainer_state(folder: Path, rank: int) -> dict[str, Any]:
    """What `save_trainer_state` wrote (RNG states restored); a folder of an older format is refused."""
    meta, weights = trainer_files(folder, rank)
    if not meta.is_file() or not weights.is_file():
        legacy = folder / f"trainer-rank{rank}.pt"
        hint = (f" ({legacy.name} is the pickle format of older versions, which a resume no longer opens "
                "because it can run code)") if legacy.exists() else ""
        raise FileNotFoundError(f"{folder}: no {meta.name} / {weights.name}{hint}; "
                                "start this phase in a new output_dir")
    state = json.loads(meta.read_text())
    _set_rng(state["rng"], load_file(str(weights)))
    return state
