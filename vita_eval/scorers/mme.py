"""MME, scored as VLMEvalKit's `ImageYORNDataset.evaluate` + `MME_rating` (same rules in every pinned version)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vita_eval.registry import register
from vita_eval.scorers.base import ScoreResult, ratio, weighted_sums
from vita_eval.scorers.judge_prompts import yorn_prompt
from vita_eval.scorers.judging import RISING_TEMPERATURES, first_accepted, judge_map, usable_judge
from vita_eval.scorers.predictions import align, empty_answer, prediction_text
from vita_eval.scorers.profiles import Profile, resolve_profile
from vita_eval.scorers.yorn import extract_yes_no
from vita_eval.types import SuiteError

PERCEPTION = ("OCR", "artwork", "celebrity", "color", "count", "existence", "landmark", "position", "posters", "scene")
REASONING = ("code_reasoning", "commonsense_reasoning", "numerical_calculation", "text_translation")


def _judge_yes_no(judge: Any, uid: str, question: Any, prediction: str, profile: Profile) -> str:
    """`YOrN_auxeval` for sample `uid`: up to 5 judge calls at rising temperature; the first Yes/No wins,
    else Unknown."""

    def parse(reply: str) -> str | None:
        answer = extract_yes_no(reply, period_lookbehind=profile.period_lookbehind)
        return None if answer == "Unknown" else answer

    return first_accepted(judge, yorn_prompt(question, prediction), RISING_TEMPERATURES, parse,
                          uid=uid) or "Unknown"


def _acc_plus(rows: pd.DataFrame) -> float:
    """`MME_rating`'s acc_plus: per image, `val[0] * val[1]` of its first two rows in file order (`row`),
    whatever the image's row count. An image copied by bootstrap resampling is a cluster per copy."""
    ordered = rows.sort_values("row", kind="stable") if "row" in rows else rows
    position = ordered.groupby("cluster", sort=False).cumcount().to_numpy()
    clusters, scores = ordered["cluster"].to_numpy(), ordered["score"].to_numpy()
    first = pd.Series(scores[position == 0], index=clusters[position == 0])
    second = pd.Series(scores[position == 1], index=clusters[position == 1])
    return float(np.mean(first.to_numpy() * second.reindex(first.index).to_numpy()))


def _category_score(rows: pd.DataFrame) -> float:
    """acc + acc_plus (0-200)."""
    return float(np.mean(rows["score"])) * 100 + _acc_plus(rows) * 100


def _questions_per_image(rows: pd.DataFrame) -> pd.Series:
    """Rows per (category, image_path): MME_rating's `stats[category][image_path]` lists."""
    return rows.groupby(["category", "image_path"], sort=False).size()


class MMEScorer:
    """MME: Yes/No extraction, acc + acc+ per category, perception and reasoning sums (MME_rating)."""

    name = "mme"
    data_columns = ("index", "question", "answer", "category", "image_path")  # what `score` reads from the dataset rows

    def score(
        self, data: pd.DataFrame, predictions: pd.DataFrame, *, profile: Profile | str, judge: Any | None
    ) -> ScoreResult:
        profile = resolve_profile(profile)
        rows, failures = self._rows_with_failed_as_wrong(data, predictions)
        layout_notes = self._check_layout(rows, profile)
        failed = {f["uid"] for f in failures}
        failures += [{"uid": str(i), "reason": f"{empty_answer(a)}; scored wrong"}
                     for i, a in zip(rows["index"], rows["answer"]) if pd.isna(a) and str(i) not in failed]
        active, notes = usable_judge(judge, "MME")
        notes += layout_notes
        notes += self._uneven_images(rows)
        if failures:
            notes.append(f"MME: {len(failures)} failed rows scored wrong (their image pairs stay complete)")
        preds = [prediction_text(p) for p in rows["prediction"]]
        extracted = [extract_yes_no(p, period_lookbehind=profile.period_lookbehind) for p in preds]
        unknown = sum(e == "Unknown" for e in extracted)
        if active is not None:  # each Unknown row on its own, concurrently up to the judge's limit
            questions, uids = list(rows["question"]), list(rows["index"].astype(str))
            todo = [i for i, e in enumerate(extracted) if e == "Unknown"]
            judged = judge_map(active, lambda i: _judge_yes_no(active, uids[i], questions[i], preds[i], profile),
                               todo)
            for i, answer in zip(todo, judged):
                extracted[i] = answer
        per_sample = pd.DataFrame(
            {
                "uid": rows["index"].astype(str),
                "row": range(len(rows)),  # file position: acc_plus takes each image's first two rows
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
    def _check_layout(rows: pd.DataFrame, profile: Profile) -> list[str]:
        """Fail where VLMEvalKit's MME_rating crashes: a lone question (IndexError), a missing category (KeyError).

        Where the profile's MME_rating skips missing categories (ms-vlmeval), say which are missing."""
        sizes = _questions_per_image(rows)
        lone = sizes[sizes < 2]
        if len(lone):
            raise SuiteError(
                f"MME: {len(lone)} images have a single scored question (e.g. {lone.index[0][1]!r}); acc_plus needs both"
            )
        missing = [c for c in PERCEPTION + REASONING if c not in set(rows["category"])]
        if missing and profile.mme_require_all_categories:
            raise SuiteError(f"MME: categories missing under {profile.name} (VLMEvalKit raises KeyError): {missing}")
        if missing:
            return [f"MME: {len(missing)} of 14 categories have no rows and are left out of perception/reasoning "
                    f"(as {profile.name} does): {missing}"]
        return []

    @staticmethod
    def _uneven_images(rows: pd.DataFrame) -> list[str]:
        """A note when images have more than two questions: only their first two enter acc_plus."""
        sizes = _questions_per_image(rows)
        more = sizes[sizes > 2]
        if not len(more):
            return []
        (category, image), count = next(iter(more.items()))
        note = (
            f"MME: {len(more)} images do not have exactly 2 questions (e.g. {image!r} in {category} has {count}); "
            "acc_plus uses each image's first two rows in file order, as VLMEvalKit's MME_rating does "
            "(`values.append(val[0] * val[1])`); acc uses every row"
        )
        return [note]

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, float]:
        """`MME_rating`: perception (10 categories), reasoning (4), then each category in first-appearance order."""
        categories = {c: _category_score(rows) for c, rows in per_sample.groupby("category", sort=False)}
        return {
            "perception": sum(categories[c] for c in PERCEPTION if c in categories),
            "reasoning": sum(categories[c] for c in REASONING if c in categories),
            **categories,
        }

    def aggregate_weighted(self, per_sample: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        """`aggregate` for every row of `weights` (resamples x rows) at once: acc and acc+ as weighted means.

        acc+ pairs each image's first two rows as `_acc_plus` does; an image without a second row makes
        acc+ NaN in every resample that draws it, as it does there.
        """
        score = per_sample["score"].to_numpy(dtype=np.float64)
        head, product, lone = _first_pairs(per_sample, score)
        columns: dict[Any, np.ndarray] = {}
        names = list(dict.fromkeys(per_sample["category"]))
        for c in names:
            inside = (per_sample["category"] == c).to_numpy(dtype=np.float64)
            columns |= {(c, "n"): inside, (c, "hit"): inside * score, (c, "images"): inside * head,
                        (c, "both"): inside * product, (c, "lone"): inside * lone}
        sums = weighted_sums(weights, columns)
        categories = {}
        for c in names:
            acc_plus = ratio(sums[(c, "both")], sums[(c, "images")], 100)
            categories[c] = ratio(sums[(c, "hit")], sums[(c, "n")], 100) + np.where(sums[(c, "lone")] > 0, np.nan,
                                                                                     acc_plus)
        present = {c: sums[(c, "n")] > 0 for c in names}

        def total(group: tuple[str, ...]) -> np.ndarray:
            return sum((np.where(present[c], categories[c], 0.0) for c in group if c in categories),
                       np.zeros(len(weights)))

        return {"perception": total(PERCEPTION), "reasoning": total(REASONING),
                **{c: np.where(present[c], categories[c], np.nan) for c in names}}


def _first_pairs(per_sample: pd.DataFrame, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: 1 on each image's first row (file order, `row`), the product of its first two rows' scores
    there, and 1 where that image has no second row."""
    head, product, lone = np.zeros(len(score)), np.zeros(len(score)), np.zeros(len(score))
    order = per_sample["row"].to_numpy() if "row" in per_sample else np.arange(len(score))
    for positions in per_sample.groupby(["category", "cluster"], sort=False).indices.values():
        positions = positions[np.argsort(order[positions], kind="stable")]
        head[positions[0]] = 1.0
        if len(positions) > 1:
            product[positions[0]] = score[positions[0]] * score[positions[1]]
        else:
            lone[positions[0]] = 1.0
    return head, product, lone


register("scorer", "mme")(MMEScorer)
