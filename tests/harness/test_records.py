"""Per-sample records: append-only, torn lines ignored, newest success wins, merge keeps order."""
import json
from dataclasses import asdict
from pathlib import Path

from vita_eval.runner.records import RecordWriter, SampleRecord, merge_records, read_records


def _rec(uid: str, answer: str | None = "A", error: str | None = None) -> SampleRecord:
    return SampleRecord(uid=uid, prompt_hash="h", raw=answer, answer=answer, error=error)


def test_torn_line_is_ignored_and_success_beats_error(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path / "samples.rank0.jsonl")
    w.write(_rec("1"))
    w.write(_rec("2", None, "generation failed: boom"))
    w.close()
    with open(tmp_path / "samples.rank1.jsonl", "w") as fh:
        fh.write(json.dumps(asdict(_rec("2", "B"))) + "\n")
        fh.write('{"uid": "3", "prompt_ha')  # killed mid-write
    records = read_records(tmp_path)
    assert set(records) == {"1", "2"}
    assert records["2"].answer == "B" and records["2"].error is None


def test_merge_orders_by_dataset_and_removes_rank_files(tmp_path: Path) -> None:
    for rank, uids in enumerate([["3", "1"], ["2"]]):
        w = RecordWriter(tmp_path / f"samples.rank{rank}.jsonl")
        for u in uids:
            w.write(_rec(u))
        w.close()
    merged = merge_records(tmp_path, ["1", "2", "3"])
    assert [json.loads(line)["uid"] for line in merged.read_text().splitlines()] == ["1", "2", "3"]
    assert not list(tmp_path.glob("samples.rank*.jsonl"))


def test_prompt_hash_covers_media_and_decoding() -> None:
    import dataclasses

    import numpy as np
    from PIL import Image

    from vita_eval.runner.records import prompt_hash
    from vita_eval.types import Request

    base = Request(uid="1", text="Transcribe", audio=np.zeros(1600, dtype=np.float32))
    assert prompt_hash(base) == prompt_hash(dataclasses.replace(base, uid="2"))
    assert prompt_hash(base) != prompt_hash(dataclasses.replace(base, audio=np.ones(1600, dtype=np.float32)))
    with_image = dataclasses.replace(base, images=[Image.new("RGB", (8, 8), "red")])
    assert prompt_hash(with_image) != prompt_hash(dataclasses.replace(base, images=[Image.new("RGB", (8, 8), "blue")]))
    assert prompt_hash(base) != prompt_hash(dataclasses.replace(base, gen=dataclasses.replace(base.gen, max_new_tokens=3)))
