"""The report's speech-out section: text-out beside speech-out per suite, the paired cost of speaking.

Read from each run's `<suite>/speech/scores.json` (written by `vita_eval.speech.suite`); runs without
speech output add nothing, so reports of text-only runs are unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from vita_eval import fsio

SPEECH_METRICS = ("consistency_wer", "consistency_cer", "duration_s", "rtf", "dnsmos_ovrl", "dnsmos_sig",
                  "dnsmos_bak")


def _num(value: Any, digits: int = 2) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "—"


def _ci(ci: Any, digits: int = 2) -> str:
    return f" [{_num(ci[0], digits)}, {_num(ci[1], digits)}]" if ci else ""


def speech_scores(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Suite name -> speech scores.json, for every suite of a run that spoke."""
    found = {}
    for path in sorted(Path(run_dir).glob("*/speech/scores.json")):
        scores = fsio.read_json(path)
        if isinstance(scores, dict):
            found[scores.get("suite", path.parent.parent.name)] = scores
    return found


def speech_section(runs: Sequence[Any]) -> str:
    """Markdown for runs (objects with `path` and `label`) that have speech output; '' when none has."""
    per_run = [(run.label, speech_scores(run.path)) for run in runs]
    if not any(found for _, found in per_run):
        return ""
    lines = ["", "## Speech out: what speaking costs", "",
             "Each answer spoken by the model's speech decoder and codec, transcribed by Whisper, and scored by the "
             "suite's own scorer; text-out is the same samples' text answers. Δ = speech − text with its paired "
             "cluster-bootstrap 95% CI.", "",
             "| suite | run | metric | spoken | failed | text-out | speech-out | Δ [95% CI] | p |",
             "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for label, found in per_run:
        for suite, s in found.items():
            if "text" not in s:
                notes.append(f"{suite} [{label}]: " + "; ".join(s.get("notes", [])))
                continue
            for metric in s.get("headline") or list(s["paired"])[:1]:
                d = s["paired"].get(metric, {})
                lines.append(f"| {suite} | {label} | {metric} | {s['n']} | {s['n_failed']} | "
                             f"{_num(s['text'].get(metric))} | {_num(s['speech'].get(metric))} | "
                             f"{_num(d.get('delta'))}{_ci(d.get('ci'))} | {_num(d.get('p'), 3)} |")
            if s["n_failed"]:
                first = s["failures"][0]
                notes.append(f"{suite} [{label}]: {s['n_failed']} utterances failed (first: {first['uid']}: "
                             f"{first['reason']})")
    lines += ["", "Per-utterance speech metrics (mean or corpus value, 95% CI):", "",
              "| suite | run | ASR | " + " | ".join(SPEECH_METRICS) + " |", "|---|---|---|" + "---|" * len(SPEECH_METRICS)]
    for label, found in per_run:
        for suite, s in found.items():
            metrics = s.get("speech_metrics", {})
            if not metrics:
                continue
            cells = [(_num(metrics[m]["value"]) + _ci(metrics[m]["ci"])) if m in metrics else "—"
                     for m in SPEECH_METRICS]
            lines.append(f"| {suite} | {label} | {s.get('asr', {}).get('asr', '?')} | " + " | ".join(cells) + " |")
            if isinstance(s.get("mos"), str):
                notes.append(f"{suite} [{label}]: MOS {s['mos']}")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
