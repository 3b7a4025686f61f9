"""A newcomer's first hour: mistakes fail fast with one line, runs never overwrite each other, output reads well.

The CLI runs in process (`vita_eval.cli.main`) with the model loader replaced by one that fails
the test, so "before any model loads" is checked, not assumed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vita_eval import cli
from vita_eval.runner import run as run_module

SAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "samples"


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded although the command should have failed first")

    monkeypatch.setattr(run_module, "load_model", refuse)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LMUData", raising=False)
    return tmp_path


def fails_fast(capsys: pytest.CaptureFixture, argv: list[str], *expected: str) -> str:
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["run", "--suites", "MMBench_DEV_EN", "MMEE"], ["unknown suite 'MMEE'", "did you mean 'MME'"]),
    (["run", "--suites", "mme,mmbnch_dev_en"], ["unknown suite 'mmbnch_dev_en'", "'MMBench_DEV_EN'"]),
    (["run", "--suites", "MME", "--profile", "vlmevalkit-2025"], ["unknown profile 'vlmevalkit-2025'", "ls profiles"]),
    (["run", "--set", "batch_size=abc"], ["batch_size must be an integer, got 'abc'"]),
    (["run", "--set", "batchsize=3"], ["unknown config key 'batchsize'", "did you mean 'batch_size'"]),
    (["run", "--model", "/no/such/ckpt", "--suites", "MME"], ["model directory not found: /no/such/ckpt"]),
    (["run", "--limit", "0"], ["limit must be at least 1"]),
    (["run", "--suites", "MME", "--data", "MMEE=/x"], ["--data names suites that are not in this run: MMEE"]),
    (["run", "--config", "missing.yaml"], ["cannot read config file missing.yaml"]),
])
def test_mistakes_are_one_line_before_the_model_loads(argv, expected, no_model, in_tmp, capsys) -> None:
    fails_fast(capsys, argv, *expected)
    assert not (in_tmp / "outputs").exists()


def test_cuda_without_cuda(no_model, in_tmp, capsys, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fails_fast(capsys, ["run", "--device", "cuda"], "--device cuda: no CUDA device is available")


def test_judge_without_api_key(no_model, in_tmp, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    fails_fast(capsys, ["run", "--suites", "MME", "--judge", "gpt-4o-mini"], "OPENAI_API_KEY is not set")


def test_missing_data_names_the_suites_and_the_fix(no_model, in_tmp, capsys, monkeypatch) -> None:
    (in_tmp / "empty").mkdir()
    monkeypatch.setenv("LMUData", str(in_tmp / "empty"))
    err = fails_fast(capsys, ["run", "--model", "builtin:tiny", "--suites", "MME", "MathVista_MINI"],
                     "data not found for MME", "MathVista_MINI", "--data-root")
    assert str(in_tmp / "empty" / "MME.tsv") in err


def test_report_on_a_folder_that_is_not_a_run(in_tmp, capsys) -> None:
    (in_tmp / "notarun").mkdir()
    fails_fast(capsys, ["report", "notarun", "--out", "rep"], "notarun has no <suite>/scores.json",
               "not a vita-eval run directory")


def test_ctrl_c_says_how_to_resume(in_tmp, capsys, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "infer_suite", interrupted)
    assert cli.main(["run", "--suites", "MME", "--limit", "2", "--no-report"]) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "re-run the same command to resume" in err and "Traceback" not in err


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_configuration_never_touches_the_first_run(in_tmp, capsys) -> None:
    assert cli.main(["run", "--suites", "MME", "--limit", "4", "--no-report"]) == 0
    first_out = capsys.readouterr().out
    (first,) = list((in_tmp / "outputs" / "tiny-vita").iterdir())
    assert f"output   outputs/tiny-vita/{first.name} (new run" in first_out
    assert "data     bundled sample suites" in first_out.splitlines()[3]  # the data source, in the first lines
    before = snapshot(first)

    assert cli.main(["run", "--suites", "MME", "--limit", "6", "--no-report"]) == 0  # another configuration
    assert len(list((in_tmp / "outputs" / "tiny-vita").iterdir())) == 2
    assert snapshot(first) == before

    assert cli.main(["run", "--suites", "MME", "--out", str(first), "--no-report"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "holds a run with other settings (limit: 4 -> None)" in err and "--force" in err and "--resume" in err
    assert snapshot(first) == before

    assert cli.main(["run", "--suites", "MME", "--limit", "4", "--no-report"]) == 0  # the same command resumes
    assert "resuming, 4 samples already recorded" in capsys.readouterr().out
    assert cli.main(["run", "--resume", str(first), "--no-report"]) == 0
    assert "resuming" in capsys.readouterr().out

    assert cli.main(["run", "--suites", "MME", "--out", str(first), "--force", "--no-report"]) == 0
    (aside,) = list(first.parent.glob(f"{first.name}.replaced-*"))  # moved, not deleted
    moved = snapshot(aside)
    assert set(before) <= set(moved) and moved["MME/samples.jsonl"] == before["MME/samples.jsonl"]
    assert json.loads((first / "results.json").read_text())["suites"]["MME"]["partial"] is None  # the full run


def test_limit_takes_whole_images_scores_them_and_marks_partial(in_tmp, capsys) -> None:
    assert cli.main(["run", "--suites", "mme", "--limit", "5", "--no-report", "--out", "lim"]) == 0
    out = capsys.readouterr().out
    scores = json.loads((in_tmp / "lim" / "MME" / "scores.json").read_text())
    assert scores["partial"] == {"n": 6, "of": 28} and scores["n"] == 6  # 5 rounded up to 3 whole images
    assert scores["metrics"]["perception"] >= 0 and scores["status"] == "scored"
    assert any("partial" in w for w in scores["warnings"])
    assert "partial (6 of 28)" in out and "suite" in out and "failed" in out  # the results table
    results = json.loads((in_tmp / "lim" / "results.json").read_text())
    assert results["suites"]["MME"]["partial"] == {"n": 6, "of": 28} and results["failed_suites"] == {}
    records = [json.loads(line) for line in (in_tmp / "lim" / "MME" / "log_samples.jsonl").read_text().splitlines()]
    assert len(records) == 6
    for record in records:
        assert {"uid", "question", "reference", "raw", "prediction", "scoring", "error"} <= set(record)
        assert record["scoring"]["extracted"] in ("Yes", "No", "Unknown") and record["scoring"]["score"] in (0, 1)


def test_a_suite_that_cannot_be_run_exits_non_zero_and_is_named(in_tmp, capsys) -> None:
    root = in_tmp / "data"
    root.mkdir()
    (root / "MME.tsv").write_text("index\tquestion\n0\tno image column\n")
    (root / "MathVista_MINI.tsv").write_bytes((SAMPLES / "MathVista_MINI.tsv").read_bytes())
    argv = ["run", "--model", "builtin:tiny", "--suites", "MME", "MathVista_MINI", "--data-root", str(root),
            "--limit", "2", "--max-new-tokens", "2", "--no-report", "--out", "bad"]
    assert cli.main(argv) == cli.EXIT_FAILED_SUITES
    captured = capsys.readouterr()
    assert "FAILED MME: " in captured.err and "NOT RUN" in captured.out
    assert json.loads((in_tmp / "bad" / "MathVista_MINI" / "scores.json").read_text())["status"] == "scored"


def options(command: str) -> list[argparse.Action]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [a for a in sub.choices[command]._actions if a.option_strings and a.dest != "help"]


@pytest.mark.parametrize("command", ["run", "score", "report", "data", "model-dump"])
def test_every_flag_has_help_with_its_default(command: str) -> None:
    for action in options(command):
        assert action.help and ("default" in action.help or "required" in action.help), (command, action.dest)


def test_ls_profiles_describes_each_profile(capsys) -> None:
    assert cli.main(["ls", "profiles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("matcher generation" in ln and "default judges" in ln for ln in lines)
    assert any("(default)" in ln and "vlmevalkit-2026.08" in ln for ln in lines)


def test_model_dump_on_the_builtin_model(in_tmp, capsys) -> None:
    assert cli.main(["model-dump", "--model", "builtin:tiny", "--prompt", "Hello", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "wrote model_dump.safetensors (safetensors: " in out and "input_ids" in out and "generated text: '" in out
    assert (in_tmp / "model_dump.safetensors").is_file()


def test_vita_train_help_is_instant_and_describes_the_recipe() -> None:
    code = ("import sys; from vita15.train.cli import build_parser, describe_config, find_config; build_parser(); "
            "print(describe_config(find_config('tiny'))); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")  # argument parsing imports no torch
    assert "stages: 1.1 -> 1.2 -> 1.3 -> 2.1 -> 2.2" in out and "benchmarks/models/tiny-vita" in out


def test_vita_train_tiny_without_espeak_is_one_line(in_tmp, monkeypatch) -> None:
    from vita15.train import cli as train_cli

    monkeypatch.setattr(train_cli.shutil, "which", lambda tool: None if tool == "espeak-ng" else "/usr/bin/" + tool)
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["--recipe", "tiny"])
    message = str(exit_info.value)
    assert message.startswith("vita-train: error: tiny.yaml builds its synthetic training speech")
    assert "espeak-ng is not installed" in message and "apt-get install espeak-ng sox" in message
    assert "\n" not in message
