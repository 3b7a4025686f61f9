"""Preparation in worker processes gives the records of preparation on threads, failures included."""
from __future__ import annotations

import re
import shutil
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from vita_eval import registry
from vita_eval.models.vita import VitaModel, resolve_model_path
from vita_eval.runner.distributed import Dist
from vita_eval.runner.inference import infer_suite
from vita_eval.runner.prepare_pool import travels
from vita_eval.runner.records import read_records
from vita_eval.suites import data_path, get_suite, load_suite_data

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "benchmarks" / "samples"
SUITES = ["MME", "Video-MME_8frame", "LibriSpeech_test_clean"]


@pytest.fixture(scope="module")
def models():
    path = resolve_model_path("builtin:tiny")
    threads = VitaModel(path, device="cpu", dtype="fp32", engine="fast", prepare_processes=0)
    processes = VitaModel(path, device="cpu", dtype="fp32", engine="fast", loaded=threads.engine,
                          prepare_processes=2)
    yield threads, processes
    if processes.prepare_pool is not None:  # started by the first suite that used it
        processes.prepare_pool.close()


def _run(model: VitaModel, suite: str, root: Path, out: Path, preset=None) -> dict:
    spec = get_suite(suite)
    samples = load_suite_data(spec, data_path(spec, root)).samples[:8]
    infer_suite(model, spec, samples, out, preset=preset or registry.get("preset", spec.preset),
                preset_args=dict(spec.preset_args), batch_size=1, max_new_tokens=5, dist=Dist())
    return {uid: {k: _no_address(v) for k, v in asdict(r).items() if k != "time_s"} for uid, r in read_records(out).items()}


def _no_address(value):
    """PIL names the buffer object in its error ("<_io.BytesIO object at 0x7f...>"): not a difference."""
    return re.sub(r" at 0x[0-9a-f]+", "", value) if isinstance(value, str) else value


@pytest.mark.parametrize("suite", SUITES)
def test_processes_give_the_records_of_threads(models, suite: str, tmp_path: Path) -> None:
    threads, processes = models
    want = _run(threads, suite, SAMPLES, tmp_path / "threads")
    got = _run(processes, suite, SAMPLES, tmp_path / "processes")
    assert got == want and len(got) >= 5
    assert all(r["error"] is None and r["prompt_hash"] for r in got.values())


def test_a_bad_sample_fails_alone_in_a_worker_process(models, tmp_path: Path) -> None:
    threads, processes = models
    root = tmp_path / "data"
    shutil.copytree(SAMPLES, root, ignore=shutil.ignore_patterns("*.mp4", "LibriSpeech*", "*.flac"))
    table = pd.read_csv(root / "MME.tsv", sep="\t", dtype=str, keep_default_na=False)
    table.loc[0, "image"] = "this is not base64 at all" * 4
    table.to_csv(root / "MME.tsv", sep="\t", index=False)
    want = _run(threads, "MME", root, tmp_path / "threads")
    got = _run(processes, "MME", root, tmp_path / "processes")
    assert got == want
    bad = [r for r in got.values() if r["error"]]
    assert len(bad) >= 1 and all(r["error"].startswith("input: ") and "base64" in r["error"] for r in bad)
    assert sum(r["error"] is None for r in got.values()) == len(got) - len(bad) > 0


def test_suites_go_to_processes_by_media_kind(models) -> None:
    threads, processes = models
    image, audio = (load_suite_data(get_suite(n), data_path(get_suite(n), SAMPLES)).samples[:2]
                    for n in ("MME", "LibriSpeech_test_clean"))
    assert threads.prepare_pool_for(audio) is None  # no processes at all
    default = VitaModel(processes.path, device="cpu", dtype="fp32", engine="fast", loaded=threads.engine,
                        prepare_processes=1)
    try:
        assert default.prepare_pool is None  # no workers until a suite needs them
        assert default.prepare_pool_for([]) is None and default.prepare_pool is None  # no media: threads
        assert default.prepare_pool_for(image) is default.prepare_pool is not None  # uint8 tiles travel well
        assert default.prepare_pool_for(audio) is default.prepare_pool
        default.process_media = {"audio"}
        assert default.prepare_pool_for(image) is None
    finally:
        if default.prepare_pool is not None:
            default.prepare_pool.close()


def test_a_preset_that_does_not_pickle_is_prepared_on_threads(models, tmp_path: Path) -> None:
    threads, processes = models
    spec = get_suite("MME")
    preset = registry.get("preset", spec.preset)
    local = lambda sample, spec, args: preset(sample, spec, args)  # noqa: E731 - the point: no pickling
    assert not travels(local, [])
    want = _run(threads, "MME", SAMPLES, tmp_path / "threads")
    got = _run(processes, "MME", SAMPLES, tmp_path / "processes", preset=local)
    assert got == want


def test_ranks_on_one_host_split_the_cores(monkeypatch) -> None:
    from vita_eval.models import vita

    monkeypatch.setattr(vita.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert vita._cores() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun --nproc-per-node 4
    assert vita._cores() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert vita._cores() == 1
