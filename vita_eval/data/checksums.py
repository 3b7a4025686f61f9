"""md5 checks and downloads of benchmark files.

VLMEvalKit re-downloads a TSV whose md5 differs from its table, and scores depend on
the file version (e.g. the MMBench TEST_*_V11 files replaced in 2026), so the harness
records and checks the md5 of every data file it reads.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from vita_eval.types import SuiteError

_CHUNK = 1 << 20


def file_md5(path: str | Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks so multi-GB TSVs never sit in memory."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | Path, expected: str) -> tuple[bool, str]:
    """(ok, message): whether `path` exists and has md5 `expected` (case-insensitive)."""
    path = Path(path)
    if not path.is_file():
        return False, f"{path}: file not found"
    actual = file_md5(path)
    if actual.lower() != expected.lower():
        return False, f"{path}: md5 {actual} != expected {expected.lower()}"
    return True, f"{path}: md5 {actual} ok"


def fetch(url: str, dest: str | Path, md5: str | None = None) -> Path:
    """Download `url` to `dest` via a temporary file renamed into place only when complete
    (and, if `md5` is given, only when it matches), so a failed download never leaves a
    half-written file that a later run would trust."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
        if md5 is not None and (actual := file_md5(tmp)) != md5.lower():
            raise SuiteError(f"{url}: downloaded md5 {actual} != expected {md5.lower()}; {dest} left unchanged")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:
        raise SuiteError(f"cannot download {url} to {dest} (network unreachable?): {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest
