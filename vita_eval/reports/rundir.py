"""Reading run directories (docs/CONTRACTS.md) into plain objects for the report.

Reading is forgiving on purpose: a suite whose per_sample.jsonl is missing or
unreadable still contributes its scores.json numbers, and the reason why it has
no confidence interval travels with it so the report can say so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vita_eval import fsio
from vita_eval.config import ConfigError
from vita_eval.scorers.base import flat_metrics


class NotARunDirectory(ConfigError):
    """A folder given to `report` holds no scored suite."""


# Scorer notes that are warnings (the rest, such as "WER with the wenet normalizer", are settings).
ATTENTION_PHRASES = ("not working", "unavailable", "md5 mismatch", "cannot be run", "cannot be scored",
                     "judge failed", "would crash", "would refuse")


def is_attention(note: str) -> bool:
    return any(phrase in note for phrase in ATTENTION_PHRASES)


@dataclass(frozen=True)
class SuiteResult:
    """One suite of one run: scores.json as written, plus its per-sample table when usable."""

    suite: str
    scores: dict[str, Any]
    per_sample: pd.DataFrame | None
    no_ci_reason: str | None = None  # why `per_sample` is None

    @property
    def metrics(self) -> dict[str, Any]:
        """One name per value: nested metrics (Video-MME's rating layout) as `flat_metrics` key paths."""
        return flat_metrics(self.scores.get("metrics", {}))

    @property
    def headline(self) -> list[str]:
        return list(self.scores.get("headline") or list(self.metrics)[:1])

    @property
    def categories(self) -> dict[str, list[str]]:
        return self.scores.get("categories") or {}

    @property
    def scorer(self) -> str | None:
        return self.scores.get("scorer")

    @property
    def setting_notes(self) -> list[str]:
        """The scorer's notes that describe settings, not problems (provenance, not the Attention section)."""
        return [note for note in self.scores.get("notes") or [] if not is_attention(note)]


@dataclass(frozen=True)
class Run:
    """A run directory: run.json provenance and its suites, keyed by suite name."""

    path: Path
    label: str
    info: dict[str, Any]
    suites: dict[str, SuiteResult] = field(default_factory=dict)


def read_per_sample(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    """The per-sample table sorted by uid (a canonical order for bootstraps), or None and why."""
    if not path.is_file():
        return None, f"{path.name} missing"
    try:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as err:
        return None, f"{path.name} unreadable ({err})"
    frame = pd.DataFrame.from_records(records)
    missing = {"uid", "cluster"} - set(frame.columns)
    if frame.empty or missing:
        return None, f"{path.name} is empty" if frame.empty else f"{path.name} lacks columns {sorted(missing)}"
    frame["uid"] = frame["uid"].astype(str)
    frame["cluster"] = frame["cluster"].astype(str)
    return frame.sort_values("uid", kind="stable").reset_index(drop=True), None


def read_suite(suite_dir: Path) -> SuiteResult | None:
    """One suite's results; None (with a warning from fsio) when its scores.json is damaged."""
    scores = fsio.read_json(suite_dir / "scores.json")
    if not isinstance(scores, dict):
        return None
    per_sample, reason = read_per_sample(suite_dir / "per_sample.jsonl")
    suite = scores.get("suite", suite_dir.name)
    return SuiteResult(suite=suite, scores=scores, per_sample=per_sample, no_ci_reason=reason)


def read_run(path: Path, label: str | None = None) -> Run:
    """Every `<suite>/scores.json` under `path`; run.json is optional (it only feeds provenance)."""
    path = Path(path)
    run_json = path / "run.json"
    info = fsio.read_json(run_json, default={})  # damaged: no provenance, the scores still count
    suite_dirs = sorted(p.parent for p in path.glob("*/scores.json"))
    if not suite_dirs:
        what = "does not exist" if not path.exists() else "has no <suite>/scores.json"
        raise NotARunDirectory(f"{path} {what}: not a vita-eval run directory (give the folder `vita-eval run` "
                               "printed as 'run directory')")
    suites = {result.suite: result for result in map(read_suite, suite_dirs) if result is not None}
    return Run(path=path, label=label or default_label(path, info), info=info, suites=suites)


def default_label(path: Path, info: dict[str, Any]) -> str:
    """Column header for a run: its run_id, else the directory name."""
    return str(info.get("run_id") or path.name)


def unique_labels(labels: list[str]) -> list[str]:
    """Suffix repeated labels (two runs of one model) so table columns stay distinct."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out
