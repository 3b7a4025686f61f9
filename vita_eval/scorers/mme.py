"""MME, scored as VLMEvalKit's `ImageYORNDataset.evaluate` + `MME_rating` (same rules in every pinned version)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vita_eval.registry import register
from vita_eval.scorers.base import ScoreResult, ratio, weighted_sums
from vita_eval.scorers.judge_prompts import yorn_prompt
from vita_eval.scorers.judging import RISING_TEMPERATURES, first_accepted, usable_judge
from vita_eval.scorers.predictions import align, prediction_text
from vita_eval.scorers.profiles import Profile, resolve_profile
from vita_eval.scorers.yorn import extract_yes_no
from vita_eval.types import SuiteError

PERCEPTION = ("OCR", "artwork", "celebrity", "color", "count", "existence", "landmark", "position", "posters", "scene")
REASONING = ("code_reasoning", "commonsense_reasoning", "numerical_calculation", "text_translation")


def _judge_yes_no(judge: Any, question: Any, prediction: str, profile: Profile) -> str:
    """`YOrN_auxeval`: up to 5 judge calls at rising temperature; the first Yes/No wins, else Unknown."""

    def parse(reply: str) -> str | None:
        answer = extract_yes_no(reply, period_lookbehind=profile.period_lookbehind)
        return None if answer == "Unknown" else answer

    return first_accepted(judge, yorn_prompt(question, prediction), RISING_TEMPERATURES, parse) or "Unknown"


def _category_score(rows: pd.DataFrame) -> float:
    """acc + acc_plus (0-200). acc_plus multiplies each image's rows pairwise in file order: for MME's two
    rows per image this is VLMEvalKit's score[q1] * score[q2], and an image duplicated by bootstrap
    resampling counts once per copy."""
    acc = float(np.mean(rows["score"])) * 100
    pairs = [
        a * b
        for scores in rows.groupby("cluster", sort=False)["score"].agg(list)
        for a, b in zip(scores[0::2], scores[1::2])
    ]
    return acc + float(np.mean(pairs)) * 100


class MMEScorer:
    """MME: Yes/No extraction, acc + acc+ per category, perception and reasoning sums (MME_rating)."""

    name = "mme"

    def score(
        self, data: pd.DataFrame, predictions: pd.DataFrame, *, profile: Profile | str, judge: Any | None
    ) -> ScoreResult:
        profile = resolve_profile(profile)
        rows, failures = self._rows_with_failed_as_wrong(data, predictions)
        self._check_layout(rows, profile)
        active, notes = usable_judge(judge, "MME")
        if failures:
            notes.append(f"MME: {len(failures)} failed rows scored wrong (their image pairs stay complete)")
        preds = [prediction_text(p) for p in rows["prediction"]]
        extracted = [extract_yes_no(p, period_lookbehind=profile.period_lookbehind) for p in preds]
        unknown = sum(e == "Unknown" for e in extracted)
        if active is not None:
            extracted = [
                _judge_yes_no(active, q, p, profile) if e == "Unknown" else e
                for q, p, e in zip(rows["question"], preds, extracted)
            ]
        per_sample = pd.DataFrame(
            {
                "uid": rows["index"].astype(str),
                "cluster": rows["image_path"],
                "stratum": rows["category"],  # fixed design: bootstraps resample images within a category
                "category": rows["category"],
                "extracted": extracted,
                "score": [int(a == e) for a, e in zip(rows["answer"], extracted)],
            }
        )
        left = sum(e == "Unknown" for e in extracted)
        if left:
            action = "after the judge" if active is not None else "without a judge"
            notes.append(f"MME: {left} of {unknown} Unknown answers remain {action}; scored wrong")
        return ScoreResult.of(per_sample, self.aggregate(per_sample), failures, notes, judge)

    @staticmethod
    def _rows_with_failed_as_wrong(data: pd.DataFrame, predictions: pd.DataFrame) -> tuple[pd.DataFrame, list]:
        """Every dataset row, failed ones with a missing prediction (Unknown, so wrong).

        VLMEvalKit always has a prediction per row; dropping a failed row would leave its image's
        partner alone and make MME_rating crash, so a failure costs its points instead.
        """
        scored, failures = align(data, predictions)
        by_index = dict(zip(scored["index"].astype(str), scored["prediction"]))
        rows = data.reset_index(drop=True).copy()
        rows["prediction"] = [by_index.get(str(i), np.nan) for i in rows["index"]]
        return rows, failures

    @staticmethod
    def _check_layout(rows: pd.DataFrame, profile: Profile) -> None:
        """Fail where VLMEvalKit's MME_rating crashes: a lone question (IndexError), a missing category (KeyError)."""
        sizes = rows.groupby("image_path", sort=False).size()
        lone = sizes[sizes < 2]
        if len(lone):
            raise SuiteError(
                f"MME: {len(lone)} images have a single scored question (e.g. {lone.index[0]!r}); acc_plus needs both"
            )
        missing = [c for c in PERCEPTION + REASONING if c not in set(rows["category"])]
        if missing and profile.mme_require_all_categories:
            raise SuiteError(f"MME: categories missing under {profile.name} (VLMEvalKit raises KeyError): {missing}")

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, float]:
        """`MME_rating`: perception (10 categories), reasoning (4), then each category in first-appearance order."""
        categories = {c: _category_score(rows) for c, rows in per_sample.groupby("category", sort=False)}
        return {
            "perception": sum(categories[c] for c in PERCEPTION if c in categories),
            "reasoning": sum(categories[c] for c in REASONING if c in categories),
            **categories,
        }

    def aggregate_weighted(self, per_sample: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        """`aggregate` for every row of `weights` (resamples x rows) at once; pairs are formed as there."""
        score = per_sample["score"].to_numpy(dtype=np.float64)
        head, product = _pair_heads(per_sample, score)
        columns: dict[str, Any] = {}
        names = list(dict.fromkeys(per_sample["category"]))
        for c in names:
            inside = (per_sample["category"] == c).to_numpy(dtype=np.float64)
            columns |= {(c, "n"): inside, (c, "hit"): inside * score, (c, "pairs"): inside * head,
                        (c, "both"): inside * product}
        sums = weighted_sums(weights, columns)
        categories = {
            c: ratio(sums[(c, "hit")], sums[(c, "n")], 100) + ratio(sums[(c, "both")], sums[(c, "pairs")], 100)
            for c in names
        }
        present = {c: sums[(c, "n")] > 0 for c in names}

        def total(group: tuple[str, ...]) -> np.ndarray:
            return sum((np.where(present[c], categories[c], 0.0) for c in group if c in categories),
                       np.zeros(len(weights)))

        return {"perception": total(PERCEPTION), "reasoning": total(REASONING),
                **{c: np.where(present[c], categories[c], np.nan) for c in names}}


def _pair_heads(per_sample: pd.DataFrame, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: 1 where it opens an acc+ pair (file order within its category and image), and the pair's product."""
    head, product = np.zeros(len(score)), np.zeros(len(score))
    for positions in per_sample.groupby(["category", "cluster"], sort=False).indices.values():
        firsts, seconds = positions[0::2], positions[1::2]
        firsts = firsts[: len(seconds)]
        head[firsts] = 1.0
        product[firsts] = score[firsts] * score[seconds]
    return head, product


register("scorer", "mme")(MMEScorer)
