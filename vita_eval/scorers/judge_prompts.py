"""Judge prompts, byte-for-byte as VLMEvalKit builds them.

The Y/N (`YOrN_match_prompt`), MCQ (`build_prompt`, `build_prompt_cn`, `build_option_str`) and
MathVista (`build_mathvista_gpt4_prompt`) templates are identical in the VITA-2024 copy
(tuannv-github/VITA 8bed3780) and HEAD (e8e78f05), so one version serves every profile.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import pandas as pd

_YORN_TEMPLATE = (
    "You are an AI assistant who will help me to match an answer with two options of a question. "
    "The options are only Yes / No. "
    "You are provided with a question and an answer, "
    "and you need to find which option (Yes / No) is most similar to the answer. "
    "If the meaning of all options are significantly different from the answer, output Unknown. "
    "Your should output a single word among the following 3 choices: Yes, No, Unknown.\n"
    "Example 1: \n"
    "Question: Is the word in this image 'Hello'?\nAnswer: The word in this image is 'Hello'.\nYour output: Yes\n"
    "Example 2: \n"
    "Question: Is the word in this image 'Hello'?\n"
    "Answer: The word in this image is not 'Hello'.\nYour output: No\n"
    "Example 3: \n"
    "Question: {}?\nAnswer: {}\nYour output: "
)

_MCQ_TEMPLATE_EN = (
    "You are an AI assistant who will help me to match "
    "an answer with several options of a single-choice question. "
    "You are provided with a question, several options, and an answer, "
    "and you need to find which option is most similar to the answer. "
    "If the meaning of all options are significantly different from the answer, output Z. "
    "Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n"
    "Example 1: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: a cute teddy bear\nYour output: A\n"
    "Example 2: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: Spider\nYour output: Z\n"
    "Example 3: \n"
    "Question: {}?\nOptions: {}\nAnswer: {}\nYour output: "
)

_MCQ_TEMPLATE_CN = (
    "你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。"
    "你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。"
    "如果所有选项的意义都与答案显著不同，则输出 Z。"
    "你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。"
    "例 1:"
    "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n"
    "例 2: \n"
    "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n"
    "例 3: \n"
    "问题: {}?\n选项: {}\n答案: {}\n输出: "
)

_MATHVISTA_TASK = """
Please read the following example.
Then extract the answer from the model response and type it at the end of the prompt.\n
"""

_MATHVISTA_EXAMPLES = (
    """
Hint: Please answer the question requiring an integer answer and provide the final value,
e.g., 1, 2, 3, at the end.\n
Question: Which number is missing?\n
Model response: The number missing in the sequence is 14.\n
Extracted answer: 14
""",
    """
Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value,
e.g., 1.2, 1.3, 1.4, at the end.\n
Question: What is the fraction of females facing the camera?\n
Model response: The fraction of females facing the camera is 0.6,
which means that six out of ten females in the group are facing the camera.\n
Extracted answer: 0.6
""",
    """
Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value,
e.g., 1.23, 1.34, 1.45, at the end.\n
Question: How much money does Luca need to buy a sour apple candy and a butter-scotch candy? (Unit: $)\n
Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.\n
Extracted answer: 1.45
""",
    """
Hint: Please answer the question requiring a Python list as an answer and provide the final list,
e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\n
Question: Between which two years does the line graph saw its maximum peak?\n
Model response: The line graph saw its maximum peak between 2007 and 2008.\n
Extracted answer: [2007, 2008]
""",
    """
Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n
Question: What fraction of the shape is blue?\n
Choices: (A) 3/11 (B) 8/11 (C) 6/11 (D) 3/5\n
Model response: The correct answer is (B) 8/11.\n
Extracted answer: B
""",
)

_CJK = re.compile("[\u4e00-\u9fff]")


def yorn_prompt(question: Any, prediction: Any) -> str:
    """MME judge prompt (`YOrN_match_prompt`); a '?' is always appended to the question."""
    return _YORN_TEMPLATE.format(question, prediction)


def option_string(choices: Mapping[str, Any]) -> str:
    """`build_option_str`: 'There are several options: \\n' then one 'L. text\\n' per non-NaN option."""
    lines = "".join(f"{letter}. {text}\n" for letter, text in choices.items() if not pd.isna(text))
    return "There are several options: \n" + lines


def mcq_prompt(question: Any, choices: Mapping[str, Any], prediction: Any) -> str:
    """MCQ matching prompt; the Chinese template when the question contains a CJK character."""
    template = _MCQ_TEMPLATE_CN if _CJK.search(str(question)) else _MCQ_TEMPLATE_EN
    return template.format(question, option_string(choices), prediction)


def mathvista_prompt(question: Any, prediction: Any) -> str:
    """MathVista extraction prompt (note the original 'respone' typo and no newline before 'Extracted')."""
    examples = "".join(example + "\n" for example in _MATHVISTA_EXAMPLES)
    return f"{_MATHVISTA_TASK}{examples}{question}\nModel respone: {prediction}Extracted answer:"
