"""Append-only per-sample records: the run's only source of truth for predictions.

Each finished sample is one JSON line, flushed and fsynced before the next sample
starts, so a SIGKILL loses at most the sample in flight. On resume every
`samples*.jsonl` in the suite folder is read (whatever world size wrote them), a torn
or damaged line is skipped with a warning, and the newest record of a uid wins. A writer
that reopens a file whose last line was torn by a kill first cuts that fragment off, so
the next record starts on a fresh line instead of being glued onto it (and lost).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from vita_eval import fsio
from vita_eval.types import Request

log = logging.getLogger(__name__)


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
        drop_torn_tail(path)
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: SampleRecord) -> None:
        self._fh.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def drop_torn_tail(path: Path) -> int:
    """Cut a last line that has no newline (a write torn by a kill); returns the bytes dropped.

    Only the owner of the file calls this (one writer per rank file, under the run-directory lock).
    """
    if not path.is_file():
        return 0
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        keep = _last_newline_end(fh, size)
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("%s: dropped a torn last line (%d bytes, a write cut by a kill); that sample is redone",
                path, size - keep)
    return size - keep


def _last_newline_end(fh, size: int, chunk: int = 1 << 16) -> int:
    """Offset just after the last b"\n" of an open binary file (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        fh.seek(start)
        found = fh.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _read_lines(path: Path) -> Iterable[dict[str, Any]]:
    """The file's JSON records; a torn or damaged line (bad JSON, bad bytes) is skipped with a warning."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                log.warning("%s line %d: unreadable record skipped (%s); that sample is redone", path, number, exc)
                continue
            if isinstance(value, dict):
                yield value
            else:
                log.warning("%s line %d: not a record object; skipped", path, number)


def _as_record(raw: dict[str, Any], path: Path) -> SampleRecord | None:
    try:
        return SampleRecord(**raw)
    except TypeError as exc:
        log.warning("%s: record with unexpected fields skipped (%s)", path, exc)
        return None


def read_records(suite_dir: Path) -> dict[str, SampleRecord]:
    """Latest record per uid across samples.jsonl and every rank file; successes beat errors."""
    records: dict[str, SampleRecord] = {}
    for path in sorted(suite_dir.glob("samples*.jsonl")):
        for raw in _read_lines(path):
            rec = _as_record(raw, path)
            if rec is None:
                continue
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
    fsio.write_text(target, "".join(json.dumps(asdict(rec), ensure_ascii=False) + "\n" for rec in ordered))
    for path in suite_dir.glob("samples.rank*.jsonl"):
        path.unlink()
    return target
