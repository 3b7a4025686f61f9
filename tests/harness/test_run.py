"""End-to-end runs of `vita-eval run` on the bundled samples: default, resume after SIGKILL, torchrun, bad input."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "benchmarks" / "samples"
CLI = [sys.executable, "-m", "vita_eval.cli"]


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=REPO, timeout=600, **kw)


def _scores(run_dir: Path, suite: str) -> dict:
    return json.loads((run_dir / suite / "scores.json").read_text())


def _uids(run_dir: Path, suite: str) -> list[str]:
    return [json.loads(line)["uid"] for line in (run_dir / suite / "samples.jsonl").read_text().splitlines()]


def test_embedded_default_end_to_end(tmp_path: Path) -> None:
    """`vita-eval run` with no data or checkpoint: every sample suite is scored and reported."""
    out = tmp_path / "default"
    started = time.perf_counter()
    proc = _run(["run", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    wall = time.perf_counter() - started
    suites = ["MME", "MMBench_DEV_EN", "MathVista_MINI", "Video-MME_8frame", "Video-MME_vita_subs",
              "LibriSpeech_test_clean", "AISHELL1_test", "WenetSpeech_test_net", "ASR_manifest",
              "LibriSpeech_test_clean_speech"]
    for suite in suites:
        scores = _scores(out, suite)
        assert scores["metrics"], (suite, scores["notes"])
        assert scores["n"] > 0 and scores["n_failed"] == 0, (suite, scores["failures"][:3])
    speech = json.loads((out / "LibriSpeech_test_clean_speech" / "speech" / "scores.json").read_text())
    assert speech["n"] == 3 and "wer" in speech["text"] and "wer" in speech["speech"], speech["notes"]
    assert len(list((out / "LibriSpeech_test_clean_speech" / "speech").glob("*.wav"))) == 3
    assert (out / "report.md").exists() and (out / "run.json").exists()
    assert "## Speech out: what speaking costs" in (out / "report.md").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["finished"] and run["versions"]["transformers"] == "5.17.0"
    print(f"embedded default wall time: {wall:.1f} s")


def _mme_args(out: Path, extra: list[str] = ()) -> list[str]:
    return ["run", "--suites", "MME", "--data-root", str(SAMPLES), "--out", str(out), "--batch-size", "2",
            "--max-new-tokens", "16", "--no-report", "--set", "check_md5=false", *extra]


def test_resume_after_sigkill_gives_identical_scores(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _run(_mme_args(straight)).returncode == 0
    proc = subprocess.Popen(CLI + _mme_args(killed), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rank_file = killed / "MME" / "samples.rank0.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if rank_file.exists() and len(rank_file.read_text().splitlines()) >= 6:
            break
        time.sleep(0.01)  # the fast engine writes a round's records together: kill soon after the first
    assert proc.poll() is None, "run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(rank_file.read_text().splitlines())
    assert 6 <= done_before < 28
    resumed = _run(_mme_args(killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _scores(straight, "MME"), _scores(killed, "MME")
    assert a["metrics"] == b["metrics"]
    assert b["n_resumed"] >= 6 and b["n_inferred_now"] == 28 - b["n_resumed"]
    uids = _uids(killed, "MME")
    assert len(uids) == len(set(uids)) == 28  # nothing duplicated, nothing lost


def test_torchrun_two_cpu_processes_match_one(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert _run(_mme_args(one, ["--limit", "12"])).returncode == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "vita_eval.cli", *_mme_args(two, ["--limit", "12"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _scores(one, "MME")["metrics"] == _scores(two, "MME")["metrics"]
    assert sorted(_uids(two, "MME")) == sorted(_uids(one, "MME"))
    assert not list((two / "MME").glob("samples.rank*.jsonl"))  # rank 0 merged them


def _broken_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(SAMPLES, root)
    mme = pd.read_csv(root / "MME.tsv", sep="\t")
    mme.loc[0, "image"] = "this is not base64 at all" * 4  # a corrupt image cell (>64 chars)
    mme.to_csv(root / "MME.tsv", sep="\t", index=False)
    video = sorted((root / "Video-MME" / "video").glob("*.mp4"))[0]
    video.write_bytes(video.read_bytes()[:200])  # a video that fails to decode
    flac = sorted((root / "LibriSpeech" / "test-clean").rglob("*.flac"))[0]
    flac.write_bytes(b"")  # empty audio
    mmb = pd.read_csv(root / "MMBench_DEV_EN.tsv", sep="\t").drop(columns=["question"])
    mmb.to_csv(root / "MMBench_DEV_EN.tsv", sep="\t", index=False)  # a TSV missing a required column
    return root


def test_bad_input_fails_samples_not_the_run(tmp_path: Path) -> None:
    root, out = _broken_root(tmp_path), tmp_path / "bad"
    suites = ["MME", "MMBench_DEV_EN", "Video-MME_8frame", "LibriSpeech_test_clean"]
    proc = _run(["run", "--suites", *suites, "--data-root", str(root), "--out", str(out), "--max-new-tokens", "4"])
    assert proc.returncode == 1, proc.stderr[-3000:]  # one suite could not be run: the run says so and which
    assert "FAILED MMBench_DEV_EN: " in proc.stderr and "Traceback" not in proc.stderr
    mme = _scores(out, "MME")
    assert mme["n_failed"] >= 1 and any("image" in f["reason"] for f in mme["failures"])
    assert mme["metrics"]  # the other 27 rows are scored
    assert any("md5 mismatch" in w for w in mme["warnings"])  # not the file VLMEvalKit pins: said loudly
    video = _scores(out, "Video-MME_8frame")
    assert video["n_failed"] == 3 and all(".mp4" in f["reason"] for f in video["failures"])  # 3 questions per video
    asr = _scores(out, "LibriSpeech_test_clean")
    assert asr["n_failed"] == 1 and asr["metrics"]
    mmb = _scores(out, "MMBench_DEV_EN")
    assert not mmb["metrics"] and mmb["status"] == "not_run"
    assert any("question" in w for w in mmb["warnings"])  # says why it cannot be run
    report = (out / "report.md").read_text()
    assert "MMBench_DEV_EN" in report


def test_score_command_on_a_vlmevalkit_prediction_file_with_missing_rows(tmp_path: Path) -> None:
    table = pd.read_csv(SAMPLES / "MME.tsv", sep="\t").drop(columns=["image"])
    table["prediction"] = table["answer"]
    table = table.iloc[2:]  # two indices missing
    pred = tmp_path / "tiny_MME.xlsx"
    table.to_excel(pred, index=False)
    proc = _run(["score", "--suite", "MME", "--data", str(SAMPLES / "MME.tsv"), "--predictions", str(pred),
                 "--profile", "vlmevalkit-2024.12", "--judge", "none", "--out", str(tmp_path / "scored")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((tmp_path / "scored" / "scores.json").read_text())
    assert scores["profile"] == "vlmevalkit-2024.12" and scores["n_failed"] == 2
    assert {f["reason"] for f in scores["failures"]} == {"no prediction"}
    assert scores["metrics"]["perception"] > 0


def test_mmbench_test_split_writes_the_submission_file(tmp_path: Path) -> None:
    """TEST splits have no answers: inference runs, the VLMEvalKit .xlsx is written, no score is invented."""
    root, out = tmp_path / "data", tmp_path / "test-split"
    root.mkdir()
    table = pd.read_csv(SAMPLES / "MMBench_DEV_EN.tsv", sep="\t").drop(columns=["answer"])
    table.to_csv(root / "MMBench_TEST_EN.tsv", sep="\t", index=False)
    proc = _run(["run", "--suites", "MMBench_TEST_EN", "--data-root", str(root), "--out", str(out),
                 "--max-new-tokens", "4", "--no-report", "--set", "check_md5=false"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = _scores(out, "MMBench_TEST_EN")
    assert scores["metrics"] == {} and any("submission file written" in n for n in scores["notes"])
    submission = pd.read_excel(next((out / "MMBench_TEST_EN").glob("*_MMBench_TEST_EN.xlsx")))
    assert len(submission) == len(table) and submission["prediction"].notna().all()
    assert "image" not in submission.columns
