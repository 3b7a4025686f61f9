"""md5 streaming, verification, and fetch over file:// (the sandbox has no network)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vita_eval.data import checksums
from vita_eval.data.checksums import fetch, file_md5, verify
from vita_eval.types import SuiteError

PAYLOAD = b"index\tquestion\n0\tIs it red?\n" * 100_000  # > one 1 MiB chunk


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "MME.tsv"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def test_file_md5_streams_in_chunks(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checksums, "_CHUNK", 4096)
    assert file_md5(source) == hashlib.md5(PAYLOAD).hexdigest()


def test_verify(source: Path) -> None:
    good = hashlib.md5(PAYLOAD).hexdigest()
    assert verify(source, good.upper())[0]
    ok, message = verify(source, "0" * 32)
    assert not ok and str(source) in message and good in message
    ok, message = verify(source.with_name("absent.tsv"), good)
    assert not ok and "not found" in message


def test_fetch_file_url(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "LMUData" / "MME.tsv"
    assert fetch(source.as_uri(), dest, md5=hashlib.md5(PAYLOAD).hexdigest()) == dest
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["MME.tsv"]  # no .part left behind


def test_fetch_wrong_md5_leaves_dest_untouched(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "MME.tsv"
    dest.write_bytes(b"old")
    with pytest.raises(SuiteError, match=r"downloaded md5 .* != expected 0{32}"):
        fetch(source.as_uri(), dest, md5="0" * 32)
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MME.tsv", "src"]


def test_fetch_unreachable(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="cannot download file:///nonexistent/x.tsv"):
        fetch("file:///nonexistent/x.tsv", tmp_path / "x.tsv")
    with pytest.raises(SuiteError, match="network unreachable"):
        fetch("http://127.0.0.1:9/MME.tsv", tmp_path / "y.tsv")
    assert list(tmp_path.iterdir()) == []
