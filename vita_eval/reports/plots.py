"""PNG plots for the report: headline bars with CI whiskers, and a per-category Δ heatmap.

Suites live on different scales (MME points, MMBench fractions, WER percent), so
each suite gets its own panel and the heatmap colours are scaled per suite;
cells are annotated with the raw Δ so nothing is lost to the normalisation.
Figures are sized in inches at a fixed DPI (no tight bbox) so pixel sizes are
predictable.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vita_eval.fsio import atomic_path  # noqa: E402
from vita_eval.reports.rows import delta_cell, row_places  # noqa: E402
from vita_eval.reports.stats import MetricComparison, lower_is_better  # noqa: E402

DPI = 100
PANEL_COLUMNS = 3
ROW_IN = 0.3  # heatmap row height
BLOCK_HEAD_IN = 0.75  # heatmap title and column labels per suite
COLUMN_IN = 1.4  # heatmap column width
CAPTION_IN = 0.5  # heatmap caption at the top
MIN_WIDTH_IN = 5.0


def headline_size(n_suites: int) -> tuple[float, float]:
    """Figure size (inches) of headline.png: a grid of one panel per suite."""
    cols = max(1, min(PANEL_COLUMNS, n_suites))
    return 4.8 * cols, 3.4 * math.ceil(max(n_suites, 1) / cols) + 0.8


def _ordered(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _bars(ax: Axes, rows: Sequence[MetricComparison], labels: Sequence[str]) -> None:
    """One group of bars per metric, one bar per run, whiskers at the 95% CI when known."""
    width = 0.8 / len(labels)
    x = np.arange(len(rows))
    for j, label in enumerate(labels):
        estimates = [row.estimates.get(label) for row in rows]
        values = np.array([e.value if e else np.nan for e in estimates])
        # a percentile CI may exclude a biased point estimate (e.g. MME acc+): whiskers then stop at the bar
        low = np.maximum([e.value - e.ci[0] if e and e.ci else np.nan for e in estimates], 0.0)
        high = np.maximum([e.ci[1] - e.value if e and e.ci else np.nan for e in estimates], 0.0)
        ax.bar(x + (j - (len(labels) - 1) / 2) * width, values, width, yerr=[low, high], capsize=3,
               color=f"C{j % 10}", label=label, error_kw={"elinewidth": 1})
    ax.set_xticks(x, [row.metric for row in rows], rotation=20, ha="right", fontsize=8)
    suite = rows[0].suite
    down = any(lower_is_better(row.metric) for row in rows)
    ax.set_title(suite + (" (lower is better)" if down else ""), fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def save_figure(fig: Figure, path: Path) -> None:
    """PNG written atomically: a kill mid-save leaves the previous image, never a 0-byte one."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")


def plot_headline(rows: Sequence[MetricComparison], labels: Sequence[str], path: Path) -> Path:
    """headline.png: per suite, its headline metrics for every run with CI whiskers."""
    rows = [r for r in rows if r.group == "headline"]
    suites = _ordered([r.suite for r in rows])
    fig = Figure(figsize=headline_size(len(suites)), dpi=DPI)
    cols = max(1, min(PANEL_COLUMNS, len(suites)))
    n_rows = math.ceil(max(len(suites), 1) / cols)
    for i, suite in enumerate(suites):
        _bars(fig.add_subplot(n_rows, cols, i + 1), [r for r in rows if r.suite == suite], labels)
    if suites:
        handles, names = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="upper center", ncol=min(len(labels), 4), fontsize=9, frameon=False)
    height = fig.get_figheight()
    fig.subplots_adjust(top=1 - 0.6 / height, bottom=0.9 / height, hspace=0.55, wspace=0.3, left=0.07, right=0.98)
    save_figure(fig, path)
    return path


def heatmap_rows(rows: Sequence[MetricComparison]) -> list[MetricComparison]:
    """Per suite, its category rows with a finite Δ; its headline rows when it has no categories (one ASR set).

    Categories no run has samples for (NaN in every run, e.g. Video-MME durations absent from a subset)
    are left out of the picture; the tables still list them.
    """
    out = []
    for suite in _ordered([r.suite for r in rows]):
        with_delta = [r for r in rows if r.suite == suite
                      and any(d is not None and np.isfinite(d.delta) for d in r.diffs.values())]
        categories = [r for r in with_delta if r.group != "headline"]
        out += categories or with_delta
    return out


def heatmap_label_in(rows: Sequence[MetricComparison]) -> float:
    longest = max((len(f"{r.group}: {r.metric}") for r in rows), default=10)
    return min(4.5, max(1.8, 0.07 * longest))


def heatmap_size(rows: Sequence[MetricComparison], n_runs: int) -> tuple[float, float]:
    """Figure size (inches) of delta_heatmap.png for these rows and `n_runs` non-baseline runs."""
    n_suites = len(_ordered([r.suite for r in rows]))
    width = max(MIN_WIDTH_IN, heatmap_label_in(rows) + COLUMN_IN * n_runs + 0.3)
    return width, CAPTION_IN + ROW_IN * len(rows) + BLOCK_HEAD_IN * n_suites + 0.2


def _improvement(rows: Sequence[MetricComparison], others: Sequence[str]) -> np.ndarray:
    """Δ with error rates sign-flipped, scaled to [-1, 1] by the block's largest |Δ|."""
    grid = np.array([[d.delta if (d := r.diffs.get(lab)) else np.nan for lab in others] for r in rows], dtype=float)
    grid *= np.array([[-1.0 if lower_is_better(r.metric) else 1.0] for r in rows])
    scale = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 0.0
    return grid / scale if scale > 0 else np.where(np.isfinite(grid), 0.0, np.nan)


def _heat_block(ax: Axes, rows: Sequence[MetricComparison], others: Sequence[str], baseline: str) -> None:
    grid = _improvement(rows, others)
    ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_facecolor("#dddddd")
    for i, row in enumerate(rows):
        for j, label in enumerate(others):
            text = delta_cell(row.diffs.get(label), row_places(row), with_ci=False)
            ink = "white" if abs(grid[i, j]) > 0.65 else "black"  # NaN compares False: black on grey
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=ink)
    ax.set_yticks(range(len(rows)), [f"{r.group}: {r.metric}" for r in rows], fontsize=7)
    ax.set_xticks(range(len(others)), others, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_title(f"{rows[0].suite}: Δ vs {baseline}", fontsize=9, pad=18, loc="left")


def plot_delta_heatmap(rows: Sequence[MetricComparison], labels: Sequence[str], path: Path) -> Path:
    """delta_heatmap.png: one block per suite, categories as rows, non-baseline runs as columns."""
    rows = heatmap_rows(rows)
    others = list(labels[1:])
    width, height = heatmap_size(rows, len(others))
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.text(0.01, 1 - 0.1 / height, "Δ = run − baseline; ✱ = paired p < 0.05\n"
             "green = better (error rates sign-flipped); colour scaled per suite", fontsize=8, va="top")
    left, top = heatmap_label_in(rows), height - CAPTION_IN
    for suite in _ordered([r.suite for r in rows]):
        block = [r for r in rows if r.suite == suite]
        block_h = ROW_IN * len(block)
        top -= BLOCK_HEAD_IN
        ax = fig.add_axes((left / width, (top - block_h) / height, COLUMN_IN * len(others) / width, block_h / height))
        _heat_block(ax, block, others, labels[0])
        top -= block_h
    save_figure(fig, path)
    return path
