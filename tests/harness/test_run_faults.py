"""Whole runs under faults: damaged suites fail alone, kills at the moment of writing, damaged metadata,
torn record tails, two processes on one run directory. `vita-eval run` (in this process, or as a
separate one where a second process is the point) on copies of the bundled sample suites with the
bundled tiny VITA."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from vita_eval import cli, fsio
from vita_eval.runner.lock import RunDirBusy, lock_run_dir
from vita_eval.runner.records import RecordWriter, SampleRecord, read_records

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "benchmarks" / "samples"
CLI = [sys.executable, "-m", "vita_eval.cli"]
ESCAPE = "outside the suite's data root"


def _run(args: list[str], expect: int = 0) -> None:
    """`vita-eval ARGS` in this process (the imports are paid once for every run of this file)."""
    assert cli.main(args) == expect


def _scores(run_dir: Path, suite: str) -> dict:
    return json.loads((run_dir / suite / "scores.json").read_text())


def _reasons(scores: dict) -> str:
    return "\n".join(f"{f['uid']}: {f['reason']}" for f in scores["failures"])


def _mme(out: Path, *extra: str) -> list[str]:
    return ["run", "--suites", "MME", "--data-root", str(SAMPLES), "--out", str(out), "--batch-size", "2",
            "--max-new-tokens", "4", "--limit", "4", "--no-report", "--profile", "ms-vlmeval-0.0.20",
            "--set", "check_md5=false", *extra]


# ------------------------------------------------------------------ one damaged data root, every suite
def _damaged_root(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "data", tmp_path / "outside"
    shutil.copytree(SAMPLES, root)
    outside.mkdir()
    # LibriSpeech: a non-UTF-8 byte in one transcript line, one flac a symlink out of the data root
    trans = next((root / "LibriSpeech").rglob("*.trans.txt"))
    lines = trans.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"THE", b"TH\xff", 1)
    trans.write_bytes(b"".join(lines))
    flac = trans.parent / (lines[2].split(b" ")[0].decode() + ".flac")
    shutil.move(flac, outside / "secret.flac")
    flac.symlink_to(outside / "secret.flac")
    # ASR manifest: a bad byte, an absolute path out of the root, an empty reference
    manifest = root / "manifest" / "asr.jsonl"
    entries = manifest.read_bytes().splitlines(keepends=True)
    entries[0] = entries[0].replace(b"RED", b"R\xffD", 1)
    second, third = json.loads(entries[1]), json.loads(entries[2])
    second["audio"], third["text"] = str(outside / "secret.flac"), ""
    entries[1:3] = [(json.dumps(e) + "\n").encode() for e in (second, third)]
    manifest.write_bytes(b"".join(entries))
    # WenetSpeech: a segment running 60 s past the end of its 23 s opus file
    meta_path = root / "WenetSpeech" / "WenetSpeech.json"
    meta = json.loads(meta_path.read_text())
    segment = next(s for s in meta["audios"][0]["segments"] if "TEST_NET" in s["subsets"])
    segment["end_time"] += 60.0
    meta_path.write_text(json.dumps(meta, ensure_ascii=False))
    # MMBench: an index that is not an integer; MathVista: a choices cell that is not a closed list
    mmb = pd.read_csv(root / "MMBench_DEV_EN.tsv", sep="\t")
    mmb["index"] = mmb["index"].astype(str).replace({"5": "q5"})
    mmb.to_csv(root / "MMBench_DEV_EN.tsv", sep="\t", index=False)
    mv = pd.read_csv(root / "MathVista_MINI.tsv", sep="\t")
    mv.loc[mv["index"] == 2, "choices"] = "['blue', 'green'"
    mv.to_csv(root / "MathVista_MINI.tsv", sep="\t", index=False)
    # MME: one empty image cell (row 2 holds the image that row 3 refers to)
    mme = pd.read_csv(root / "MME.tsv", sep="\t")
    mme.loc[mme["index"] == 2, "image"] = None
    mme.to_csv(root / "MME.tsv", sep="\t", index=False)
    # Video-MME: a videoID climbing out of the data root to a real video there
    parquet = root / "Video-MME" / "videomme" / "test-00000-of-00001.parquet"
    table = pd.read_parquet(parquet)
    first = table["videoID"].iloc[0]
    shutil.copy(root / "Video-MME" / "video" / f"{first}.mp4", outside / "secret.mp4")
    table.loc[table["videoID"] == first, "videoID"] = "../../../outside/secret"
    table.to_parquet(parquet)
    # AISHELL: the transcript is a folder; reading it raises IsADirectoryError (no SuiteError): a "bug"
    transcript = next((root / "data_aishell").rglob("aishell_transcript_v0.8.txt"))
    transcript.unlink()
    transcript.mkdir()
    return root, outside


SUITES = ["MME", "MMBench_DEV_EN", "MathVista_MINI", "Video-MME_8frame", "LibriSpeech_test_clean",
          "AISHELL1_test", "WenetSpeech_test_net", "ASR_manifest"]


def test_damaged_suites_fail_alone_and_everything_else_is_scored(tmp_path: Path) -> None:
    root, _ = _damaged_root(tmp_path)
    out = tmp_path / "run"
    for suite in ("AISHELL1_test", "MME"):  # results of an older run, which must not look current
        fsio.write_json(out / suite / "scores.json", {"suite": suite, "metrics": {"old": 1.0}, "notes": ["OLD"]})
    _run(["run", "--suites", *SUITES, "--data-root", str(root), "--out", str(out), "--max-new-tokens", "2",
          "--set", "check_md5=false"], expect=1)  # 1: a suite could not be run
    scores = {suite: _scores(out, suite) for suite in SUITES}
    for suite, s in scores.items():
        assert "OLD" not in s["notes"], suite
        assert bool(s["metrics"]) == (suite != "AISHELL1_test"), (suite, s["notes"])
    aishell = scores.pop("AISHELL1_test")
    assert aishell["warnings"] == [f"AISHELL1_test: cannot be run: IsADirectoryError: [Errno 21] Is a directory: "
                                f"'{next((root / 'data_aishell').rglob('aishell_transcript_v0.8.txt'))}'"]
    assert json.loads((out / "AISHELL1_test" / "scores.previous.json").read_text())["notes"] == ["OLD"]
    expected = {
        "MME": ["2: ", "empty image cell", "3: ", "refers to row index=2, whose image cell is empty"],
        "MMBench_DEV_EN": ["q5: index 'q5' is not an integer"],
        "MathVista_MINI": ["2: choices cell is not a list literal"],
        "Video-MME_8frame": [ESCAPE],
        "LibriSpeech_test_clean": ["not UTF-8 (byte 0xff", ESCAPE],
        "WenetSpeech_test_net": ["runs past the end of its audio"],
        "ASR_manifest": ["line 1: not UTF-8", ESCAPE, "empty reference text"],
    }
    for suite, parts in expected.items():
        reasons = _reasons(scores[suite])
        assert all(part in reasons for part in parts), (suite, reasons)
        assert scores[suite]["n_failed"] < scores[suite]["n"], suite
    assert scores["Video-MME_8frame"]["n_failed"] == 3  # the three questions of the escaping video
    report = (out / "report.md").read_text()
    assert "AISHELL1_test" in report and "cannot be run" in report


# ------------------------------------------------------------------ kills at the moment of writing, damage
def test_a_kill_in_the_middle_of_a_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    fsio.write_json(target, {"old": 1})
    code = ("import os, signal, sys\nfrom vita_eval import fsio\n"
            "with fsio.atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_text('{\"new\": ')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=REPO, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert fsio.read_json(target) == {"old": 1}


def test_torn_record_tail_is_dropped_and_the_next_record_starts_a_fresh_line(tmp_path: Path, caplog) -> None:
    path = tmp_path / "samples.rank0.jsonl"
    rec = SampleRecord(uid="1", prompt_hash="h", raw="Yes", answer="Yes")
    path.write_text(json.dumps(asdict(rec)) + "\n" + '{"uid": "2", "prompt_hash": "h", "ra')  # killed mid-line
    with caplog.at_level(logging.WARNING):
        writer = RecordWriter(path)
    writer.write(SampleRecord(uid="3", prompt_hash="h", raw="No", answer="No"))
    writer.close()
    assert "dropped a torn last line" in caplog.text
    assert [json.loads(line)["uid"] for line in path.read_text().splitlines()] == ["1", "3"]
    assert set(read_records(tmp_path)) == {"1", "3"}  # "2" is simply redone


def test_damaged_metadata_and_torn_records_resume(tmp_path: Path, caplog) -> None:
    """What in-place writes left after a kill: 0-byte metadata and results, a torn record line."""
    out = tmp_path / "run"
    _run(_mme(out))
    before = _scores(out, "MME")
    suite = out / "MME"
    for path in [out / "run.json", suite / "fingerprint.json", suite / "scores.json", suite / "per_sample.jsonl",
                 *suite.glob("*.xlsx")]:
        path.write_bytes(b"")
    (suite / "samples.rank0.jsonl").write_text('{"uid": "0", "prompt_hash": "ab')
    with caplog.at_level(logging.WARNING):
        _run(_mme(out))
    assert "run.json is damaged" in caplog.text and "fingerprint.json is damaged" in caplog.text
    assert "treating it as absent" in caplog.text
    after = _scores(out, "MME")
    assert after["metrics"] == before["metrics"] and after["n_failed"] == 0
    assert len(read_records(suite)) == 4
    stale = [json.loads(line) for p in suite.glob("stale-*samples.jsonl") for line in p.read_text().splitlines()]
    assert len(stale) == 4  # set aside (the damaged fingerprint cannot vouch for them), never deleted
    assert json.loads((out / "run.json").read_text())["finished"]


# ------------------------------------------------------------------ two processes, one run directory
def test_second_process_on_a_run_directory_exits_saying_so(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with lock_run_dir(out):
        with pytest.raises(RunDirBusy, match=f"pid {os.getpid()}"):
            lock_run_dir(out)
    lock_run_dir(out).release()  # released with its holder: free again

    first = subprocess.Popen(CLI + _mme(out, "--batch-size", "1"), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        holder = fsio.read_json(out / ".lock") if (out / ".lock").exists() else None
        if isinstance(holder, dict) and holder.get("pid") == first.pid:
            break
        time.sleep(0.1)
    assert first.poll() is None, first.stderr.read()[-3000:]
    os.kill(first.pid, signal.SIGSTOP)  # the first run holds the directory (frozen mid-run)
    try:
        second = subprocess.run(CLI + _mme(out), capture_output=True, text=True, cwd=REPO, timeout=900)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 1
    assert f"is in use by another vita-eval process (pid {first.pid}" in second.stderr
    assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    assert len(read_records(out / "MME")) == 4 and _scores(out, "MME")["n_failed"] == 0

    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert cli.main(_mme(out, "--max-new-tokens", "3")) == 2  # other settings: refused before the model loads
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == before
    assert cli.main(_mme(out, "--max-new-tokens", "3", "--force")) == 0  # the old run moved aside, whole
    (aside,) = tmp_path.glob("run.replaced-*")
    assert len(read_records(aside / "MME")) == 4
    assert json.loads((out / "MME" / "fingerprint.json").read_text())["max_new_tokens"] == 3
