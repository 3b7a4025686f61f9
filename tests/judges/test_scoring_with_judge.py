"""A suite scored through `vita-eval score` with the judge served by `judge serve` on 127.0.0.1."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vita_eval.judges.server import JudgeHTTPServer
from vita_eval.reports.compare import write_report
from vita_eval.runner.rescore import rescore

SAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "samples"


def _predictions(tmp_path: Path) -> Path:
    table = pd.read_csv(SAMPLES / "MathVista_MINI.tsv", sep="\t").drop(columns=["image"])
    table["prediction"] = "Let me think step by step about the picture first."  # nothing to prefetch
    path = tmp_path / "tiny_MathVista_MINI.xlsx"
    table.to_excel(path, index=False)
    return path


def test_mathvista_judged_through_the_served_endpoint_then_cached(judge_server: JudgeHTTPServer, tmp_path: Path,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-SECRET-never-written")
    preds, cache = _predictions(tmp_path), tmp_path / "judge-cache"
    kwargs = dict(profile="vlmevalkit-2026.08", judge="tiny-qwen", judge_base_url=judge_server.base_url,
                  judge_cache=str(cache))
    first = rescore("MathVista_MINI", SAMPLES / "MathVista_MINI.tsv", preds, out=tmp_path / "a" / "MathVista_MINI", **kwargs)
    n = first["n"]
    assert first["judge"]["identity"].startswith("tiny-qwen @ http://127.0.0.1")
    assert first["judge"]["calls"] + first["judge"]["cache_hits"] >= n  # identical prompts may share a call
    requests_before = judge_server.request_count
    second = rescore("MathVista_MINI", SAMPLES / "MathVista_MINI.tsv", preds, out=tmp_path / "b" / "MathVista_MINI",
                     **kwargs)
    # re-scoring never pays twice: only VLMEvalKit's one 'hello' working() probe goes out, no prompt
    assert second["judge"]["calls"] <= 1 and second["judge"]["cache_hits"] >= n
    assert judge_server.request_count - requests_before <= 1
    assert second["metrics"] == first["metrics"]
    report = write_report([tmp_path / "a"], out=tmp_path / "report", n_boot=50)
    assert "tiny-qwen @ http://127.0.0.1" in report.read_text()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(b"sk-SECRET" in p.read_bytes() for p in written)
    assert "sk-SECRET" not in json.dumps(first)
