"""MMBench, scored as VLMEvalKit's `ImageMCQDataset.evaluate` (CircularEval + `report_acc`).

Version differences come from the profile: the `can_infer` generation, the dataset-name keywords
that switch CircularEval on, and whether a `g_index` column defines the groups (HEAD) or
`index % 1e6` always does (VITA-2024). VLMEvalKit's random fallback letter is unseeded; here
it is drawn from `random.Random(profile.mcq_random_seed)` and every firing is reported.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vita_eval.registry import register
from vita_eval.scorers.base import ScoreResult, ratio, weighted_sums
from vita_eval.scorers.judge_prompts import mcq_prompt
from vita_eval.scorers.judging import MCQ_TEMPERATURES, first_accepted, judge_map, usable_judge
from vita_eval.scorers.matching import API_FAILURE, can_infer, can_infer_in_place
from vita_eval.scorers.predictions import align, index_key, prediction_text, reject_rows
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
    """`extract_answer_from_item`: rule match, else up to 3 judge tries, else a (seeded) random letter.

    `judge_ahead` asks the judge for items the sequential pass will certainly ask about,
    concurrently; the pass then reuses those answers, so results (and the order of the
    seeded random fallbacks) are those of the plain sequential loop. Items are (question, choices,
    prediction, uid): the uid of the row scored, under which its judge calls are logged.
    """

    generation: int
    judge: Any | None
    rng: random.Random
    random_fallbacks: int = 0
    judged: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (uid, prompt) -> letter, asked ahead

    def match(self, prediction: str, choices: dict[str, Any]) -> str | None:
        return can_infer(prediction, choices, self.generation) or None

    def _judge(self, question: Any, choices: dict[str, Any], prediction: str, uid: str) -> str | None:
        """The judge's letter (None when every try failed), each reply matched as upstream matches it."""
        prompt = mcq_prompt(question, choices, prediction)  # upstream builds option_str before matching
        if (uid, prompt) in self.judged:
            return self.judged[(uid, prompt)]
        working = dict(choices)  # the one dict upstream matches the prediction and every judge reply against
        can_infer_in_place(prediction, working, self.generation)

        def match_reply(reply: str) -> str | None:
            if API_FAILURE in reply:  # a failed reply is not matched upstream
                return None
            return can_infer_in_place(reply, working, self.generation) or None

        return first_accepted(self.judge, prompt, MCQ_TEMPERATURES, match_reply, uid=uid)

    def judge_ahead(self, items: list[tuple[Any, dict[str, Any], str, str]]) -> None:
        """Judge (question, choices, prediction, uid) items concurrently, up to the judge's limit."""
        items = [item for item in items if self.judge is not None and self.match(item[2], item[1]) is None]
        letters = judge_map(self.judge, lambda item: self._judge(*item), items)
        self.judged.update({(item[3], mcq_prompt(*item[:3])): letter for item, letter in zip(items, letters)})

    def __call__(self, question: Any, choices: dict[str, Any], prediction: str, uid: str) -> str:
        """The option letter for row `uid`'s prediction."""
        matched = self.match(prediction, choices)
        if matched is not None:
            return matched
        if self.judge is None:
            return "Z"  # "Failed in Prefetch, no GPT-based answer matching under `exact_matching` policy."
        judged = self._judge(question, choices, prediction, uid)
        if judged is not None:
            return judged
        self.random_fallbacks += 1
        return self.rng.choice([*choices] + ([] if "Z" in choices else ["Z"]))


def unscorable(row: pd.Series) -> str | None:
    """Why VLMEvalKit could not score a row at all (its `int(index)` raises), else None."""
    if not isinstance(index_key(row["index"]), int):
        return f"index {row['index']!r} is not an integer (MMBench groups circular copies by index % 1e6)"
    return None


def answer_notes(rows: pd.DataFrame) -> list[str]:
    """Rows VLMEvalKit scores silently wrong (hit 0 whatever the prediction): kept as it does, and said."""
    empty = [str(i) for i, a in zip(rows["index"], rows["answer"]) if pd.isna(a)]
    no_option = [str(r["index"]) for _, r in rows.iterrows()
                 if not pd.isna(r["answer"]) and str(r["answer"]) not in row_choices(r)]
    notes = []
    if empty:
        notes.append(f"MMBench: {len(empty)} rows have an empty answer cell and count as wrong "
                     f"(as in VLMEvalKit): index {', '.join(empty[:10])}")
    if no_option:
        notes.append(f"MMBench: {len(no_option)} rows have an answer that is not one of their options and count "
                     f"as wrong (as in VLMEvalKit): index {', '.join(no_option[:10])}")
    return notes


def _lower_columns(table: pd.DataFrame) -> pd.DataFrame:
    """VLMEvalKit lower-cases every column name that is not a single capital letter."""
    return table.rename(columns={c: c if c in string.ascii_uppercase else c.lower() for c in table.columns})


def _prefetch(copies: pd.DataFrame, extract: OptionExtractor) -> tuple[list[pd.Series], list, list, str | None]:
    """`prefetch_circular_group`: (rows, rule letters, truths, decision or None when the judge must decide)."""
    items = [row for _, row in copies.iterrows()]
    prefetched = [extract.match(prediction_text(r["prediction"]), row_choices(r)) for r in items]
    truths = [r["answer"] for r in items]
    if any(p is not None and p != gt for p, gt in zip(prefetched, truths)):
        return items, prefetched, truths, "wrong"
    if all(p == gt for p, gt in zip(prefetched, truths)):
        return items, prefetched, truths, "right"
    return items, prefetched, truths, None


def _first_to_judge(copies: pd.DataFrame, extract: OptionExtractor) -> tuple[Any, dict[str, Any], str, str] | None:
    """The first copy `eval_circular_group` will certainly send to the judge, as a judge item."""
    items, prefetched, _, decided = _prefetch(copies, extract)
    if decided is not None or extract.judge is None:
        return None
    row = next(r for r, p in zip(items, prefetched) if p is None)
    return row["question"], row_choices(row), prediction_text(row["prediction"]), str(row["index"])


def _group_hit(copies: pd.DataFrame, extract: OptionExtractor) -> tuple[int, str]:
    """`prefetch_circular_group` then `eval_circular_group`: hit and how it was decided."""
    items, prefetched, truths, decided = _prefetch(copies, extract)
    if decided is not None:
        return int(decided == "right"), "prefetch"
    if extract.judge is None:
        return 0, "unresolved"
    for row, p, gt in zip(items, prefetched, truths):
        if p is None and extract(row["question"], row_choices(row), prediction_text(row["prediction"]),
                                 str(row["index"])) != gt:
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
        rows, rejected = reject_rows(rows, [unscorable(row) for _, row in rows.iterrows()])
        failures += rejected
        active, notes = usable_judge(judge, "MMBench")
        notes += answer_notes(rows)
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
        groups = [rows[rows["g_index"] == g] for g in main["index"]]
        extract.judge_ahead([item for item in (_first_to_judge(g, extract) for g in groups) if item is not None])
        decided = [_group_hit(g, extract) for g in groups]
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
        items = [(r["question"], row_choices(r), prediction_text(r["prediction"]), str(r["index"]))
                 for _, r in rows.iterrows()]
        extract.judge_ahead(items)
        options = [extract(*item) for item in items]
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
