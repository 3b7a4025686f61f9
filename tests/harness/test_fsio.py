"""Atomic writes and tolerant reads: a kill mid-write leaves the old file, a damaged file reads as absent."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vita_eval import fsio


def test_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "run.json"
    fsio.write_json(target, {"a": 1})
    fsio.write_json(target, {"a": 2})
    assert fsio.read_json(target) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["run.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "scores.json"
    fsio.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with fsio.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


def test_damaged_or_empty_json_reads_as_absent_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "fingerprint.json"
    path.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert fsio.read_json(path, default={}) == {}
    assert "damaged" in caplog.text and "fingerprint.json" in caplog.text
    assert fsio.read_json(tmp_path / "missing.json") is None
