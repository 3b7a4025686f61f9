"""MathVista_MINI, scored as VLMEvalKit's `MathVista.evaluate_heuristic` (rules unchanged since 2024).

Deviation, loud by design: VLMEvalKit asserts a working judge and produces no score without one;
here rows the prefetch cannot settle are scored as judge failures (`res=''`, wrong) and a note says so.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from vita_eval.registry import register
from vita_eval.scorers.base import ScoreResult, ratio, weighted_sums
from vita_eval.scorers.judge_prompts import mathvista_prompt
from vita_eval.scorers.judging import RISING_TEMPERATURES, first_accepted, judge_map, usable_judge
from vita_eval.scorers.matching import can_infer
from vita_eval.scorers.predictions import NA_STRINGS, align, prediction_text, reject_rows
from vita_eval.scorers.profiles import Profile, resolve_profile

PREFETCH_LOG = "Prefetch succeed"
JUDGE_MAX_TOKENS = 128  # build_judge(max_tokens=128)


def _choices(row: pd.Series) -> dict[str, Any]:
    """`list_to_dict(eval(choices))`: A, B, C, ... for the listed choice texts."""
    return {chr(65 + i): text for i, text in enumerate(ast.literal_eval(row["choices"]))}


def unscorable(row: pd.Series) -> str | None:
    """Why VLMEvalKit could not score a row at all (its `eval(choices)` raises), else None."""
    if row["question_type"] == "multi_choice":
        try:
            choices = ast.literal_eval(str(row["choices"]))
        except (ValueError, SyntaxError) as exc:
            return f"choices cell is not a list literal ({type(exc).__name__}): {str(row['choices'])[:80]!r}"
        if not isinstance(choices, (list, tuple)) or not choices:
            return f"choices cell is not a non-empty list: {str(row['choices'])[:80]!r}"
    return None


def post_check(row: pd.Series, response: Any, generation: int, *, prefetch: bool) -> Any:
    """VLMEvalKit `post_check`: the prefetched value (prefetch=True) or whether `response` is right.

    multi_choice returns can_infer's letter when prefetching, right or wrong; integer and float
    compare exactly (no rounding to `precision`); any other answer type never matches.
    """
    result: Any = None
    truth: Any = row["answer"]
    try:
        if row["question_type"] == "multi_choice":
            truth = row["answer_option"]
            result = can_infer(response, _choices(row), generation)
            if prefetch:
                return result
        elif row["answer_type"] == "integer":
            result = int(response)
            truth = int(row["answer"])
        elif row["answer_type"] == "float":
            result = float(response)
            truth = float(row["answer"])
        else:
            result, truth = str(result), str(truth)
    except ValueError:
        pass
    if result == truth:
        return result if prefetch else True
    return False


def _skills(cell: Any) -> list[str]:
    """`eval(skills)`, or the cell itself when it is not a list literal."""
    try:
        return list(ast.literal_eval(cell))
    except (SyntaxError, ValueError):
        return [cell]


def _stored(res: Any) -> Any:
    """`res` after VLMEvalKit's xlsx round trip: '' and NA strings come back as NaN ("nan" once str'd)."""
    return "nan" if isinstance(res, str) and (res in NA_STRINGS) else res


def _judge_extract(judge: Any | None, row: pd.Series, prediction: str) -> str | None:
    """`MathVista_auxeval` after prefetch: up to 5 tries, retried only on failure; the reply is kept verbatim."""
    if judge is None:
        return None
    prompt = mathvista_prompt(row["question"], prediction)
    return first_accepted(judge, prompt, RISING_TEMPERATURES, lambda reply: reply, JUDGE_MAX_TOKENS,
                          uid=row["index"])


class MathVistaScorer:
    """MathVista: VLMEvalKit's judge extraction then its exact-match rules, accuracy per task and skill."""

    name = "mathvista"
    data_columns = (  # what `score` reads from the dataset rows
        "index", "question", "answer", "question_type", "answer_type", "answer_option", "choices", "task", "skills",
    )

    def score(
        self, data: pd.DataFrame, predictions: pd.DataFrame, *, profile: Profile | str, judge: Any | None
    ) -> ScoreResult:
        profile = resolve_profile(profile)
        rows, failures = align(data, predictions)
        rows, rejected = reject_rows(rows, [unscorable(row) for _, row in rows.iterrows()])
        failures += rejected
        active, notes = usable_judge(judge, "MathVista")
        empty = [str(i) for i, a in zip(rows["index"], rows["answer"]) if pd.isna(a)]
        if empty:
            notes.append(f"MathVista: {len(empty)} rows have an empty answer cell and count as wrong "
                         f"(as in VLMEvalKit): index {', '.join(empty[:10])}")
        items = [row for _, row in rows.iterrows()]  # rows are independent: judged concurrently
        records = judge_map(active, lambda row: self._score_row(row, active, profile), items)
        per_sample = pd.DataFrame(
            records, columns=["uid", "cluster", "task", "skills", "prefetch", "log", "res", "hit"]
        )
        unsettled = int((~per_sample["prefetch"]).sum()) if len(per_sample) else 0
        if active is None and unsettled:
            notes.append(
                f"MathVista: judge unavailable, {unsettled} rows scored wrong (VLMEvalKit would refuse to score)"
            )
        failed = int(((~per_sample["prefetch"]) & (per_sample["res"] == "")).sum()) if active is not None else 0
        if failed:
            notes.append(f"MathVista: judge failed 5 times on {failed} rows, scored wrong")
        metrics: dict[str, Any] = self.aggregate(per_sample)
        metrics["MathVista_acc"] = self.table(per_sample).to_dict(orient="records")
        return ScoreResult.of(per_sample, metrics, failures, notes, judge)

    @staticmethod
    def _score_row(row: pd.Series, judge: Any | None, profile: Profile) -> dict[str, Any]:
        prediction = prediction_text(row["prediction"])
        generation = profile.matcher_generation
        prefetched = post_check(row, prediction, generation, prefetch=True)
        if prefetched:  # truthiness: a correct answer of 0 is not prefetched
            log, res = PREFETCH_LOG, prefetched
        else:
            reply = _judge_extract(judge, row, prediction)
            log, res = ("Succeed", reply) if reply is not None else ("All 5 retries failed.", "")
        return {
            "uid": str(row["index"]),
            "cluster": str(row["index"]),
            "task": row["task"],
            "skills": _skills(row["skills"]),
            "prefetch": log == PREFETCH_LOG,
            "log": log,
            "res": res,
            "hit": bool(post_check(row, _stored(res), generation, prefetch=False)),
        }

    @staticmethod
    def table(per_sample: pd.DataFrame) -> pd.DataFrame:
        """`MathVista_acc`: Overall, then skills and tasks by first appearance (a row's skills before its task)."""
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # tot, prefetch, hit
        for task, skills, prefetched, hit in per_sample[["task", "skills", "prefetch", "hit"]].itertuples(index=False):
            for key in ["Overall", *skills, task]:
                counts[key][0] += 1
                counts[key][1] += int(prefetched)
                counts[key][2] += int(hit)
        return pd.DataFrame(
            [
                {"Task&Skill": k, "tot": t, "prefetch": f, "hit": h, "prefetch_rate": f / t * 100, "acc": h / t * 100}
                for k, (t, f, h) in counts.items()
            ],
            columns=["Task&Skill", "tot", "prefetch", "hit", "prefetch_rate", "acc"],
        )

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, float]:
        """{"Overall": acc, "<skill or task>": acc, ...} as percentages, in MathVista_acc row order."""
        return {row["Task&Skill"]: float(row["acc"]) for _, row in self.table(per_sample).iterrows()}

    @staticmethod
    def aggregate_weighted(per_sample: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        """`aggregate` for every row of `weights` (resamples x rows): a row counts once per key it lists."""
        keys: dict[str, np.ndarray] = {}
        for row, (task, skills) in enumerate(per_sample[["task", "skills"]].itertuples(index=False)):
            for key in ["Overall", *skills, task]:
                keys.setdefault(key, np.zeros(len(per_sample)))[row] += 1
        hit = per_sample["hit"].to_numpy(dtype=np.float64)
        tot = weighted_sums(weights, keys)
        hits = weighted_sums(weights, {key: times * hit for key, times in keys.items()})
        return {key: ratio(hits[key], tot[key], 100) for key in keys}


register("scorer", "mathvista")(MathVistaScorer)
