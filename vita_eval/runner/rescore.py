"""`vita-eval score`: score an existing prediction file (ours or VLMEvalKit's) without a model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vita_eval.config import RunConfig
from vita_eval.data.checksums import file_md5
from vita_eval.data.tsv import normalize_index, require_columns
from vita_eval.judges.base import suite_session
from vita_eval.runner.scoring import score_suite
from vita_eval.scorers.base import get_scorer, literal_text
from vita_eval.scorers.predictions import read_predictions, read_table
from vita_eval.suites import SuiteSpec, get_suite, load_suite_data
from vita_eval.types import SuiteData, SuiteError


def data_from_predictions(spec: SuiteSpec, predictions: Path) -> SuiteData:
    """The dataset rows carried by a VLMEvalKit prediction file (it writes the dataset minus `image`).

    Read as VLMEvalKit's scorer reads that file (pandas NA strings, except for ASR's literal text); the
    file must hold every column the suite's scorer reads, else `--data` is needed.
    """
    scorer = get_scorer(spec.scorer)
    needed = getattr(scorer, "data_columns", None)
    if needed is None:
        raise SuiteError(f"{spec.name}: scorer {spec.scorer!r} declares no data_columns; give --data")
    if predictions.suffix not in (".xlsx", ".tsv"):
        raise SuiteError(f"{predictions}: holds predictions only (no dataset columns); give --data")
    table = read_table(predictions, literal=literal_text(spec.scorer))
    try:
        require_columns(table, predictions, needed)
    except SuiteError as exc:
        raise SuiteError(f"{exc}; give --data (the suite's data file or folder)") from exc
    table = table.drop(columns=["prediction"], errors="ignore").assign(index=normalize_index(table, predictions))
    return SuiteData(table=table, samples=[])


def rescore(suite: str, data: Path | None, predictions: Path, *, profile: str, judge: str | None,
            judge_base_url: str | None, out: Path, asr_normalizer: str | None = None,
            judge_cache: str | None = None, judge_budget_s: float | None = RunConfig.judge_budget_s) -> dict[str, Any]:
    """Score `predictions` against the suite's data (`data`, or the rows the prediction file carries)."""
    spec = get_suite(suite)
    if not predictions.is_file():
        raise SuiteError(f"{predictions}: prediction file not found")
    suite_data = load_suite_data(spec, data) if data is not None else data_from_predictions(spec, predictions)
    judge_obj = None
    if judge and judge not in ("none", "exact_matching"):
        from vita_eval.judges.factory import build_judge

        judge_obj = suite_session(build_judge(judge, base_url=judge_base_url, cache_dir=judge_cache), judge_budget_s)
    data_files = suite_data.files or ({str(data): file_md5(data)} if data is not None and data.is_file() else {})
    extra = {"predictions_file": str(predictions), "predictions_md5": file_md5(predictions),
             "data_files": data_files or {str(predictions): file_md5(predictions)}}
    rows = read_predictions(predictions, literal=literal_text(spec.scorer))
    return score_suite(spec, suite_data, rows, out, profile=profile, judge=judge_obj,
                       model_name=None, extra=extra, asr_normalizer=asr_normalizer)
