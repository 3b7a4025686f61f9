"""PNG plots for the report: headline bars with CIs, deltas with their CIs, and a per-category Δ heatmap.

Suites live on different scales (MME points, MMBench fractions, WER percent), so each suite
gets its own panel, with its unit on the y axis, every bar labelled with its value (a zero
is drawn as a visible tick, not an invisible bar) and the published value as a marker. With
two or more runs a strip under each panel shows Δ = run − baseline with its paired 95% CI.
The heatmap colours are scaled per suite and changes that are not significant are muted.
Figures are sized in inches at a fixed DPI (no tight bbox) so pixel sizes are predictable.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vita_eval import fsio  # noqa: E402
from vita_eval.reports.metrics import Scale, format_value, metric_name, scale_of  # noqa: E402
from vita_eval.reports.rows import delta_cell, row_places, signed  # noqa: E402
from vita_eval.reports.stats import MetricComparison, lower_is_better  # noqa: E402

if TYPE_CHECKING:
    from vita_eval.reports.markdown import References

DPI = 100
PANEL_COLUMNS = 3
PANEL_W_IN, VALUES_H_IN, DELTAS_H_IN, LEGEND_IN = 4.8, 3.4, 1.5, 0.8
ROW_IN = 0.3  # heatmap row height
BLOCK_HEAD_IN = 0.85  # heatmap title and column labels per suite
COLUMN_IN = 1.4  # heatmap column width
CAPTION_IN = 0.55  # heatmap caption at the top
MIN_WIDTH_IN = 5.0
MUTE = 0.3  # share of a non-significant cell's colour kept (the rest is white)


def _save(fig: Figure, path: Path) -> None:
    with fsio.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")


def headline_size(n_suites: int, n_runs: int = 1) -> tuple[float, float]:
    """Figure size (inches) of headline.png: a grid of one panel per suite (+ a Δ strip with 2+ runs)."""
    cols = max(1, min(PANEL_COLUMNS, n_suites))
    panel_h = VALUES_H_IN + (DELTAS_H_IN if n_runs > 1 else 0.0)
    return PANEL_W_IN * cols, panel_h * math.ceil(max(n_suites, 1) / cols) + LEGEND_IN


def _ordered(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _tick(row: MetricComparison) -> str:
    return "\n".join(textwrap.wrap(metric_name(row.scorer, row.metric), 18)[:3])


def _bars(ax: Axes, rows: Sequence[MetricComparison], labels: Sequence[str], references: References | None) -> None:
    """One group of bars per metric, one bar per run: CI whiskers, value labels, published markers."""
    width = 0.8 / len(labels)
    x = np.arange(len(rows))
    tops = [0.0]
    for j, label in enumerate(labels):
        estimates = [row.estimates.get(label) for row in rows]
        values = np.array([e.value if e else np.nan for e in estimates])
        # a percentile CI may exclude a biased point estimate (e.g. MME acc+): whiskers then stop at the bar
        low = np.maximum([e.value - e.ci[0] if e and e.ci else np.nan for e in estimates], 0.0)
        high = np.maximum([e.ci[1] - e.value if e and e.ci else np.nan for e in estimates], 0.0)
        pos = x + (j - (len(labels) - 1) / 2) * width
        ax.bar(pos, values, width, yerr=[low, high], capsize=3, color=f"C{j % 10}", label=label,
               error_kw={"elinewidth": 1})
        for k, (row, estimate) in enumerate(zip(rows, estimates)):
            if estimate is None or not np.isfinite(values[k]):
                continue
            if values[k] == 0:  # an empty bar: draw a tick so a zero reads as a value, not as missing
                ax.plot([pos[k] - width / 2, pos[k] + width / 2], [0, 0], color=f"C{j % 10}", linewidth=3)
            top = values[k] + (high[k] if np.isfinite(high[k]) else 0.0)
            tops.append(top)
            ax.annotate(format_value(estimate.shown, scale_of(row.scorer, row.metric)), (pos[k], max(top, 0.0)),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7,
                        rotation=90 if len(labels) > 2 else 0)
    if references is not None:
        tops += _published(ax, rows, x, references)
    ax.set_xticks(x, [_tick(row) for row in rows], fontsize=7)
    scale = scale_of(rows[0].scorer, rows[0].metric)
    ax.set_ylabel(scale.axis if scale else "value", fontsize=8)
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), _y_top(max(tops), scale))
    down = any(lower_is_better(row.metric) for row in rows)
    ax.set_title(rows[0].suite + (" (lower is better)" if down else ""), fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _y_top(highest: float, scale: Scale | None) -> float:
    """Room above the tallest bar, whisker or marker for its label; a scale-sized axis when all is zero."""
    if highest > 0:
        return highest * 1.22
    return {"fraction": 1.0, "%": 100.0}.get(scale.unit if scale else "", 1.0)


def _published(ax: Axes, rows: Sequence[MetricComparison], x: np.ndarray, references: References) -> list[float]:
    """A black diamond at the first published value of each metric that has one; returns the values drawn."""
    drawn = []
    for xi, row in zip(x, rows):
        values = [r["value"] for r in references.for_metric(row.suite, row.metric)]
        if values:
            ax.plot([xi], [values[0]], marker="D", color="black", markersize=5, linestyle="none",
                    label="published (VLMEvalKit scale)")
            drawn.append(float(values[0]))
    return drawn


def _deltas(ax: Axes, rows: Sequence[MetricComparison], labels: Sequence[str], value_top: float) -> None:
    """Δ = run − baseline per metric with its paired 95% CI; hollow markers when p >= 0.05."""
    others = labels[1:]
    width = 0.8 / len(labels)
    x = np.arange(len(rows))
    drawn = 0
    for j, label in enumerate(others, start=1):
        pos = x + (j - (len(labels) - 1) / 2) * width
        for xi, row in zip(pos, rows):
            diff = row.diffs.get(label)
            if diff is None or not math.isfinite(diff.delta):
                continue
            drawn += 1
            err = None
            if diff.ci is not None:
                err = [[max(diff.delta - diff.ci[0], 0.0)], [max(diff.ci[1] - diff.delta, 0.0)]]
            ax.errorbar([xi], [diff.delta], yerr=err, fmt="o", color=f"C{j % 10}", capsize=3, markersize=5,
                        markerfacecolor=f"C{j % 10}" if diff.significant else "white")
            ax.annotate(signed(diff.delta, row_places(row)), (xi, diff.delta), xytext=(4, 0),
                        textcoords="offset points", fontsize=6, va="center")
    if not drawn:
        ax.text(0.5, 0.5, "no Δ: the suite is not in every run", transform=ax.transAxes, ha="center",
                va="center", fontsize=8, color="#777777")
        ax.set_yticks([])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.margins(y=0.2)  # markers at the extremes stay inside the strip
    low, high = ax.get_ylim()
    if high - low < 1e-9 * max(1.0, value_top):  # every Δ and CI is 0: a readable band on the values' scale
        ax.set_ylim(-0.1 * value_top, 0.1 * value_top)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_xticks(x, [_tick(row) for row in rows], fontsize=7)
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.set_ylabel("Δ vs baseline\n(filled: p < 0.05)", fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="y", labelsize=7)


def plot_headline(rows: Sequence[MetricComparison], labels: Sequence[str], path: Path,
                  references: References | None = None) -> Path:
    """headline.png: per suite, its headline metrics for every run (values, CIs, published marks, Δ strip)."""
    rows = [r for r in rows if r.group == "headline"]
    suites = _ordered([r.suite for r in rows])
    deltas = len(labels) > 1
    fig = Figure(figsize=headline_size(len(suites), len(labels)), dpi=DPI)
    cols = max(1, min(PANEL_COLUMNS, len(suites)))
    n_rows = math.ceil(max(len(suites), 1) / cols)
    grid = fig.add_gridspec(n_rows, cols, hspace=0.38, wspace=0.35)
    for i, suite in enumerate(suites):
        block = [r for r in rows if r.suite == suite]
        cell = grid[divmod(i, cols)]
        if not deltas:
            _bars(fig.add_subplot(cell), block, labels, references)
            continue
        inner = cell.subgridspec(2, 1, height_ratios=[VALUES_H_IN, DELTAS_H_IN], hspace=0.08)
        top = fig.add_subplot(inner[0])
        _bars(top, block, labels, references)
        top.tick_params(axis="x", labelbottom=False)
        bottom = fig.add_subplot(inner[1], sharex=top)
        _deltas(bottom, block, labels, top.get_ylim()[1])
    if suites:
        handles, names = [], []
        for ax in fig.axes:
            for handle, name in zip(*ax.get_legend_handles_labels()):
                if name not in names:
                    handles.append(handle)
                    names.append(name)
        fig.legend(handles, names, loc="upper center", ncol=min(len(names), 5), fontsize=9, frameon=False)
    height = fig.get_figheight()
    fig.subplots_adjust(top=1 - 0.65 / height, bottom=0.55 / height, left=0.07, right=0.98)
    _save(fig, path)
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


def _row_label(row: MetricComparison) -> str:
    name = metric_name(row.scorer, row.metric)
    return name if name.startswith(row.group.replace("_", " ")) else f"{row.group}: {name}"


def heatmap_label_in(rows: Sequence[MetricComparison]) -> float:
    longest = max((len(_row_label(r)) for r in rows), default=10)
    return min(4.5, max(1.8, 0.07 * longest))


def _title(suite: str, baseline: str) -> str:
    return f"{suite}: Δ vs {baseline}"


def heatmap_size(rows: Sequence[MetricComparison], n_runs: int, baseline: str = "") -> tuple[float, float]:
    """Figure size (inches) of delta_heatmap.png for these rows and `n_runs` non-baseline runs."""
    suites = _ordered([r.suite for r in rows])
    title_in = max((0.085 * len(_title(s, baseline)) for s in suites), default=0.0) + 0.3
    width = max(MIN_WIDTH_IN, heatmap_label_in(rows) + COLUMN_IN * n_runs + 0.3, title_in)
    return width, CAPTION_IN + ROW_IN * len(rows) + BLOCK_HEAD_IN * len(suites) + 0.2


def _improvement(rows: Sequence[MetricComparison], others: Sequence[str]) -> np.ndarray:
    """Δ with error rates sign-flipped, scaled to [-1, 1] by the block's largest |Δ|."""
    grid = np.array([[d.delta if (d := r.diffs.get(lab)) else np.nan for lab in others] for r in rows], dtype=float)
    grid *= np.array([[-1.0 if lower_is_better(r.metric) else 1.0] for r in rows])
    scale = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 0.0
    return grid / scale if scale > 0 else np.where(np.isfinite(grid), 0.0, np.nan)


def _colours(grid: np.ndarray, significant: np.ndarray) -> np.ndarray:
    """RGB cells: red-yellow-green by improvement, muted towards white where p >= 0.05, grey where no Δ."""
    rgb = colormaps["RdYlGn"]((np.nan_to_num(grid) + 1) / 2)[..., :3]
    muted = 1 - MUTE * (1 - rgb)
    out = np.where(significant[..., None], rgb, muted)
    return np.where(np.isfinite(grid)[..., None], out, 0.87)


def _heat_block(ax: Axes, rows: Sequence[MetricComparison], others: Sequence[str]) -> None:
    grid = _improvement(rows, others)
    significant = np.array([[bool(d and d.significant) for lab in others for d in [r.diffs.get(lab)]] for r in rows])
    ax.imshow(_colours(grid, significant), aspect="auto", interpolation="nearest")
    for i, row in enumerate(rows):
        for j, label in enumerate(others):
            text = delta_cell(row.diffs.get(label), row_places(row), with_ci=False)
            strong = significant[i, j] and abs(grid[i, j]) > 0.65
            ink = "white" if strong else "black" if significant[i, j] else "#555555"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=ink)
    ax.set_yticks(range(len(rows)), [_row_label(r) for r in rows], fontsize=7)
    ax.set_xticks(range(len(others)), others, fontsize=8)
    ax.xaxis.tick_top()


def plot_delta_heatmap(rows: Sequence[MetricComparison], labels: Sequence[str], path: Path) -> Path:
    """delta_heatmap.png: one block per suite, categories as rows, non-baseline runs as columns."""
    rows = heatmap_rows(rows)
    others = list(labels[1:])
    width, height = heatmap_size(rows, len(others), labels[0])
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.text(0.01, 1 - 0.08 / height, "Δ = run − baseline; ✱ = paired p < 0.05 (full colour); pale = not "
             "significant\ngreen = better (error rates sign-flipped); colour scaled per suite", fontsize=8, va="top")
    left, top = heatmap_label_in(rows), height - CAPTION_IN
    for suite in _ordered([r.suite for r in rows]):
        block = [r for r in rows if r.suite == suite]
        block_h = ROW_IN * len(block)
        fig.text(0.01, (top - 0.12) / height, _title(suite, labels[0]), fontsize=9, va="top", weight="bold")
        top -= BLOCK_HEAD_IN
        ax = fig.add_axes((left / width, (top - block_h) / height, COLUMN_IN * len(others) / width, block_h / height))
        _heat_block(ax, block, others)
        top -= block_h
    _save(fig, path)
    return path
