"""End-to-end: synthetic run directories -> report.md and plots, parsed back and checked."""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vita_eval.reports import plots
from vita_eval.reports.compare import compare_runs, load_runs, write_report
from vita_eval.reports.markdown import load_references
from vita_eval.reports.stats import metric_float
from vita_eval.registry import register

CATEGORIES = ("color", "count", "OCR")


@register("scorer", "toy_yorn")
class ToyYorn:
    """Accuracy in percent, overall and per category (a tiny MME/MathVista-like scorer)."""

    name = "toy_yorn"

    def score(self, data, predictions, *, profile, judge):  # pragma: no cover - reports never score
        raise NotImplementedError

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, float]:
        out = {"Overall": float(per_sample["correct"].mean() * 100)}
        out.update({c: float(g["correct"].mean() * 100) for c, g in per_sample.groupby("category")})
        return out


@register("scorer", "toy_video")
class ToyVideo:
    """Video-MME-like: fractions stored as "%.3f" strings under "duration|dimension" keys."""

    name = "toy_video"

    def score(self, data, predictions, *, profile, judge):  # pragma: no cover
        raise NotImplementedError

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, str]:
        out = {"overall|overall": f"{per_sample['score'].mean():.3f}"}
        out.update({f"{d}|overall": f"{g['score'].mean():.3f}" for d, g in per_sample.groupby("duration")})
        return out


def yorn_table(correct: np.ndarray) -> pd.DataFrame:
    n = len(correct)
    return pd.DataFrame({
        "uid": [str(i) for i in range(n)],
        "cluster": [f"img{i // 2}" for i in range(n)],
        "category": [CATEGORIES[(i // 2) % 3] for i in range(n)],
        "correct": correct.astype(int),
    })


def video_table(score: np.ndarray) -> pd.DataFrame:
    n = len(score)
    return pd.DataFrame({
        "uid": [f"v{i}" for i in range(n)],
        "cluster": [f"vid{i // 3}" for i in range(n)],
        "duration": [("short", "medium", "long")[(i // 3) % 3] for i in range(n)],
        "score": score.astype(int),
    })


def write_suite(run: Path, suite: str, scorer, per_sample: pd.DataFrame, *, with_per_sample: bool = True,
                **extra) -> dict:
    metrics = scorer().aggregate(per_sample)
    groups = [k for k in metrics if k not in ("Overall", "overall|overall")]
    scores = {
        "suite": suite, "scorer": scorer.name, "profile": "vlmevalkit-head", "preset": "vlmevalkit",
        "judge": {"identity": None, "calls": 0, "cache_hits": 0, "failures": 0, "prompt_tokens": 0,
                  "completion_tokens": 0},
        "metrics": metrics, "headline": [next(iter(metrics))], "categories": {"category": groups},
        "n": len(per_sample), "n_failed": 0, "failures": [], "notes": [],
        "data_files": {f"{suite}.tsv": "0123456789abcdef0123456789abcdef"}, "wall_s": 12.5, "samples_per_s": 4.2,
        **extra,
    }
    (run / suite).mkdir(parents=True)
    (run / suite / "scores.json").write_text(json.dumps(scores))
    if with_per_sample:
        lines = (json.dumps(rec) for rec in per_sample.to_dict(orient="records"))
        (run / suite / "per_sample.jsonl").write_text("\n".join(lines) + "\n")
    return scores


def write_run_json(run: Path, run_id: str) -> None:
    info = {
        "run_id": run_id,
        "model": {"path": f"/ckpt/{run_id}", "name": "vita-1.5", "config_sha256": "c" * 64, "index_sha256": "d" * 64},
        "device": "cuda", "dtype": "bfloat16", "config": {},
        "versions": {"vita_eval": "0.1.0", "transformers": "5.17.0"},
        "hardware": {"cpu": "x86", "gpus": ["H100 80GB"]},
        "wall_s": 420.0, "peak_mem": {"cpu_rss_bytes": 8 * 2**30, "gpu_bytes": 18 * 2**30},
    }
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(json.dumps(info))


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Run B answers ~15 % more yes/no questions correctly; video suite unchanged."""
    rng = np.random.default_rng(1)
    base = rng.random(300) < 0.6
    better = base | (rng.random(300) < 0.4)
    video = rng.random(60) < 0.5
    paths = []
    for run_id, correct in (("ckpt-A", base), ("ckpt-B", better)):
        run = tmp_path / run_id
        write_run_json(run, run_id)
        write_suite(run, "ToyYN", ToyYorn, yorn_table(correct))
        write_suite(run, "ToyVideo", ToyVideo, video_table(video))
        paths.append(run)
    return paths[0], paths[1]


def parse_table(md: str, heading: str) -> list[dict[str, str]]:
    """Rows of the first Markdown table after `heading`, as dicts keyed by column header."""
    lines = []
    for line in md.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    rows = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    return [dict(zip(rows[0], r, strict=True)) for r in rows[2:]]


def value_of(cell: str) -> str:
    return cell.split(" [")[0]


def decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def assert_shown(cell: str, stored) -> None:
    """The printed value is the stored one: verbatim for strings, equal at printed precision for numbers."""
    shown = value_of(cell)
    if isinstance(stored, str):
        assert shown == stored
    else:
        assert abs(float(shown) - stored) <= 0.5 * 10 ** -decimals(shown) + 1e-12


def test_report_numbers_match_scores_json(two_runs):
    a, b = two_runs
    report = write_report([a, b], out=a.parent / "report", n_boot=200)
    md = report.read_text()
    scores = {run: {s: json.loads((run / s / "scores.json").read_text())["metrics"] for s in ("ToyYN", "ToyVideo")}
              for run in (a, b)}
    headline = parse_table(md, "## Headline")
    assert {r["Metric"] for r in headline} == {"Overall", "overall|overall"}
    for row in headline:
        stored_a, stored_b = scores[a][row["Suite"]][row["Metric"]], scores[b][row["Suite"]][row["Metric"]]
        assert_shown(row["ckpt-A (baseline)"], stored_a)
        assert_shown(row["ckpt-B"], stored_b)
        assert re.fullmatch(r"\S+ \[\S+, \S+\]", row["ckpt-B"]), "every value has its CI"
        delta = row["Δ ckpt-B"].split()[0]
        expected = metric_float(stored_b) - metric_float(stored_a)
        assert abs(float(delta) - expected) <= 0.5 * 10 ** -decimals(delta) + 1e-12
    categories = parse_table(md, "### ToyYN: category")
    assert [r["Metric"] for r in categories] == ["OCR", "color", "count"]
    for row in categories:
        assert_shown(row["ckpt-B"], scores[b]["ToyYN"][row["Metric"]])


def test_planted_improvement_is_flagged_and_unchanged_suite_is_not(two_runs):
    a, b = two_runs
    comparison = compare_runs(load_runs([a, b], None), n_boot=200)
    rows = {(r.suite, r.metric): r for r in comparison.rows if r.group == "headline"}
    improved = rows[("ToyYN", "Overall")].diffs["ckpt-B"]
    same = rows[("ToyVideo", "overall|overall")].diffs["ckpt-B"]
    assert improved.delta > 10 and improved.p < 0.05 and improved.significant
    assert same.delta == 0 and same.p == 1.0 and not same.significant
    assert comparison.mcnemar[("ToyYN", "ckpt-B")].p < 1e-6
    assert comparison.mcnemar[("ToyVideo", "ckpt-B")].p == 1.0


def test_baseline_option_reorders_columns(two_runs):
    a, b = two_runs
    runs = load_runs([a, b], baseline=b)
    assert [r.label for r in runs] == ["ckpt-B", "ckpt-A"]


def test_missing_per_sample_reports_numbers_without_ci_and_says_why(tmp_path):
    run = tmp_path / "run"
    write_run_json(run, "lonely")
    stored = write_suite(run, "ToyYN", ToyYorn, yorn_table(np.arange(60) % 3 == 0), with_per_sample=False,
                         n_failed=2, failures=[{"uid": "7", "reason": "CUDA OOM"}, {"uid": "9", "reason": "timeout"}],
                         notes=["judge unavailable: 212 rows scored wrong"])
    md = write_report([run], out=tmp_path / "out", n_boot=100).read_text()
    (row,) = parse_table(md, "## Headline")
    assert row["lonely (baseline)"] == f"{stored['metrics']['Overall']:.2f}"
    attention = md.split("## ⚠ Attention", 1)[1].split("## Headline")[0]
    assert "per_sample.jsonl missing" in md.split("## Method", 1)[1]  # a limit of the statistics, not a warning
    assert "judge unavailable: 212 rows scored wrong" in attention
    assert "2 of 60 samples failed (first: uid 7: CUDA OOM)" in attention
    assert not (tmp_path / "out" / "delta_heatmap.png").exists(), "one run: nothing to compare"


def test_provenance_and_references_are_reported(tmp_path):
    run = tmp_path / "run"
    write_run_json(run, "r1")
    write_suite(run, "MME", ToyYorn, yorn_table(np.ones(30, dtype=bool)))
    md = write_report([run], out=tmp_path / "out", n_boot=50).read_text()
    for text in ("/ckpt/r1", "c" * 64, "d" * 64, "vlmevalkit-head", "transformers 5.17.0", "H100 80GB",
                 "0123456789abcdef0123456789abcdef", "18.00 GiB", "4.2"):
        assert text in md
    refs = parse_table(md, "## Published reference values")
    assert {"2311", "2328.1", "2353.51", "2362"} <= {r["Value (VLMEvalKit scale)"] for r in refs}
    assert "readme_figure" in md and "minicpm_o" in md


def test_reference_values_cover_published_suites():
    refs = load_references()
    assert refs.for_metric("MMBench_DEV_EN_V11", "Overall")[0]["value"] == pytest.approx(0.7779)
    assert refs.for_metric("MathVista_MINI", "Overall")[0]["value"] == 66.2
    (libri,) = refs.for_metric("LibriSpeech_test_other", "wer")
    assert "VITA#86" in refs.sources[libri["source"]]["caveat"]
    assert all(ref["source"] in refs.sources for metrics in refs.values.values()
               for entries in metrics.values() for ref in entries)
    assert refs.for_metric("Video-MME_vita", "overall")[0]["value"] == 56.1  # VITA parser: percent


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_plots_exist_with_expected_pixel_size(two_runs):
    a, b = two_runs
    out = a.parent / "report"
    write_report([a, b], out=out, n_boot=100)
    comparison = compare_runs(load_runs([a, b], None), n_boot=10)
    w, h = plots.headline_size(2, 2)
    assert png_size(out / "headline.png") == (round(w * plots.DPI), round(h * plots.DPI))
    w, h = plots.heatmap_size(plots.heatmap_rows(comparison.rows), 1, "ckpt-A")
    assert png_size(out / "delta_heatmap.png") == (round(w * plots.DPI), round(h * plots.DPI))
    for name in ("headline.png", "delta_heatmap.png"):
        assert (out / name).stat().st_size > 10_000
    assert "![headline](headline.png)" in (out / "report.md").read_text()


def test_html_is_self_contained_and_carries_the_tables(two_runs):
    a, b = two_runs
    out = a.parent / "html"
    write_report([a, b], out=out, n_boot=50, html=True)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and 'src="headline.png"' not in page
    assert "<th>Δ ckpt-B</th>" in page and "overall|overall" in page
    assert "<li>95% CI: percentile bootstrap" in page


@register("scorer", "toy_broken")
class ToyBroken:
    """A scorer whose aggregate cannot handle its own per_sample table."""

    name = "toy_broken"

    def score(self, data, predictions, *, profile, judge):  # pragma: no cover
        raise NotImplementedError

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, float]:
        raise KeyError("no column 'category_v2'")


def test_unusable_scorers_and_partial_overlap_degrade_loudly(tmp_path):
    rng = np.random.default_rng(3)
    a, b = tmp_path / "a", tmp_path / "b"
    for run, n in ((a, 40), (b, 30)):
        write_run_json(run, run.name)
        write_suite(run, "ToyYN", ToyYorn, yorn_table(rng.random(n) < 0.5))
        stored = write_suite(run, "Broken", ToyYorn, yorn_table(np.ones(10, dtype=bool)))
        scores = json.loads((run / "Broken" / "scores.json").read_text())
        (run / "Broken" / "scores.json").write_text(json.dumps({**scores, "scorer": "toy_broken"}))
        write_suite(run, "Unknown", ToyYorn, yorn_table(np.ones(10, dtype=bool)))
        scores = json.loads((run / "Unknown" / "scores.json").read_text())
        (run / "Unknown" / "scores.json").write_text(json.dumps({**scores, "scorer": "no_such_scorer"}))
    comparison = compare_runs(load_runs([a, b], None), n_boot=50)
    text, notes = "\n".join(comparison.warnings), "\n".join(comparison.notes)
    assert "ToyYN [b]: compared on different samples (baseline 40, this run 30, 30 in common)" in text
    assert "Broken [a]: no confidence intervals or p-values: aggregate failed" in notes
    assert "Unknown [a]: no confidence intervals or p-values: scorer 'no_such_scorer' unavailable" in notes
    broken = next(r for r in comparison.rows if r.suite == "Broken" and r.group == "headline")
    assert broken.estimates["a"].shown == stored["metrics"]["Overall"] and broken.estimates["a"].ci is None
    assert broken.diffs["b"].delta == 0 and broken.diffs["b"].p is None
    toy = next(r for r in comparison.rows if r.suite == "ToyYN" and r.group == "headline")
    assert toy.diffs["b"].p is not None
