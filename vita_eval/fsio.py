"""Files that a kill can never leave half-written: temp file + fsync + rename, and tolerant readers.

Every file a run writes goes through `atomic_path` (or the text/JSON helpers on top of
it): the content is written to a temporary name beside the target, flushed to disk, and
renamed over the target in one step, so a reader sees the old file or the new one, never
a torn one. `read_json` treats a damaged metadata file as absent, with a warning, so a
run directory stays resumable whatever happened to it.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write (by any library); on success it replaces `path` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results get the permissions open() would give
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | os.PathLike[str], value: Any, **dumps: Any) -> Path:
    options = {"indent": 2, "ensure_ascii": False, "default": str, **dumps}
    return write_text(path, json.dumps(value, **options) + "\n")


def write_jsonl(path: str | os.PathLike[str], rows: Any) -> Path:
    """One JSON object per line (non-JSON values as their str), written atomically."""
    return write_text(path, "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows))


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    """The file's JSON, or `default` when it is missing or damaged (damage is logged, never fatal)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s is damaged (%s: %s); treating it as absent", path, type(exc).__name__, exc)
        return default
