"""VLMEvalKit's `VITAQwen2` adapter (vlmeval/vlm/vita.py) for image suites.

Facts reproduced: every image is tiled with `dynamic_preprocess(max_num=N, thumbnail)`
where N is 6 except for a few datasets; the user turn is all image blocks
(`"<image>"*tiles + "\\n"` each) followed by the text; MME gets a short-answer suffix,
MCQ gets options and a (CJK-aware) letter instruction, MathVista gets the raw query;
decoding is greedy with max_new_tokens 2048 and stop `<|im_end|>`.
"""
from __future__ import annotations

import re
import string
from typing import Any

import pandas as pd

from vita_eval.registry import register
from vita_eval.types import GenerationParams, Request, Sample

_CJK = re.compile("[\u4e00-\u9fff]")
MCQ_EN = "\nAnswer with the option's letter from the given choices directly."
MCQ_CN = "\n请直接回答选项字母。"
SHORT_ANSWER = " Answer the question using a single word or phrase."


def max_tiles_for(dataset: str) -> int:
    """VITAQwen2.set_max_num: substring rules on the dataset name."""
    if any(k in dataset for k in ("ChartQA_TEST", "MMMU_DEV_VAL")):
        return 12
    if any(k in dataset for k in ("DocVQA_VAL", "DocVQA_TEST")):
        return 18
    if any(k in dataset for k in ("InfoVQA_VAL", "InfoVQA_TEST", "OCRBench")):
        return 24
    return 6


def _present(value: Any) -> bool:
    return not (value is None or (isinstance(value, float) and pd.isna(value)))


def multi_choice_prompt(fields: dict[str, Any]) -> str:
    """build_multi_choice_prompt: hint, question, `\\nL. text` per non-NaN option, instruction."""
    question = str(fields["question"])
    if _present(fields.get("hint")):
        question = f"{fields['hint']}\n{question}"
    options = {c: fields[c] for c in string.ascii_uppercase if c in fields and _present(fields[c])}
    for letter, text in options.items():
        question += f"\n{letter}. {text}"
    cjk = bool(_CJK.search(question))
    if options:
        return question + (MCQ_CN if cjk else MCQ_EN)
    return question + ("\n请直接回答问题。" if cjk else "\nAnswer the question directly.")


def text_prompt(dataset: str, dataset_type: str, fields: dict[str, Any]) -> str:
    """VITAQwen2.build_prompt's dispatch on dataset name and type."""
    question = str(fields["question"])
    if "MME" in dataset and dataset != "MME-RealWorld":
        return question + SHORT_ANSWER
    if "HallusionBench" in dataset:
        return question + " Please answer yes or no." + SHORT_ANSWER
    if dataset_type == "MCQ":
        return multi_choice_prompt(fields)
    if dataset_type == "VQA":
        if "MathVista" in dataset or "MMVet" in dataset:
            return question
        if "LLaVABench" in dataset:
            return question + "\nAnswer this question in detail."
        return question + "\nAnswer the question using a single word or phrase."
    return question


@register("preset", "vlmevalkit-vita15")
def build(sample: Sample, suite: Any, args: dict[str, Any]) -> Request:
    """VLMEvalKit VITAQwen2 adapter: tiles per dataset, suffixes, CJK-aware MCQ instruction."""
    dataset = suite.name
    return Request(
        uid=sample.uid,
        text=text_prompt(dataset, suite.dataset_type, sample.fields),
        images=[m.load() for m in sample.images],
        max_tiles=int(args.get("max_tiles", max_tiles_for(dataset))),
        modality="image" if sample.images else "lang",
        gen=GenerationParams(do_sample=False, temperature=0.0, max_new_tokens=int(args.get("max_new_tokens", 2048)),
                             stop=("<|im_end|>",)),
    )
