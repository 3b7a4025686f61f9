"""ASR: corpus-level WER (English) or CER (Chinese), as (S + D + I) / N summed over utterances (x100).

VLMEvalKit has no ASR; the convention follows the VITA team's WeNet compute-wer (`wenet`, default)
or the Whisper normalizers (`whisper`), chosen by `Profile.asr_normalizer` and recorded in
`metrics["normalizer"]`. Under `wenet` the S/D/I split is compute-wer.py's own (its alignment prefers
a deletion, then an insertion, over a match or substitution of equal cost); under `whisper` it is
jiwer's. Equal-cost alignments differ only in the split, never in the sum, so the rate is the same.
Hypotheses are text: "None" is scored as the word NONE, as compute-wer and jiwer score it.
"""

from __future__ import annotations

from typing import Any

import jiwer
import numpy as np
import pandas as pd

from vita_eval.registry import register
from vita_eval.scorers.asr_normalizers import NORMALIZERS
from vita_eval.scorers.base import ScoreResult, ratio, weighted_sums
from vita_eval.scorers.predictions import align, reject_rows
from vita_eval.scorers.profiles import Profile, resolve_profile
from vita_eval.types import SuiteError

METRIC_BY_LANGUAGE = {"en": "wer", "zh": "cer"}


def jiwer_error_counts(references: list[list[str]], hypotheses: list[list[str]]) -> pd.DataFrame:
    """Per-utterance S, D, I, N (N = reference tokens) from one jiwer alignment of the whole set."""
    if not references:
        return pd.DataFrame(columns=["S", "D", "I", "N"])
    out = jiwer.process_words([" ".join(r) for r in references], [" ".join(h) for h in hypotheses])
    rows = []
    for chunks, reference in zip(out.alignments, references):
        counts = {"substitute": 0, "delete": 0, "insert": 0}
        for chunk in chunks:
            if chunk.type in counts:
                span = (
                    chunk.hyp_end_idx - chunk.hyp_start_idx
                    if chunk.type == "insert"
                    else chunk.ref_end_idx - chunk.ref_start_idx
                )
                counts[chunk.type] += span
        rows.append({"S": counts["substitute"], "D": counts["delete"], "I": counts["insert"], "N": len(reference)})
    return pd.DataFrame(rows, columns=["S", "D", "I", "N"])


_START, _DEL, _INS, _COR, _SUB = range(5)


def _wenet_operations(lab: list[str], rec: list[str]) -> list[bytearray]:
    """compute-wer.py `Calculator.calculate`'s table of chosen operations (row i: lab[:i], column j: rec[:j]).

    Borders: deletions down the first column, insertions along the first row. Each inner cell starts
    from the deletion (cell above + 1), takes the insertion (cell left + 1) only if strictly cheaper,
    then the match (diagonal + 0) or substitution (diagonal + 1) only if strictly cheaper still.
    """
    width = len(rec) + 1
    ops = [bytearray([_START] + [_INS] * len(rec))]
    above = list(range(width))
    for i, lab_token in enumerate(lab, start=1):
        row, dist = bytearray(width), [i] * width
        row[0] = _DEL
        for j in range(1, width):
            best, op = above[j] + 1, _DEL
            if dist[j - 1] + 1 < best:
                best, op = dist[j - 1] + 1, _INS
            same = lab_token == rec[j - 1]
            if above[j - 1] + (0 if same else 1) < best:
                best, op = above[j - 1] + (0 if same else 1), _COR if same else _SUB
            dist[j], row[j] = best, op
        ops.append(row)
        above = dist
    return ops


def wenet_error_counts(references: list[list[str]], hypotheses: list[list[str]]) -> pd.DataFrame:
    """Per-utterance S, D, I, N as wenet's compute-wer.py counts them: its traceback from the last cell.

    Reference "A B", hypothesis "B C": compute-wer aligns B with B, so S0 D1 I1 (jiwer says S2).
    """
    rows = []
    for lab, rec in zip(references, hypotheses):
        ops = _wenet_operations(lab, rec)
        counts = {_SUB: 0, _DEL: 0, _INS: 0, _COR: 0}
        i, j = len(lab), len(rec)
        while (op := ops[i][j]) != _START:
            counts[op] += 1
            i, j = (i, j - 1) if op == _INS else (i - 1, j) if op == _DEL else (i - 1, j - 1)
        rows.append({"S": counts[_SUB], "D": counts[_DEL], "I": counts[_INS], "N": len(lab)})
    return pd.DataFrame(rows, columns=["S", "D", "I", "N"])


ALIGNERS = {"wenet": wenet_error_counts, "whisper": jiwer_error_counts}


def _check_languages(rows: pd.DataFrame) -> None:
    unknown = set(map(str, rows["language"])) - set(METRIC_BY_LANGUAGE)
    if unknown:
        raise SuiteError(f"ASR: unsupported languages {sorted(unknown)}; supported: {sorted(METRIC_BY_LANGUAGE)}")


class ASRScorer:
    """Corpus-level WER/CER per set with the wenet or whisper normalizer (wenet compute-wer / jiwer)."""

    name = "asr"
    literal_text = True  # hypotheses and references are read as written: no pandas NA strings
    data_columns = ("index", "answer", "language")  # what `score` reads from the dataset rows

    def score(
        self, data: pd.DataFrame, predictions: pd.DataFrame, *, profile: Profile | str, judge: Any | None
    ) -> ScoreResult:
        """A missing (NaN or None) hypothesis is an empty transcript: all its reference tokens are deletions."""
        profile = resolve_profile(profile)
        rows, failures = align(data, predictions)
        normalize = NORMALIZERS[profile.asr_normalizer]
        _check_languages(rows)
        reasons = [None if normalize(str(text), str(lang)) else
                   f"reference text {str(text)[:40]!r} is empty after the {profile.asr_normalizer} normalizer: "
                   "every hypothesis word would count as an insertion" for text, lang in zip(rows["answer"], rows["language"])]
        rows, rejected = reject_rows(rows, reasons)
        failures += rejected
        languages = [str(x) for x in rows["language"]]
        refs = [normalize(str(text), lang) for text, lang in zip(rows["answer"], languages)]
        hyps = [[] if pd.isna(text) else normalize(str(text), lang) for text, lang in zip(rows["prediction"], languages)]
        per_sample = pd.concat(
            [
                pd.DataFrame(
                    {
                        "uid": rows["index"].astype(str),
                        "cluster": rows["index"].astype(str),
                        "language": rows["language"],
                    }
                ),
                ALIGNERS[profile.asr_normalizer](refs, hyps),
            ],
            axis=1,
        )
        metrics: dict[str, Any] = self.aggregate(per_sample)
        metrics["normalizer"] = profile.asr_normalizer
        kinds = "/".join(METRIC_BY_LANGUAGE[lang].upper() for lang in sorted(set(languages))) or "WER"
        notes = [f"ASR: {kinds} with the {profile.asr_normalizer} normalizer"]
        return ScoreResult.of(per_sample, metrics, failures, notes)

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, float]:
        """Per language {"wer"|"cer": percent, S, D, I, N} summed over utterances (compute-wer's Overall line).

        A set holding one language gets plain S/D/I/N keys; a mixed manifest prefixes them with the language.
        """
        groups = list(per_sample.groupby("language", sort=True)) if len(per_sample) else []
        out: dict[str, float] = {}
        for language, rows in groups:
            totals = {k: float(rows[k].sum()) for k in ("S", "D", "I", "N")}
            errors = totals["S"] + totals["D"] + totals["I"]
            out[METRIC_BY_LANGUAGE[str(language)]] = errors / totals["N"] * 100 if totals["N"] else 0.0
            prefix = "" if len(groups) == 1 else f"{language}|"
            out.update({prefix + k: v for k, v in totals.items()})
        return out

    def aggregate_weighted(self, per_sample: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        """`aggregate` for every row of `weights` (resamples x rows): weighted S, D, I, N sums per language.

        As in `aggregate`, keys are prefixed only when several languages are present, so a resample
        that loses a language of a mixed set has no value for the prefixed keys.
        """
        languages = sorted(set(per_sample["language"])) if len(per_sample) else []
        counts = {k: per_sample[k].to_numpy(dtype=np.float64) for k in ("S", "D", "I", "N")}
        columns = {}
        for language in languages:
            inside = (per_sample["language"] == language).to_numpy(dtype=np.float64)
            columns |= {(language, "rows"): inside, **{(language, k): inside * v for k, v in counts.items()}}
        sums = weighted_sums(weights, columns)
        present = {language: sums[(language, "rows")] > 0 for language in languages}
        n_present = sum((p.astype(int) for p in present.values()), np.zeros(len(weights), dtype=int))
        out: dict[str, np.ndarray] = {}
        for language in languages:
            totals = {k: sums[(language, k)] for k in counts}
            rate = np.where(totals["N"] > 0, ratio(totals["S"] + totals["D"] + totals["I"], totals["N"], 100), 0.0)
            out[METRIC_BY_LANGUAGE[str(language)]] = np.where(present[language], rate, np.nan)
            prefix = "" if len(languages) == 1 else f"{language}|"
            same_keys = present[language] & ((n_present == 1) == (len(languages) == 1))
            out.update({prefix + k: np.where(same_keys, v, np.nan) for k, v in totals.items()})
        return out


register("scorer", "asr")(ASRScorer)
