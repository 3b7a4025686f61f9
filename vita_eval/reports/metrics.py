"""How a metric reads: its name for people, its scale, and how many decimals that scale deserves.

scores.json keeps VLMEvalKit's keys (`overall|overall`, `CP`, `wer`) and scales (MME points,
MMBench and Video-MME fractions, MathVista and WER percentages); reports show the same
numbers under readable names, formatted by scale rather than by magnitude, so a WER of 7.5
prints as 7.50 % and an MMBench accuracy as 0.7779.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vita_eval.scorers.base import METRIC_PATH

# What VLMEvalKit's MMBench abbreviations stand for (report_acc's l2 names).
MMBENCH_L2 = {"CP": "coarse perception", "FP-S": "fine-grained perception, single instance",
              "FP-C": "fine-grained perception, cross instance", "LR": "logic reasoning",
              "RR": "relation reasoning", "AR": "attribute reasoning"}
ASR_COUNTS = {"S": "substitutions", "D": "deletions", "I": "insertions", "N": "reference tokens"}
MME_TOTALS = {"perception": 2000, "reasoning": 800}


@dataclass(frozen=True)
class Scale:
    """A metric's unit and the decimals its values are printed with."""

    unit: str  # "points" | "fraction" | "%" | "count" | ""
    places: int

    @property
    def axis(self) -> str:
        return {"points": "points", "fraction": "accuracy (fraction)", "%": "percent", "count": "count"}.get(
            self.unit, "value")


POINTS, FRACTION, PERCENT, COUNT = Scale("points", 2), Scale("fraction", 4), Scale("%", 2), Scale("count", 0)


def _videomme_vita(metric: str) -> bool:
    """VITA's own parser writes plain duration keys in percent; VLMEvalKit's nest duration / ... fractions."""
    return METRIC_PATH not in metric


def scale_of(scorer: str | None, metric: str) -> Scale | None:
    """The scale of a built-in scorer's metric; None for scorers this module does not know."""
    base = metric.rsplit("|", 1)[-1]
    if scorer == "mme":
        return POINTS
    if scorer == "mmbench":
        return FRACTION
    if scorer == "mathvista":
        return PERCENT
    if scorer == "videomme":
        return PERCENT if _videomme_vita(metric) else FRACTION
    if scorer == "asr":
        return COUNT if base in ASR_COUNTS else PERCENT
    return None


def metric_name(scorer: str | None, metric: str) -> str:
    """A readable name for a metric key (the key itself when nothing better is known)."""
    base = metric.rsplit("|", 1)[-1]
    if scorer == "mme":
        if metric in MME_TOTALS:
            return f"{metric} (of {MME_TOTALS[metric]})"
        return f"{metric.replace('_', ' ')} (of 200)"
    if scorer == "mmbench":
        split = metric.rsplit("|", 1)[0] + ": " if "|" in metric else ""
        if base == "Overall":
            return f"{split}overall accuracy"
        return f"{split}{base} ({MMBENCH_L2[base]})" if base in MMBENCH_L2 else f"{split}{base}"
    if scorer == "mathvista":
        return "overall accuracy" if metric == "Overall" else metric
    if scorer == "asr":
        language = metric.split("|")[0] + ": " if "|" in metric else ""
        return f"{language}{ASR_COUNTS[base]}" if base in ASR_COUNTS else f"{language}{base.upper()}"
    if scorer == "videomme":
        return _videomme_name(metric)
    return metric


def _videomme_name(metric: str) -> str:
    parts = metric.split(METRIC_PATH)
    if len(parts) == 1:  # VITA's parser
        return "overall accuracy" if metric == "overall" else f"{metric} videos"
    duration, rest = parts[0], parts[1:]
    scope = "" if duration == "overall" else f"{duration} videos"
    if rest == ["overall"]:
        return "overall accuracy" if not scope else scope
    what = f"{rest[0].replace('_', ' ')}: {rest[1]}" if len(rest) == 2 else METRIC_PATH.join(rest)
    return f"{scope} · {what}" if scope else what


def format_value(value: Any, scale: Scale | None) -> str:
    """A stored value printed at its scale's precision (strings such as Video-MME's "0.583" verbatim)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    x = float(value)
    if not math.isfinite(x):
        return "nan"
    places = scale.places if scale is not None else (2 if abs(x) >= 10 else 4)
    return f"{x:.{places}f}"


def with_unit(text: str, scale: Scale | None) -> str:
    return f"{text} %" if scale is not None and scale.unit == "%" and text != "nan" else text
