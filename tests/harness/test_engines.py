"""Engines through the runner: fast == reference records (fp32), across a resume and under torchrun."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from vita_eval.runner.distributed import Dist
from vita_eval.runner.schedule import Prefetcher, group_samples
from vita_eval.suites import data_path, get_suite, load_suite_data

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "benchmarks" / "samples"
CLI = [sys.executable, "-m", "vita_eval.cli"]
SUITES = ["MME", "Video-MME_8frame", "LibriSpeech_test_clean"]
FIELDS = ("uid", "prompt_hash", "raw", "answer", "n_prompt_tokens", "n_new_tokens", "error")


def _args(out: Path, engine: str, suites=SUITES) -> list[str]:
    return ["run", "--suites", *suites, "--data-root", str(SAMPLES), "--out", str(out), "--engine", engine,
            "--max-new-tokens", "6", "--limit", "8", "--no-report", "--set", "check_md5=false"]


def _records(run: Path, suite: str) -> dict[str, dict]:
    lines = (run / suite / "samples.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == len({r["uid"] for r in rows})  # nothing duplicated
    return {r["uid"]: {k: r[k] for k in FIELDS} for r in rows}


def test_fast_equals_reference_through_the_runner_and_across_a_resume(tmp_path: Path) -> None:
    ref, resumed = tmp_path / "reference", tmp_path / "resumed"
    proc = subprocess.run(CLI + _args(ref, "reference"), capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # a fast run resumes a directory in which the reference engine recorded the first samples of each suite
    shutil.copytree(ref, resumed)
    for suite in SUITES:
        first = (ref / suite / "samples.jsonl").read_text().splitlines()[:3]
        (resumed / suite / "samples.jsonl").write_text("\n".join(first) + "\n")
    proc = subprocess.run(CLI + _args(resumed, "fast"), capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for suite in SUITES:
        want, got = _records(ref, suite), _records(resumed, suite)
        assert got == want, suite
        assert all(r["error"] is None for r in got.values()), suite
        scores = json.loads((resumed / suite / "scores.json").read_text())
        assert scores["n_resumed"] == 3 and scores["n_inferred_now"] == len(got) - 3
    assert json.loads((ref / "run.json").read_text())["engine"] == "reference"
    assert json.loads((resumed / "run.json").read_text())["engine"] == "fast"


def test_torchrun_two_gloo_ranks_merge_the_records_of_one_process(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    suites = ["MME", "Video-MME_8frame"]
    proc = subprocess.run(CLI + _args(one, "fast", suites), capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
           "-m", "vita_eval.cli", *_args(two, "fast", suites)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for suite in suites:
        assert _records(two, suite) == _records(one, suite), suite
        assert not list((two / suite).glob("samples.rank*.jsonl"))  # rank 0 merged them
        a, b = (json.loads((run / suite / "scores.json").read_text()) for run in (one, two))
        assert a["metrics"] == b["metrics"] and a["n"] == b["n"]
    assert json.loads((two / "run.json").read_text())["world_size"] == 2


def test_groups_stay_whole_on_one_rank_and_ranks_balance() -> None:
    spec = get_suite("MMBench_DEV_EN")
    samples = load_suite_data(spec, data_path(spec, SAMPLES)).samples
    groups = group_samples(samples)
    assert len(groups) < len(samples) and all(len({s.fields["question"] for s in g}) == 1 for g in groups)
    for world in (2, 3):
        shards = [Dist(rank=r, world=world).shard_groups(groups) for r in range(world)]
        uids = [s.uid for shard in shards for g in shard for s in g]
        assert sorted(uids) == sorted(s.uid for s in samples)  # all, once
        sizes = [sum(len(g) for g in shard) for shard in shards]
        assert max(sizes) - min(sizes) <= max(len(g) for g in groups)
        assert all(g in groups for shard in shards for g in shard)  # whole groups only


def test_mme_questions_of_one_image_form_a_group() -> None:
    spec = get_suite("MME")
    samples = load_suite_data(spec, data_path(spec, SAMPLES)).samples
    groups = group_samples(samples)
    assert len(groups) == len(samples) // 2 and all(len(g) == 2 for g in groups)


def test_prefetcher_keeps_order_and_bounds_lookahead() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        return i * i

    pre = Prefetcher(range(50), work, workers=3, lookahead=4)
    try:
        assert pre.get() == 0
        assert len(started) <= 6  # at most lookahead (+ the one handed out and its refill) ahead
        out = [0]
        while (r := pre.get()) is not None:
            out.append(r)
        assert out == [i * i for i in range(50)]
    finally:
        pre.close()
    inline = Prefetcher(range(3), work, workers=0, lookahead=4)
    assert inline.poll() is None and [inline.get(), inline.get(), inline.get(), inline.get()] == [0, 1, 4, None]
