"""The table `vita-eval run` prints at its end: suite, headline metric, value, n, failed."""
from __future__ import annotations

from typing import Any, Mapping

from vita_eval.reports.metrics import format_value, metric_name, scale_of, with_unit
from vita_eval.scorers.base import flat_metrics

STATUS_TEXT = {"not_run": "NOT RUN", "not_scored": "NOT SCORED"}


def _rows(name: str, scores: Mapping[str, Any]) -> list[list[str]]:
    status = scores.get("status", "scored")
    n, failed = str(scores.get("n", "")), str(scores.get("n_failed", ""))
    partial = scores.get("partial")
    flag = f"partial ({partial['n']} of {partial['of']})" if partial else ""
    metrics = flat_metrics(scores.get("metrics") or {})
    if status in STATUS_TEXT:
        return [[name, STATUS_TEXT[status], "—", n, failed, flag]]
    headline = [m for m in scores.get("headline") or list(metrics)[:1] if m in metrics]
    if not headline:
        return [[name, "no score (see notes)", "—", n, failed, flag]]
    scorer = scores.get("scorer")
    return [[name, metric_name(scorer, m), with_unit(format_value(metrics[m], scale_of(scorer, m)),
                                                     scale_of(scorer, m)), n, failed, flag] for m in headline]


def results_table(suites: Mapping[str, Mapping[str, Any]]) -> str:
    """Plain-text table, one line per headline metric of every suite, columns aligned."""
    rows = [["suite", "metric", "value", "n", "failed", ""]]
    for name, scores in suites.items():
        rows += _rows(name, scores)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2, 3, 4}
    lines = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    return "\n".join(line.rstrip() for line in lines)
