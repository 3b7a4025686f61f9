"""Video-MME, scored by VLMEvalKit's `VideoMME.evaluate` or by VITA's own `videomme/parse_answer.py`.

The parser comes from `Profile.videomme_parser` ("vlmevalkit" | "vita"); a suite YAML or prompt
preset selects it with `get_profile(name, videomme_parser="vita")`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from vita_eval.registry import register
from vita_eval.scorers.base import METRIC_PATH, ScoreResult, ratio, weighted_sums
from vita_eval.scorers.judging import usable_judge
from vita_eval.scorers.mmbench import OptionExtractor
from vita_eval.scorers.predictions import align, index_key, prediction_text, vlmevalkit_rows
from vita_eval.scorers.profiles import Profile, resolve_profile
from vita_eval.types import SuiteError

DURATIONS = ("short", "medium", "long")
DOMAINS = (
    "Knowledge",
    "Film & Television",
    "Sports Competition",
    "Artistic Performance",
    "Life Record",
    "Multilingual",
)
SUB_CATEGORIES = (
    "Humanity & History",
    "Literature & Art",
    "Biology & Medicine",
    "Finance & Commerce",
    "Astronomy",
    "Geography",
    "Law",
    "Life Tip",
    "Technology",
    "Animation",
    "Movie & TV Show",
    "Documentary",
    "News Report",
    "Esports",
    "Basketball",
    "Football",
    "Athletics",
    "Other Sports",
    "Stage Play",
    "Magic Show",
    "Variety Show",
    "Acrobatics",
    "Handicraft",
    "Food",
    "Fashion",
    "Daily Life",
    "Travel",
    "Pet & Animal",
    "Exercise",
    "Multilingual",
)
TASK_TYPES = (
    "Temporal Perception",
    "Spatial Perception",
    "Attribute Perception",
    "Action Recognition",
    "Object Recognition",
    "OCR Problems",
    "Counting Problem",
    "Temporal Reasoning",
    "Spatial Reasoning",
    "Action Reasoning",
    "Object Reasoning",
    "Information Synopsis",
)
DIMENSIONS = {"domain": DOMAINS, "sub_category": SUB_CATEGORIES, "task_type": TASK_TYPES}

# Two missing commas in VLMEvalKit's list merge four prefixes into two that never occur,
# so "Best answer: C" keeps its "B" and extracts B (every pinned version).
_VLMEVALKIT_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",
    "Best answer:Best option:",
    "Answer:",
    "Option:",
)
_VITA_PREFIXES = ("Answer:", "The correct answer is", "The answer is")
_LETTER = re.compile(r"[ABCD]")
VITA_QUESTIONS_PER_CATEGORY = 30  # parse_answer.py adds 30 per category CSV found


def extract_characters_regex(prediction: str) -> str:
    """VLMEvalKit's Video-MME letter extraction: first [ABCD] (case-sensitive) after prefix removal, '' if none.

    Its "more than 10 words and no letter" early exit returns '' exactly when this does.
    """
    text = prediction.strip()
    for prefix in _VLMEVALKIT_PREFIXES:
        text = text.replace(prefix, "")
    match = _LETTER.search(text)
    return match.group(0) if match else ""


def vita_parse_answer(prediction: str) -> str:
    """VITA's parse_answer.py: drop three prefixes, first [ABCD]; NaN ('nan') or no letter gives ''."""
    if prediction == "nan":
        return ""
    for prefix in _VITA_PREFIXES:
        prediction = prediction.replace(prefix, "")
    match = _LETTER.search(prediction)
    return match.group(0) if match else ""


def question_options(question: Any) -> dict[str, str]:
    """`extract_option`: options "A." ... read from the question's lines after the first (none in the HEAD layout)."""
    options: dict[str, str] = {}
    for i, line in enumerate(str(question).split("\n")[1:]):
        letter = chr(ord("A") + i)
        at = line.find(letter + ".")
        if at >= 0:
            options[letter] = line[at + 2 :].strip(". \n")
    return options


def _valid_mean(scores: pd.Series) -> float:
    """Mean of the scores >= 0 (unparsed -1 and unassigned NaN are left out); NaN when none."""
    valid = scores[scores >= 0]
    return float(np.mean(valid)) if len(valid) else float("nan")


def dimension_means(per_sample: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """`get_dimension_rating` before formatting: per duration and overall, means by every dimension value.

    Means run over rows with score >= 0 (VITA-2024 excludes its -1s); a value with no rows is NaN.
    One groupby per dimension keeps this cheap enough to bootstrap thousands of times.
    """
    valid = per_sample[per_sample["score"] >= 0]
    means: dict[str, dict[str, Any]] = {}
    for duration in (*DURATIONS, "overall"):
        part = valid if duration == "overall" else valid[valid["duration"] == duration]
        means[duration] = {"overall": _valid_mean(part["score"])}
        for column, values in DIMENSIONS.items():
            grouped = part.groupby(column)["score"].mean()
            means[duration][column] = {v: float(grouped[v]) if v in grouped.index else float("nan") for v in values}
    return means


def _map_leaves(tree: dict[str, Any], fn: Callable[[float], str]) -> dict[str, Any]:
    return {k: _map_leaves(v, fn) if isinstance(v, dict) else fn(v) for k, v in tree.items()}


class VideoMMEScorer:
    """Video-MME: VLMEvalKit's (or VITA's) answer parser, accuracy by duration, domain and task type."""

    name = "videomme"
    data_columns = (  # what `score` reads from the dataset rows
        "index", "video", "duration", "domain", "sub_category", "task_type", "question", "answer",
    )

    def score(
        self, data: pd.DataFrame, predictions: pd.DataFrame, *, profile: Profile | str, judge: Any | None
    ) -> ScoreResult:
        profile = resolve_profile(profile)
        data = vlmevalkit_rows(data)  # the July-2024 layout's options back in `question`, where VLMEvalKit reads them
        rows, failures = align(data, predictions)
        self._check_labels(rows)
        preds = [prediction_text(p) for p in rows["prediction"]]
        base = {
            "uid": rows["index"].astype(str),
            "cluster": rows["video"],
            "duration": rows["duration"],
            "domain": rows["domain"],
            "sub_category": rows["sub_category"],
            "task_type": rows["task_type"],
        }
        if profile.videomme_parser == "vita":
            extracted = [vita_parse_answer(p) for p in preds]
            scores = [int(e == a) for e, a in zip(extracted, rows["answer"])]
            per_sample = pd.DataFrame({**base, "parser": "vita", "extracted": extracted, "score": scores})
            notes = ["Video-MME: scored with VITA's parse_answer.py rules"]
            return ScoreResult.of(per_sample, self.aggregate(per_sample), failures, notes)
        return self._score_vlmevalkit(data, rows, preds, base, failures, profile, judge)

    def _score_vlmevalkit(
        self,
        data: pd.DataFrame,
        rows: pd.DataFrame,
        preds: list[str],
        base: dict[str, Any],
        failures: list[dict[str, str]],
        profile: Profile,
        judge: Any | None,
    ) -> ScoreResult:
        active, notes = usable_judge(judge, "Video-MME")
        extract = OptionExtractor(profile.matcher_generation, active, random.Random(profile.mcq_random_seed))
        extracted = [extract_characters_regex(p) for p in preds]
        questions, uids = [str(q) for q in rows["question"]], list(base["uid"])
        if profile.videomme_unparsed_score >= 0:  # every unparsed row with options goes to the judge
            extract.judge_ahead([(q, question_options(q), p, u) for q, p, e, u in zip(questions, preds, extracted, uids)
                                 if not e and question_options(q)])
        scores = [
            self._unparsed_score(q, a, p, u, extract, profile) if not e else int(e == a)
            for q, a, p, e, u in zip(questions, rows["answer"], preds, extracted, uids)
        ]
        if profile.videomme_label_indexed:
            scores = self._by_label(list(data["index"]), list(rows["index"]), scores)
        per_sample = pd.DataFrame({**base, "parser": "vlmevalkit", "extracted": extracted, "score": scores})
        notes += self._unparsed_notes(questions, extracted, profile)
        nan_preds = preds.count("nan")
        if nan_preds and profile.videomme_unparsed_score < 0:
            notes.append(
                f"Video-MME: {nan_preds} missing (NaN) predictions; {profile.name} VLMEvalKit would crash on them"
            )
        if extract.random_fallbacks:
            notes.append(f"MCQ random fallback fired {extract.random_fallbacks} times (seed {profile.mcq_random_seed})")
        printed = self.rating(per_sample, profile.videomme_rating_format)
        return ScoreResult.of(per_sample, self.aggregate(per_sample), failures, notes, judge, printed)

    @staticmethod
    def _unparsed_notes(questions: list[str], extracted: list[str], profile: Profile) -> list[str]:
        """How the predictions without a letter were scored (VITA-2024: -1; later: extract_option)."""
        unparsed = extracted.count("")
        if not unparsed:
            return []
        if profile.videomme_unparsed_score < 0:
            return [f"Video-MME: {unparsed} predictions unparsed, excluded (-1) under {profile.name}"]
        listed = sum(1 for q, e in zip(questions, extracted) if not e and question_options(q))
        if not listed:
            return [f"Video-MME: {unparsed} predictions unparsed, scored 0 under {profile.name}"]
        return [f"Video-MME: {unparsed} predictions unparsed under {profile.name}: {listed} matched against the "
                "options their `question` lists (July-2024 layout; VLMEvalKit's extract_option + can_infer), "
                f"{unparsed - listed} scored 0"]

    @staticmethod
    def _unparsed_score(question: str, answer: Any, prediction: str, uid: str, extract: OptionExtractor,
                        profile: Profile) -> int:
        """VITA-2024: -1. Since 2024-09: `extract_option` on options parsed from VLMEvalKit's `question` cell
        (the July-2024 layout lists them there; newer VLMEvalKit then matches e.g. "blue" to "B. Blue.").

        In the HEAD layout the question holds no options, so the answer is Z (score 0) whatever a
        judge says; the judge is therefore only asked when the question does list options.
        """
        if profile.videomme_unparsed_score < 0:
            return -1
        options = question_options(question)
        return int(extract(question, options, prediction, uid) == answer) if options else 0

    @staticmethod
    def _by_label(file_indices: list[Any], scored_indices: list[Any], scores: list[int]) -> list[float]:
        """VITA-2024 writes `data.loc[index, 'score']`: the score of the row whose `index` is v lands on the
        row at file position v. Rows nobody lands on keep NaN (left out of every mean); an index that is
        no row label would append a row without a duration and crash the rating."""
        landed: dict[int, int] = {}
        for index, score in zip(scored_indices, scores):
            label = index_key(index)
            if not isinstance(label, int) or not 0 <= label < len(file_indices):
                raise SuiteError(f"Video-MME: index {index!r} is not a row label; VITA-2024 scoring would crash")
            landed[label] = score
        position = {index_key(v): p for p, v in enumerate(file_indices)}
        return [float(landed.get(position[index_key(v)], float("nan"))) for v in scored_indices]

    @staticmethod
    def _check_labels(rows: pd.DataFrame) -> None:
        """VLMEvalKit's rating raises KeyError on a duration/domain/sub_category/task_type outside its lists."""
        allowed = {"duration": DURATIONS, **DIMENSIONS}
        for column, values in allowed.items():
            unknown = set(rows[column]) - set(values)
            if unknown:
                raise SuiteError(f"Video-MME: unknown {column} values {sorted(map(str, unknown))}")

    @staticmethod
    def rating(per_sample: pd.DataFrame, fmt: str) -> dict[str, Any]:
        """VLMEvalKit's `{pred}_rating.json` as its version prints it: the means as `fmt` strings ('nan' when
        empty): `f'{mean:.2f}'` in VITA-2024's get_dimension_rating, `:.3f` since 2024-09 (7b634b56)."""
        return _map_leaves(dimension_means(per_sample), lambda value: fmt % value)

    def aggregate(self, per_sample: pd.DataFrame) -> dict[str, Any]:
        """VLMEvalKit parser: the rating dict's structure ({duration: {"overall", "domain": {...}, ...}})
        holding unrounded fractions. VITA parser: accuracies in percent."""
        if len(per_sample) and (per_sample["parser"] == "vita").all():
            return self._vita_accuracy(per_sample)
        return dimension_means(per_sample)

    @staticmethod
    def _vita_accuracy(per_sample: pd.DataFrame) -> dict[str, float]:
        """parse_answer.py: correct / (30 x categories present) per duration; overall pools the durations."""
        metrics: dict[str, float] = {}
        correct_all = total_all = 0
        for duration in DURATIONS:
            part = per_sample[per_sample["duration"] == duration]
            total = VITA_QUESTIONS_PER_CATEGORY * part["sub_category"].nunique()
            if total:
                metrics[duration] = float(part["score"].sum()) / total * 100
                correct_all += int(part["score"].sum())
                total_all += total
        metrics["overall"] = correct_all / total_all * 100 if total_all else float("nan")
        return metrics

    def aggregate_weighted(self, per_sample: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        """`aggregate` for every row of `weights` (resamples x rows) at once: weighted means of the same groups,
        named as `flat_metrics(aggregate(...))` names them."""
        if len(per_sample) and (per_sample["parser"] == "vita").all():
            return self._vita_accuracy_weighted(per_sample, weights)
        score = per_sample["score"].to_numpy(dtype=np.float64)
        valid = score >= 0  # NaN compares False, as in `dimension_means`
        score = np.where(valid, score, 0.0)
        groups: dict[str, np.ndarray] = {}
        for duration in (*DURATIONS, "overall"):
            part = valid if duration == "overall" else valid & (per_sample["duration"] == duration).to_numpy()
            groups[METRIC_PATH.join((duration, "overall"))] = part
            for column, values in DIMENSIONS.items():
                column_values = per_sample[column].to_numpy()
                groups.update({METRIC_PATH.join((duration, column, v)): part & (column_values == v) for v in values})
        rows = weighted_sums(weights, groups)
        hits = weighted_sums(weights, {name: mask * score for name, mask in groups.items()})
        return {name: ratio(hits[name], rows[name]) for name in groups}

    @staticmethod
    def _vita_accuracy_weighted(per_sample: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        """`_vita_accuracy` per resample: categories count when a resample holds any of their rows."""
        score = per_sample["score"].to_numpy(dtype=np.float64)
        metrics: dict[str, np.ndarray] = {}
        correct_all = total_all = np.zeros(len(weights))
        for duration in DURATIONS:
            part = (per_sample["duration"] == duration).to_numpy()
            categories = sorted(set(per_sample.loc[part, "sub_category"]))
            present = weighted_sums(weights, {c: part & (per_sample["sub_category"] == c).to_numpy()
                                              for c in categories})
            total = VITA_QUESTIONS_PER_CATEGORY * sum((v > 0 for v in present.values()), np.zeros(len(weights)))
            correct = weighted_sums(weights, {"c": part * score})["c"]
            metrics[duration] = ratio(correct, total, 100)
            correct_all, total_all = correct_all + np.where(total > 0, correct, 0), total_all + total
        metrics["overall"] = ratio(correct_all, total_all, 100)
        return metrics


register("scorer", "videomme")(VideoMMEScorer)
