"""Append-only per-sample records: the run's only source of truth for predictions.

Each finished sample is one JSON line, flushed and fsynced before the next sample
starts, so a SIGKILL loses at most the sample in flight. On resume every
`samples*.jsonl` in the suite folder is read (whatever world size wrote them), a torn
last line is ignored, and the newest record of a uid wins.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from vita_eval.types import Request


@dataclass
class SampleRecord:
    uid: str
    prompt_hash: str
    raw: str | None
    answer: str | None
    n_prompt_tokens: int = 0
    n_new_tokens: int = 0
    time_s: float = 0.0
    error: str | None = None


def prompt_hash(request: Request) -> str:
    """Identity of exactly what the model was asked: text, media bytes and decoding parameters."""
    digest = hashlib.sha256(json.dumps([request.text, repr(request.gen), request.max_tiles, request.modality],
                                       ensure_ascii=False).encode())
    for image in [*request.images, *request.frames]:
        digest.update(image.tobytes())
    if request.audio is not None:
        digest.update(request.audio.tobytes())
    return digest.hexdigest()[:16]


class RecordWriter:
    """Appends records to one file; one writer per process."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: SampleRecord) -> None:
        self._fh.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _read_lines(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill; that sample is simply redone


def read_records(suite_dir: Path) -> dict[str, SampleRecord]:
    """Latest record per uid across samples.jsonl and every rank file; successes beat errors."""
    records: dict[str, SampleRecord] = {}
    for path in sorted(suite_dir.glob("samples*.jsonl")):
        for raw in _read_lines(path):
            rec = SampleRecord(**raw)
            old = records.get(rec.uid)
            if old is None or rec.error is None or old.error is not None:
                records[rec.uid] = rec
    return records


def merge_records(suite_dir: Path, order: list[str]) -> Path:
    """Rank 0 folds every file into samples.jsonl (dataset order), then removes the rank files."""
    records = read_records(suite_dir)
    known = set(order)
    ordered = [records[u] for u in order if u in records] + [r for u, r in records.items() if u not in known]
    target = suite_dir / "samples.jsonl"
    tmp = suite_dir / "samples.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in ordered:
            fh.write(json.dumps(asdict(rec), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    for path in suite_dir.glob("samples.rank*.jsonl"):
        path.unlink()
    return target
