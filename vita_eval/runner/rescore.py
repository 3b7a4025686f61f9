"""`vita-eval score`: score an existing prediction file (ours or VLMEvalKit's) without a model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vita_eval.config import RunConfig
from vita_eval.data.checksums import file_md5
from vita_eval.judges.base import suite_session
from vita_eval.runner.scoring import score_suite
from vita_eval.scorers.predictions import read_predictions
from vita_eval.suites import get_suite, load_suite_data


def rescore(suite: str, data: Path, predictions: Path, *, profile: str, judge: str | None,
            judge_base_url: str | None, out: Path, asr_normalizer: str | None = None,
            judge_cache: str | None = None, judge_budget_s: float | None = RunConfig.judge_budget_s) -> dict[str, Any]:
    spec = get_suite(suite)
    suite_data = load_suite_data(spec, data)
    judge_obj = None
    if judge and judge not in ("none", "exact_matching"):
        from vita_eval.judges.factory import build_judge

        judge_obj = build_judge(judge, base_url=judge_base_url, cache_dir=judge_cache)
        judge_obj = suite_session(judge_obj, judge_budget_s)
    extra = {"predictions_file": str(predictions), "predictions_md5": file_md5(predictions),
             "data_files": suite_data.files or ({str(data): file_md5(data)} if data.is_file() else {})}
    return score_suite(spec, suite_data, read_predictions(predictions), out, profile=profile, judge=judge_obj,
                       model_name=None, extra=extra, asr_normalizer=asr_normalizer)
