"""The report's row model and its cells: what markdown, plots and HTML all render.

A `Comparison` holds every run and one `MetricComparison` row per (suite, metric);
the cell helpers format a row's numbers once, so a value reads the same in a table,
on a bar label and in a heatmap cell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vita_eval.reports.metrics import scale_of
from vita_eval.reports.stats import Estimate, MetricComparison, PairedDiff

if TYPE_CHECKING:
    from vita_eval.reports.rundir import Run

FLAG = "✱"


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test of one run against the baseline on one suite."""

    p: float
    column: str
    n_pairs: int


@dataclass
class Comparison:
    """Everything the renderers need: runs, table rows, suite-level tests and loud warnings."""

    runs: list[Run]
    rows: list[MetricComparison] = field(default_factory=list)
    mcnemar: dict[tuple[str, str], McNemar] = field(default_factory=dict)  # (suite, run label) -> test
    warnings: list[str] = field(default_factory=list)  # the Attention section: problems a reader must see first
    notes: list[str] = field(default_factory=list)  # limits of the statistics (e.g. no CI without per_sample)

    @property
    def baseline(self) -> Run:
        return self.runs[0]

    @property
    def labels(self) -> list[str]:
        return [run.label for run in self.runs]


def format_number(x: float, places: int | None = None) -> str:
    """2 decimals for point-scale values (MME 1728.86, WER 7.50), 4 for fractions (MMBench 0.7779)."""
    if not math.isfinite(x):
        return "nan"
    if places is None:
        places = 2 if abs(x) >= 10 else 4
    return f"{x:.{places}f}"


def row_places(row: MetricComparison) -> int:
    """One precision per table row so values, CIs and Δ line up.

    A metric stored as a string keeps its own decimals (Video-MME "0.583" -> 3); numbers get their
    scale's: 2 for points and percentages (MME 1728.86, WER 7.50), 4 for fractions (MMBench 0.7779),
    0 for counts. Metrics of unknown scorers fall back to their magnitude.
    """
    present = [e for e in row.estimates.values() if e is not None]
    for estimate in present:
        if isinstance(estimate.shown, str) and "." in estimate.shown:
            return len(estimate.shown.split(".")[1])
    scale = scale_of(row.scorer, row.metric)
    if scale is not None:
        return scale.places
    largest = max((abs(e.value) for e in present if math.isfinite(e.value)), default=0.0)
    return 2 if largest >= 10 else 4


def format_shown(value: Any, places: int | None = None) -> str:
    """A stored metric as stored: numbers through format_number, anything else (Video-MME's strings) verbatim."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(float(value), places)
    return str(value)


def estimate_cell(estimate: Estimate | None, places: int | None = None) -> str:
    if estimate is None:
        return "—"
    shown = format_shown(estimate.shown, places)
    if estimate.ci is None:
        return shown
    low, high = estimate.ci
    return f"{shown} [{format_number(low, places)}, {format_number(high, places)}]"


def signed(x: float, places: int | None = None) -> str:
    return ("+" if x >= 0 else "") + format_number(x, places) if math.isfinite(x) else "nan"


def delta_cell(diff: PairedDiff | None, places: int | None = None, *, with_ci: bool = True) -> str:
    """Δ [95% CI of Δ] ✱ - the CI comes from the same paired bootstrap as p."""
    if diff is None:
        return "—"
    text = signed(diff.delta, places)
    if with_ci and diff.ci is not None:
        text += f" [{signed(diff.ci[0], places)}, {signed(diff.ci[1], places)}]"
    return f"{text} {FLAG}" if diff.significant else text


def p_cell(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"
