"""Entry point: compare run directories and write report.md (+ PNG plots, optional HTML).

The first run (or `baseline`) is the reference column; every other run gets a
delta per metric and a paired cluster-bootstrap p-value, and McNemar's exact
test per suite when the scorer writes a 0/1 outcome per sample. Numbers shown
are always the ones stored in scores.json; the bootstrap only adds uncertainty.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from vita_eval import fsio
from vita_eval.config import DEFAULT_N_BOOT
from vita_eval.reports import markdown, plots
from vita_eval.reports.markdown import load_references
from vita_eval.reports.rows import Comparison, McNemar
from vita_eval.reports.rundir import Run, SuiteResult, is_attention, read_run, unique_labels
from vita_eval.reports.stats import (
    Aggregate,
    Estimate,
    MetricComparison,
    PairedDiff,
    align_on_common_uids,
    bootstrap_replicates,
    mcnemar_exact,
    metric_float,
    outcome_column,
    paired_diffs,
    percentile_ci,
    WeightedAggregate,
)
from vita_eval.scorers.base import flat_metrics, get_scorer


@dataclass(frozen=True)
class Aggregator:
    """A scorer's `aggregate`, and its all-resamples-at-once form when the scorer has one."""

    aggregate: Aggregate
    weighted: WeightedAggregate | None = None


class _Bootstraps:
    """Replicates cached per (run, suite, rows), so a run's CI and its paired test share one bootstrap."""

    def __init__(self, n_boot: int, seed: int) -> None:
        self.n_boot, self.seed = n_boot, seed
        self._cache: dict[tuple[str, str, str], pd.DataFrame] = {}

    def get(self, label: str, suite: str, frame: pd.DataFrame, aggregator: Aggregator) -> pd.DataFrame:
        rows = "\0".join(frame["uid"]) + "\1" + "\0".join(frame["cluster"])
        key = (label, suite, hashlib.sha1(rows.encode()).hexdigest())
        if key not in self._cache:
            self._cache[key] = bootstrap_replicates(frame, aggregator.aggregate, n_boot=self.n_boot, seed=self.seed,
                                                    weighted=aggregator.weighted)
        return self._cache[key]


def resolve_aggregate(scorer: str | None) -> tuple[Aggregator | None, str | None]:
    """The scorer's own `aggregate` (and `aggregate_weighted`), or why it cannot be had (then no CIs)."""
    if not scorer:
        return None, "scores.json names no scorer"
    try:
        instance = get_scorer(scorer)
    except (KeyError, ImportError) as err:
        return None, f"scorer {scorer!r} unavailable ({err})"
    # names as SuiteResult.metrics has them (nested metrics flattened); aggregate_weighted returns flat names
    return Aggregator(lambda per_sample: flat_metrics(instance.aggregate(per_sample)),
                      getattr(instance, "aggregate_weighted", None)), None


def load_runs(run_dirs: Sequence[Path], baseline: Path | None) -> list[Run]:
    """Runs in column order, the baseline first (added if it was not among `run_dirs`)."""
    paths = [Path(p) for p in run_dirs]
    if baseline is not None:
        base = Path(baseline)
        paths = [base] + [p for p in paths if p.resolve() != base.resolve()]
    if not paths:
        raise ValueError("no run directory given")
    runs = [read_run(p) for p in paths]
    labels = unique_labels([run.label for run in runs])
    return [Run(path=r.path, label=lab, info=r.info, suites=r.suites) for r, lab in zip(runs, labels, strict=True)]


def suite_warnings(label: str, result: SuiteResult) -> list[str]:
    """What a reader must know first about one suite of one run: failures, partial data, judge and data trouble."""
    s, out = result.scores, []
    out += [f"{result.suite} [{label}]: {w.split(': ', 1)[-1] if w.startswith(result.suite) else w}"
            for w in s.get("warnings") or []]
    if s.get("n_failed"):
        first = (s.get("failures") or [{}])[0]
        example = f" (first: uid {first.get('uid')}: {first.get('reason')})" if first else ""
        out.append(f"{result.suite} [{label}]: {s['n_failed']} of {s.get('n', '?')} samples failed{example}")
    out += [f"{result.suite} [{label}]: {note}" for note in s.get("notes") or [] if is_attention(note)]
    judge = s.get("judge") or {}
    if judge.get("failures"):
        out.append(f"{result.suite} [{label}]: judge {judge.get('identity')!r} failed {judge['failures']} calls")
    return out


def _ordered_union(lists: Sequence[Sequence[str]]) -> list[str]:
    return list(dict.fromkeys(name for names in lists for name in names))


class _Analysis:
    """Builds a Comparison suite by suite; holds the bootstrap cache and resolved scorers."""

    def __init__(self, runs: list[Run], n_boot: int, seed: int) -> None:
        self.result = Comparison(runs=runs)
        self.boot = _Bootstraps(n_boot, seed)
        self._aggregates: dict[str | None, tuple[Aggregator | None, str | None]] = {}

    def aggregate(self, result: SuiteResult) -> tuple[Aggregator | None, str | None]:
        """The suite's aggregate if its per_sample table is usable too; else why there are no CIs."""
        if result.per_sample is None:
            return None, result.no_ci_reason
        if result.scorer not in self._aggregates:
            self._aggregates[result.scorer] = resolve_aggregate(result.scorer)
        return self._aggregates[result.scorer]

    def estimates(self, label: str, result: SuiteResult) -> dict[str, Estimate]:
        """Stored values with CIs from the cluster bootstrap of the run's whole per_sample table."""
        aggregate, reason = self.aggregate(result)
        reps = None if aggregate is None else self.replicates(label, result.suite, result.per_sample, aggregate)
        if reps is None:
            if reason:
                self._no_ci(result.suite, label, reason)
            return {m: Estimate(shown=v, value=metric_float(v)) for m, v in result.metrics.items()}
        self._check_point(label, result, aggregate)
        return {
            m: Estimate(shown=v, value=metric_float(v), ci=percentile_ci(reps[m].to_numpy()) if m in reps else None)
            for m, v in result.metrics.items()
        }

    def replicates(self, label: str, suite: str, frame: pd.DataFrame, aggregate: Aggregator) -> pd.DataFrame | None:
        """Bootstrap replicates, or None (and a warning) when the scorer's aggregate fails on the full table."""
        try:
            return self.boot.get(label, suite, frame, aggregate)
        except Exception as err:  # noqa: BLE001 - foreign scorer code must not abort the whole report
            self._no_ci(suite, label, f"aggregate failed ({err!r})")
            return None

    def _no_ci(self, suite: str, label: str, reason: str | None) -> None:
        self.result.notes.append(f"{suite} [{label}]: no confidence intervals or p-values: {reason}")

    def _check_point(self, label: str, result: SuiteResult, aggregator: Aggregator) -> None:
        """Warn when re-aggregating per_sample does not give scores.json's number (CI would describe another value)."""
        recomputed = {m: metric_float(v) for m, v in aggregator.aggregate(result.per_sample).items()}
        for m, v in result.metrics.items():
            stored, again = metric_float(v), recomputed.get(m, math.nan)
            if math.isfinite(stored) and not math.isclose(stored, again, rel_tol=1e-6, abs_tol=1e-3):
                self.result.warnings.append(
                    f"{result.suite} [{label}]: aggregate(per_sample) gives {m} = {again:g} but scores.json says {v}"
                )

    def diffs(self, label: str, base: SuiteResult, other: SuiteResult) -> dict[str, PairedDiff]:
        """Deltas of stored values; p-values from the paired bootstrap on the samples both runs scored."""
        shared = [m for m in other.metrics if m in base.metrics]
        deltas = {m: metric_float(other.metrics[m]) - metric_float(base.metrics[m]) for m in shared}
        agg_a, _ = self.aggregate(base)
        agg_b, _ = self.aggregate(other)
        if agg_a is None or agg_b is None:
            return {m: PairedDiff(delta=d, p=None) for m, d in deltas.items()}
        a, b = align_on_common_uids(base.per_sample, other.per_sample)
        if a.empty:
            self.result.warnings.append(f"{other.suite} [{label}]: compared on different samples: none in common "
                                        "with the baseline; Δ compares different sample sets, no p-values")
            return {m: PairedDiff(delta=d, p=None) for m, d in deltas.items()}
        if len(a) < max(len(base.per_sample), len(other.per_sample)):
            self.result.warnings.append(
                f"{other.suite} [{label}]: compared on different samples (baseline {len(base.per_sample)}, this run "
                f"{len(other.per_sample)}, {len(a)} in common): Δ compares different sample sets; p-values and "
                f"the Δ CI use the {len(a)} shared"
            )
        self._mcnemar(label, other.suite, a, b)
        reps_a = self.replicates(self.result.baseline.label, base.suite, a, agg_a)
        reps_b = self.replicates(label, other.suite, b, agg_b)
        if reps_a is None or reps_b is None:
            return {m: PairedDiff(delta=d, p=None) for m, d in deltas.items()}
        return paired_diffs(reps_a, reps_b, deltas)

    def _mcnemar(self, label: str, suite: str, a: pd.DataFrame, b: pd.DataFrame) -> None:
        column = outcome_column(a)
        if column is None or outcome_column(b) != column:
            return
        outcome_a = pd.to_numeric(a[column]).to_numpy() == 1
        outcome_b = pd.to_numeric(b[column]).to_numpy() == 1
        self.result.mcnemar[(suite, label)] = McNemar(mcnemar_exact(outcome_a, outcome_b), column, len(a))

    def add_suite(self, suite: str) -> None:
        runs = self.result.runs
        present = [(run.label, run.suites[suite]) for run in runs if suite in run.suites]
        for label, result in present:
            self.result.warnings += suite_warnings(label, result)
        estimates = {label: self.estimates(label, result) for label, result in present}
        base = runs[0].suites.get(suite)
        if base is None:
            self.result.warnings.append(f"{suite}: absent from the baseline {runs[0].label}; no deltas")
        diffs = {label: self.diffs(label, base, result) for label, result in present[1:] if base is not None}
        self._add_rows(suite, [r for _, r in present], estimates, diffs)

    def _add_rows(
        self,
        suite: str,
        results: list[SuiteResult],
        estimates: dict[str, dict[str, Estimate]],
        diffs: dict[str, dict[str, PairedDiff]],
    ) -> None:
        n_scored = {run.label: run.suites[suite].scores.get("n", 0) for run in self.result.runs if suite in run.suites}
        groups = {"headline": _ordered_union([r.headline for r in results])}
        for group in _ordered_union([list(r.categories) for r in results]):
            groups[group] = _ordered_union([r.categories.get(group, []) for r in results])
        for group, metrics in groups.items():
            for metric in metrics:
                self.result.rows.append(
                    MetricComparison(
                        suite=suite,
                        group=group,
                        metric=metric,
                        estimates={lab: estimates.get(lab, {}).get(metric) for lab in self.result.labels},
                        diffs={lab: diffs.get(lab, {}).get(metric) for lab in self.result.labels[1:]},
                        scorer=results[0].scorer,
                        n=n_scored,
                    )
                )


def compare_runs(runs: list[Run], *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> Comparison:
    """Estimates, paired differences and warnings for every suite of every run."""
    analysis = _Analysis(runs, n_boot, seed)
    for suite in _ordered_union([list(run.suites) for run in runs]):
        analysis.add_suite(suite)
    return analysis.result


def write_report(
    run_dirs: Sequence[Path],
    *,
    out: Path,
    baseline: Path | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    html: bool = False,
) -> Path:
    """Write DIR/report.md, headline.png, delta_heatmap.png (>= 2 runs); with `html` report.html and samples.html."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    comparison = compare_runs(load_runs(run_dirs, baseline), n_boot=n_boot, seed=seed)
    references = load_references()
    images = [plots.plot_headline(comparison.rows, comparison.labels, out / "headline.png", references)]
    if len(comparison.runs) >= 2:
        images.append(plots.plot_delta_heatmap(comparison.rows, comparison.labels, out / "delta_heatmap.png"))
    text = markdown.render_report(comparison, references, images, n_boot=n_boot, seed=seed, viewer=html)
    from vita_eval.speech.report import speech_section  # runs that spoke: text-out beside speech-out

    text += speech_section(comparison.runs)
    report = out / "report.md"
    fsio.write_text(report, text)
    if html:
        from vita_eval.reports.html import write_html
        from vita_eval.reports.viewer import write_viewer

        write_viewer(comparison.runs, out / "samples.html")
        write_html(text, out / "report.html", base=out)
    return report

