"""Rendering a Comparison as report.md: warnings first, then tables, references, provenance, method.

Numbers are printed from scores.json values (strings such as Video-MME's "0.583"
verbatim), never from bootstrap output, so a reader can grep the run directory
for any figure in the report.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import yaml

from vita_eval.reports.metrics import format_value, metric_name, scale_of
from vita_eval.reports.rows import (
    FLAG,
    Comparison,
    delta_cell,
    estimate_cell,
    p_cell,
    row_places,
)
from vita_eval.reports.stats import MetricComparison, lower_is_better

if TYPE_CHECKING:
    from vita_eval.reports.rundir import Run

REFERENCE_FILE = Path(__file__).with_name("reference_values.yaml")


@dataclass(frozen=True)
class References:
    """Published numbers by suite and metric, each with the key of its source."""

    scale: str
    sources: dict[str, dict[str, str]]
    values: dict[str, dict[str, list[dict[str, Any]]]]

    def for_metric(self, suite: str, metric: str) -> list[dict[str, Any]]:
        return self.values.get(suite, {}).get(metric, [])


def load_references(path: Path = REFERENCE_FILE) -> References:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return References(scale=data["scale"], sources=data["sources"], values=data["values"])


def escape(text: Any) -> str:
    """Markdown table-safe text (metric names such as Video-MME's "short|overall")."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- tables


UNIT_SUFFIX = {"%": " (%)", "fraction": "", "points": "", "count": ""}


def metric_label(metric: str, scorer: str | None = None) -> str:
    """Readable name, unit, and ↓ for lower-is-better: "WER (%) ↓", "overall accuracy", "perception (of 2000)"."""
    scale = scale_of(scorer, metric)
    text = metric_name(scorer, metric) + (UNIT_SUFFIX.get(scale.unit, "") if scale else "")
    return f"{text} ↓" if lower_is_better(metric) else text


def n_cell(row: MetricComparison, labels: Sequence[str]) -> str:
    """Samples scored: one number when every run has the same, else one per run ("22 / 6")."""
    counts = [str(row.n[label]) if label in row.n else "—" for label in labels]
    return counts[0] if len(set(counts)) == 1 else " / ".join(counts)


def comparison_table(
    rows: Sequence[MetricComparison], labels: Sequence[str], references: References | None = None,
    partial: set[tuple[str, str]] | None = None,
) -> str:
    """Runs as columns (value [95% CI]), then Δ and p per non-baseline run, then published values.

    `partial` holds (suite, run label) pairs scored on a --limit subset; their cells are marked "(partial)".
    """
    others = labels[1:]
    partial = partial or set()
    header = ["Suite", "Metric", "n", f"{labels[0]} (baseline)", *others]
    header += [h for label in others for h in (f"Δ {label}", f"p {label}")]
    if references is not None:
        header.append("Published")
    body = []
    for row in rows:
        places = row_places(row)
        cells = [row.suite, metric_label(row.metric, row.scorer), n_cell(row, labels)]
        cells += [estimate_cell(row.estimates.get(label), places)
                  + (" (partial)" if (row.suite, label) in partial else "") for label in labels]
        for label in others:
            diff = row.diffs.get(label)
            cells += [delta_cell(diff, places), p_cell(diff.p if diff else None)]
        if references is not None:
            refs = references.for_metric(row.suite, row.metric)
            scale = scale_of(row.scorer, row.metric)
            cells.append("; ".join(f"{format_value(r['value'], scale)} [{r['source']}]" for r in refs) or "—")
        body.append(cells)
    return table(header, body)


def partial_runs(comparison: Comparison) -> set[tuple[str, str]]:
    return {(name, run.label) for run in comparison.runs for name, result in run.suites.items()
            if result.scores.get("partial")}


def headline_section(comparison: Comparison, references: References, images: Sequence[Path]) -> str:
    rows = [r for r in comparison.rows if r.group == "headline"]
    legend = (
        f"Cells: value from scores.json [95% cluster-bootstrap CI]; n = samples scored. Δ = run − baseline "
        f"[95% paired CI]; {FLAG} = paired p < 0.05. ↓ = lower is better. MME in points, MMBench and Video-MME "
        "(VLMEvalKit parser) as fractions, MathVista, Video-MME (VITA parser) and WER/CER in percent; published "
        "values on VLMEvalKit's scale (see below)."
    )
    parts = ["## Headline", legend, comparison_table(rows, comparison.labels, references, partial_runs(comparison))]
    parts += [f"![{p.stem}]({p.name})" for p in images]
    return "\n\n".join(parts)


def category_section(comparison: Comparison) -> str:
    groups = dict.fromkeys((r.suite, r.group) for r in comparison.rows if r.group != "headline")
    if not groups:
        return ""
    parts = ["## Per-category breakdown"]
    for suite, group in groups:
        rows = [r for r in comparison.rows if (r.suite, r.group) == (suite, group)]
        parts += [f"### {suite}: {group}", comparison_table(rows, comparison.labels, partial=partial_runs(comparison))]
    return "\n\n".join(parts)


def mcnemar_section(comparison: Comparison) -> str:
    if not comparison.mcnemar:
        return ""
    rows = [
        (suite, label, test.column, test.n_pairs, p_cell(test.p) + (f" {FLAG}" if test.p < 0.05 else ""))
        for (suite, label), test in comparison.mcnemar.items()
    ]
    intro = "McNemar's exact test of per-sample 0/1 outcomes against the baseline (samples treated as independent)."
    return "\n\n".join(["## McNemar tests", intro, table(["Suite", "Run", "Outcome", "Pairs", "p"], rows)])


def references_section(comparison: Comparison, references: References) -> str:
    suites = dict.fromkeys(r.suite for r in comparison.rows)
    rows = [
        (suite, metric, f"{ref['value']:g}", ref["published"], ref["source"], ref.get("note", ""))
        for suite in suites
        for metric, refs in references.values.get(suite, {}).items()
        for ref in refs
    ]  # keys and values exactly as in reference_values.yaml, so they can be looked up
    if not rows:
        return ""
    used = dict.fromkeys(row[4] for row in rows)
    sources = [
        f"- **{key}**: {references.sources[key]['title']} ({references.sources[key]['where']})"
        + (f". **Caveat:** {references.sources[key]['caveat']}" if "caveat" in references.sources[key] else "")
        for key in used
    ]
    header = ["Suite", "Metric", "Value (VLMEvalKit scale)", "As published", "Source", "Note"]
    return "\n\n".join(["## Published reference values", references.scale, table(header, rows), "\n".join(sources)])


# ---------------------------------------------------------------- provenance


def _gib(n: Any) -> str:
    return f"{float(n) / 2**30:.2f} GiB" if isinstance(n, (int, float)) else "n/a"


def _pairs(d: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (d or {}).items()) or "n/a"


def run_provenance(run: Run) -> str:
    info, model = run.info, run.info.get("model") or {}
    hardware = dict(info.get("hardware") or {})
    gpus = hardware.pop("gpus", None) or []
    peak = info.get("peak_mem") or {}
    lines = [
        f"### {run.label}",
        f"- Run directory: `{run.path}`" + ("" if info else " (no run.json: provenance unknown)"),
        f"- Model: {model.get('name', 'n/a')} at `{model.get('path', 'n/a')}`",
        f"- config sha256: `{model.get('config_sha256', 'n/a')}`; index sha256: `{model.get('index_sha256', 'n/a')}`",
        f"- Device {info.get('device', 'n/a')}, dtype {info.get('dtype', 'n/a')}; "
        f"hardware: {_pairs(hardware)}; GPUs: {', '.join(map(str, gpus)) or 'none'}",
        f"- Versions: {_pairs(info.get('versions'))}",
        f"- Wall time {info.get('wall_s', 'n/a')} s; peak memory CPU RSS {_gib(peak.get('cpu_rss_bytes'))}, "
        f"GPU {_gib(peak.get('gpu_bytes'))}",
    ]
    return "\n".join(lines) + "\n\n" + suite_provenance(run)


def judge_cell(scores: dict[str, Any]) -> str:
    """Judge usage; a judge that was asked for but not working says so, whatever its counters."""
    judge = scores.get("judge") or {}
    identity = judge.get("identity") or "none"
    if identity == "none":
        return "none"
    usage = f"{judge.get('calls', 0)} calls, {judge.get('cache_hits', 0)} cached, {judge.get('failures', 0)} failed"
    down = any("not working" in note or "unavailable" in note for note in scores.get("notes") or [])
    return f"{identity}: {'NOT WORKING (exact matching only); ' if down else ''}{usage}"


def suite_provenance(run: Run) -> str:
    header = ["Suite", "n", "Failed", "Profile", "Preset", "Judge", "Judge tokens (prompt / completion)", "Wall s",
              "Samples/s"]
    rows, files, notes = [], [], []
    for name, result in run.suites.items():
        s, judge = result.scores, result.scores.get("judge") or {}
        rows.append((
            name + (" (partial)" if s.get("partial") else ""), s.get("n", "n/a"), s.get("n_failed", "n/a"),
            s.get("profile", "n/a"), s.get("preset", "n/a"), judge_cell(s),
            f"{judge.get('prompt_tokens', 0)} / {judge.get('completion_tokens', 0)}",
            s.get("wall_s", "n/a"), s.get("samples_per_s", "n/a"),
        ))
        files += [f"  - {name}: `{path}` md5 `{md5}`" for path, md5 in (s.get("data_files") or {}).items()]
        notes += [f"  - {name}: {note}" for note in result.setting_notes]
    return (table(header, rows) + ("\n\nScoring notes:\n" + "\n".join(notes) if notes else "")
            + ("\n\nData files:\n" + "\n".join(files) if files else ""))


# ---------------------------------------------------------------- report


def method_section(n_boot: int, seed: int, notes: Sequence[str] = ()) -> str:
    limits = "".join(f"\n- {note}" for note in notes)
    return f"""## Method

- Bootstrap resamples: {n_boot} (seed {seed}), the same count for the report written after `vita-eval run` and
  for `vita-eval report` (`--n-boot`).
- Values and Δ come from scores.json (Δ = run − baseline). Uncertainty is added, never substituted.
- 95% CI: percentile bootstrap with {n_boot} resamples (seed {seed}) of the `cluster` column of
  per_sample.jsonl (an image, a video or a circular group), each resample re-scored with the suite
  scorer's own `aggregate`. Resampling clusters, not rows, keeps correlated samples together.
- p: paired cluster bootstrap on the samples both runs scored: the same clusters are drawn for both
  runs and p = 2·min(P(Δ* ≤ 0), P(Δ* ≥ 0)) (+1 corrected). p < 0.05 ({FLAG}) exactly when the 95% CI of
  Δ excludes 0; the smallest attainable p is about {2 / (n_boot + 1):.4f}.
- McNemar: exact binomial test on discordant pairs of a 0/1 per-sample outcome (`correct`, `hit` or
  `score`) where the scorer writes one. It ignores clustering, so the bootstrap p is the one flagged.
- No correction for multiple comparisons: across many category rows, about 1 in 20 flags is expected by chance.{limits}"""


def warnings_section(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    return "## ⚠ Attention\n\n" + "\n".join(f"- **{w}**" for w in warnings)


def render_report(
    comparison: Comparison, references: References, images: Sequence[Path], *, n_boot: int, seed: int,
    viewer: bool = False,
) -> str:
    runs = ", ".join(f"`{run.label}`" for run in comparison.runs)
    intro = f"# vita-eval report\n\nRuns: {runs}. Baseline: `{comparison.baseline.label}`."
    if viewer:
        intro += " Every sample, with media, prompt, outputs and the scorer's decisions: [samples.html](samples.html)."
    sections = [
        intro,
        warnings_section(comparison.warnings),
        headline_section(comparison, references, images),
        category_section(comparison),
        mcnemar_section(comparison),
        references_section(comparison, references),
        "## Provenance\n\n" + "\n\n".join(run_provenance(run) for run in comparison.runs),
        method_section(n_boot, seed, comparison.notes),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"
