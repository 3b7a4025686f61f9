"""Reports on nested metrics (Video-MME keeps VLMEvalKit's rating-dict nesting in scores.json): rows are
named by key paths, CIs and paired tests come from the scorer's own aggregate on the same names."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from vita_eval.reports.compare import compare_runs, load_runs
from vita_eval.runner.rescore import rescore

SAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "samples"


def _scored_run(tmp_path: Path, name: str, wrong: int) -> Path:
    """The sample Video-MME parquet scored from an xlsx whose first `wrong` answers are wrong."""
    raw = pd.read_parquet(SAMPLES / "Video-MME" / "videomme" / "test-00000-of-00001.parquet")
    answers = [("A" if a != "A" else "B") if i < wrong else a for i, a in enumerate(raw["answer"])]
    xlsx = tmp_path / f"{name}.xlsx"
    pd.DataFrame({"index": range(len(raw)), "prediction": answers}).to_excel(xlsx, index=False)
    run = tmp_path / name
    rescore("Video-MME_8frame", SAMPLES / "Video-MME", xlsx, profile="vlmevalkit-2026.08", judge="none",
            judge_base_url=None, out=run / "Video-MME_8frame")
    return run


def test_nested_videomme_metrics_get_path_names_cis_and_paired_tests(tmp_path: Path) -> None:
    base, other = _scored_run(tmp_path, "base", 0), _scored_run(tmp_path, "other", 4)
    comparison = compare_runs(load_runs([base, other], None), n_boot=200)
    rows = {(r.group, r.metric): r for r in comparison.rows}
    headline = rows[("headline", "overall / overall")]
    assert headline.estimates["base"].value == 1.0 and headline.estimates["base"].ci == (1.0, 1.0)
    assert headline.estimates["other"].value == 5 / 9 and headline.diffs["other"].p is not None
    assert ("duration", "short / overall") in rows and any(g == "domain" for g, _ in rows)
    assert not [w for w in comparison.warnings if "aggregate" in w or "no confidence" in w]
