"""MMBench, scored as VLMEvalKit's `ImageMCQDataset.evaluate` (CircularEval + `report_acc`).

Version differences come from the profile: the `can_infer` generation, the dataset-name keywords
that switch CircularEval on, and whether a `g_index` column defines the groups (HEAD) or
`index % 1e6` always does (VITA-2024). VLMEvalKit's random fallback letter is unseeded; here
it is drawn from `random.Random(profile.mcq_random_seed)` and every firing is reported.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vita_eval.registry import register
from vita_eval.scorers.base import ScoreResult, ratio, weighted_sums
from vita_eval.scorers.judge_prompts import mcq_prompt
from vita_eval.scorers.judging import MCQ_TEMPERATURES, first_accepted, usable_judge
from vita_eval.scorers.matching import API_FAILURE, can_infer, can_infer_in_place
from vita_eval.scorers.predictions import align, prediction_text
from vita_eval.scorers.profiles import Profile, resolve_profile

L2_ABBREVIATIONS = {
    "coarse_perception": "CP",
    "finegrained_perception (instance-level)": "FP-S",
    "finegrained_perception (cross-instance)": "FP-C",
    "logic_reasoning": "LR",
    "relation_reasoning": "RR",
    "attribute_reasoning": "AR",
}
NO_ANSWERS_NOTE = "MMBench: no answers: submission file written"


def row_choices(row: pd.Series) -> dict[str, Any]:
    """`build_choices`: the non-NaN single-capital-letter columns (an option read as NaN is no option)."""
    return {c: row[c] for c in string.ascii_uppercase if c in row.index and not pd.isna(row[c])}


@dataclass
class OptionExtractor:
    """`extract_answer_from_item`: rule match, else up to 3 judge tries, else a (seeded) random letter."""

    generation: int
    judge: Any | None
    rng: random.Random
    random_fallbacks: int = 0

    def match(self, prediction: str, choices: dict[str, Any]) -> str | None:
        return can_infer(prediction, choices, self.generation) or None

    def __call__(self, question: Any, choices: dict[str, Any], prediction: str) -> str:
        prompt = mcq_prompt(question, choices, prediction)  # upstream builds option_str before matching
        working = dict(choices)  # the one dict upstream matches the prediction and every judge reply against

        def match(answer: str) -> str | None:
            return can_infer_in_place(answer, working, self.generation) or None

        matched = match(prediction)
        if matched is not None:
            return matched
        if self.judge is None:
            return "Z"  # "Failed in Prefetch, no GPT-based answer matching under `exact_matching` policy."

        def match_reply(reply: str) -> str | None:
            return None if API_FAILURE in reply else match(reply)  # a failed reply is not matched upstream

        judged = first_accepted(self.judge, prompt, MCQ_TEMPERATURES, match_reply)
        if judged is not None:
            return judged
        self.random_fallbacks += 1
        return self.rng.choice([*choices] + ([] if "Z" in choices else ["Z"]))


def _lower_columns(table: pd.DataFrame) -> pd.DataFrame:
    """VLMEvalKit lower-cases every column name that is not a single capital letter."""
    return table.rename(columns={c: c if c in string.ascii_uppercase else c.lower() for c in table.columns})


def _group_hit(copies: pd.DataFrame, extract: OptionExtractor) -> tuple[int, str]:
    """`prefetch_circular_group` then `eval_circular_group`: hit and how it was decided."""
    items = [row for _, row in copies.iterrows()]
    prefetched = [extract.match(prediction_text(r["prediction"]), row_choices(r)) for r in items]
    truths = [r["answer"] for r in items]
    if any(p is not None and p != gt for p, gt in zip(prefetched, truths)):
        return 0, "prefetch"
    if all(p == gt for p, gt in zip(prefetched, truths)):
        return 1, "prefetch"
    if extract.judge is None:
        return 0, "unresolved"
    for row, p, gt in zip(items, prefetched, truths):
        if p is None and extract(row["question"], row_choices(row), prediction_text(row["prediction"])) != gt:
            return 0, "judge"
    return 1, "judge"


def _group_ids(rows: pd.DataFrame, profile: Profile) -> pd.Series:
    if profile.mmbench_uses_g_index and "g_index" in rows:
        return rows["g_index"].astype(int)
    return (rows["index"] % int(1e6)).astype(int)


def _mean_by_split(rows: pd.DataFrame, split: str) -> float:
    hits = rows.loc[rows["split"] == split, "hit"]
    return float(np.mean(hits)) if len(hits) else float("nan")


class MMBenchScorer:
    """MMBench CircularEval: VLMEvalKit's option matcher (three generations), judge fallback, L2 categories."""

    name = "mmbench"
    data_columns = ("index", "question", "A", "B")  # what `score` reads from the dataset rows

    def score(
        self,
        data: pd.DataFrame,
        predictions: pd.DataFrame,
        *,
        profile: Profile | str,
        judge: Any | None,
        dataset: str = "MMBench",
    ) -> ScoreResult:
        """`dataset` is the VLMEvalKit dataset name; the profile's keywords decide CircularEval from it."""
        profile = resolve_profile(profile)
        data = _lower_columns(data)
        rows, failures = align(data, predictions)
        if "answer" not in rows or rows["answer"].isna().all():
            return ScoreResult.of(pd.DataFrame(), {}, failures, [NO_ANSWERS_NOTE], judge)
        active, notes = usable_judge(judge, "MMBench")
        extract = OptionExtractor(profile.matcher_generation, active, random.Random(profile.mcq_random_seed))
        rows = rows.assign(index=rows["index"].astype(int)).sort_values("index", kind="stable")
        if any(k in dataset.lower() for k in profile.mmbench_circular_keywords):
            per_sample, orphans = self._circular(rows, profile, extract)
            failures += orphans
        else:
            per_sample = self._vanilla(rows, extract)
        unresolved = int((per_sample["decided_by"] == "unresolved").sum())
        if unresolved:
            notes.append(f"MMBench: {unresolved} groups unresolved without a judge (hit 0)")
        if extract.random_fallbacks:
            notes.append(f"MCQ random fallback fired {extract.random_fallbacks} times (seed {profile.mcq_random_seed})")
        return ScoreResult.of(per_sample, self.aggregate(per_sample), failures, notes, judge)

    @staticmethod
    def _report_columns(rows: pd.DataFrame) -> dict[str, Any]:
        split = rows["split"] if "split" in rows else "none"
        return {
            "split": split,
            **{c: rows[c] for c in ("category", "l2-category") if c in rows},
        }

    def _circular(
        self, rows: pd.DataFrame, profile: Profile, extract: OptionExtractor
    ) -> tuple[pd.DataFrame, list[dict[str, str]]]:
        """One per_sample row per copy-0 row (index == g_index), carrying its group's hit."""
        rows = rows.assign(g_index=_group_ids(rows, profile))
        main = rows[rows["index"] == rows["g_index"]]
        orphans = [
            {"uid": str(i), "reason": "circular group has no copy-0 prediction"}
            for i in rows.loc[~rows["g_index"].isin(main["index"]), "index"]
        ]
        decided = [_group_hit(rows[rows["g_index"] == g], extract) for g in main["index"]]
        per_sample = pd.DataFrame(
            {
                "uid": main["index"].astype(str),
                "cluster": main["g_index"],
                "hit": [hit for hit, _ in decided],
                "decided_by": [how for _, how in decided],
                **self._report_columns(main),
            }
        )
        return per_sample.reset_index(drop=True), orphans

    def _vanilla(self, rows: pd.DataFrame, extract: OptionExtractor) -> pd.DataFrame:
        """`mcq_vanilla_eval`: each row on its own (datasets outside the circular keywords)."""
        options = [extract(r["question"], row_choices(r), prediction_text(r["prediction"])) for _, r in rows.iterrows()]
        per_sample = pd.DataFrame(
            {
                "uid": rows["index"].astype(str),
                "cluster": rows["index"],
                "hit": [int(o == gt) for o, gt in zip(options, rows["answer"])],
                "decided_by": "extract",
                **self._report_columns(rows),
            }
        )
        return per_sample.reset_index(drop=True)

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, float]:
        """`report_acc` (fractions): Overall, l2-categories (abbreviated, sorted by raw name), categories (sorted).

        One split gives plain keys; several splits give "<split>|<key>" keys.
        """
        splits = sorted(set(per_sample["split"]), key=str)
        metrics: dict[str, float] = {}
        for split in splits:
            prefix = f"{split}|" if len(splits) > 1 else ""
            metrics[f"{prefix}Overall"] = _mean_by_split(per_sample, split)
            for column in ("l2-category", "category"):
                if column not in per_sample:
                    continue
                for ability in sorted(set(per_sample[column])):
                    name = L2_ABBREVIATIONS.get(ability, ability)
                    metrics[f"{prefix}{name}"] = _mean_by_split(per_sample[per_sample[column] == ability], split)
        return metrics

    def aggregate_weighted(self, per_sample: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        """`aggregate` for every row of `weights` (resamples x rows): weighted hit rates of the same groups."""
        splits = sorted(set(per_sample["split"]), key=str)
        hit = per_sample["hit"].to_numpy(dtype=np.float64)
        groups: dict[str, np.ndarray] = {}
        for split in splits:
            prefix = f"{split}|" if len(splits) > 1 else ""
            in_split = (per_sample["split"] == split).to_numpy()
            groups[f"{prefix}Overall"] = in_split
            for column in ("l2-category", "category"):
                if column not in per_sample:
                    continue
                for ability in sorted(set(per_sample[column])):
                    name = L2_ABBREVIATIONS.get(ability, ability)
                    groups[f"{prefix}{name}"] = in_split & (per_sample[column] == ability).to_numpy()
        rows = weighted_sums(weights, {name: mask for name, mask in groups.items()})
        hits = weighted_sums(weights, {name: mask * hit for name, mask in groups.items()})
        return {name: ratio(hits[name], rows[name]) for name in groups}


register("scorer", "mmbench")(MMBenchScorer)
