"""Prompt template `qwen2p5_instruct`, placeholder tokenisation and answer state markers (spec §4).

`<image>` / `<audio>` are plain text in the prompt, not tokenizer tokens: the prompt is split on them,
each text piece tokenised on its own (so no BPE merge crosses a placeholder), and the placeholders
become the negative ids that the model replaces with visual / audio embeddings.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

IMAGE_TOKEN_INDEX = -200
AUDIO_TOKEN_INDEX = -500
IGNORE_INDEX = -100
IMAGE_TOKEN = "<image>"
AUDIO_TOKEN = "<audio>"
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
IM_START_ID, IM_END_ID, ENDOFTEXT_ID = 151644, 151645, 151643
MARKERS = ("☞", "☜", "☟")  # speech query, text query, ignore (noise) — first answer character

_SYS_LANG = (
    "You are an AI robot and your name is VITA. \n"
    "- You are a multimodal large language model developed by the open source community. "
    "Your aim is to be helpful, honest and harmless. \n"
    "- You support the ability to communicate fluently and answer user questions in multiple languages "
    "of the user's choice. \n"
    "- If the user corrects the wrong answer you generated, you will apologize and discuss the correct "
    "answer with the user."
)
SYSTEM_PROMPTS = {
    "lang": _SYS_LANG,
    "image": _SYS_LANG
    + " \n- You must answer the question strictly according to the content of the image given by the user, "
    "and it is strictly forbidden to answer the question without the content of the image. "
    "Please note that you are seeing the image, not the video.",
    "video": _SYS_LANG
    + " \n- You must answer the question strictly according to the content of the video given by the user, "
    "and it is strictly forbidden to answer the question without the content of the video. "
    "Please note that you are seeing the video, not the image.",
}


def system_prompt(query: str, modality: str) -> str:
    """The template's rule: a query with `<image>` uses the image/video prompt, any other the lang one."""
    if IMAGE_TOKEN not in query:
        return SYSTEM_PROMPTS["lang"]
    if modality not in ("image", "video"):
        raise ValueError(f"a query with {IMAGE_TOKEN} needs modality 'image' or 'video', got {modality!r}")
    return SYSTEM_PROMPTS[modality]


def build_prompt(query: str, modality: str = "image") -> str:
    """Single-turn inference prompt, ending with the open assistant turn."""
    return (
        f"{IM_START}system\n{system_prompt(query, modality)}{IM_END}\n"
        f"{IM_START}user\n{query}{IM_END}\n{IM_START}assistant\n"
    )


def user_content(text: str, image_tiles: list[int] = (), n_frames: int = 0, has_audio: bool = False) -> str:
    """Demo / VLMEvalKit layout: per image `<image>`×tiles + "\\n", frames likewise, text, `<audio>`."""
    visual = "".join(IMAGE_TOKEN * n + "\n" for n in image_tiles)
    if n_frames:
        visual += IMAGE_TOKEN * n_frames + "\n"
    return visual + text + (AUDIO_TOKEN if has_audio else "")


def tokenize_with_placeholders(tokenizer, prompt: str, with_audio: bool = True) -> list[int]:
    """Token ids with −200 per `<image>` and −500 per `<audio>`; no BOS.

    `with_audio=False` mirrors `tokenizer_image_token` (used by the reference when no audio is
    given), which leaves a literal `<audio>` in the text as ordinary text.
    """
    pattern = r"(<audio>|<image>)" if with_audio else r"(<image>)"
    ids: list[int] = []
    for piece in re.split(pattern, prompt):
        if piece == IMAGE_TOKEN:
            ids.append(IMAGE_TOKEN_INDEX)
        elif piece == AUDIO_TOKEN and with_audio:
            ids.append(AUDIO_TOKEN_INDEX)
        elif piece:
            ids.extend(tokenizer(piece, add_special_tokens=False)["input_ids"])
    return ids


def strip_markers(text: str) -> str:
    """VLMEvalKit / Video-MME rule: drop the first character if any state marker occurs."""
    return text[1:] if any(m in text for m in MARKERS) else text


def remove_markers(text: str) -> str:
    """Web-demo rule: remove every state marker (before display or TTS)."""
    for marker in MARKERS:
        text = text.replace(marker, "")
    return text


def load_tokenizer(path: str | Path):
    """The Qwen2.5 fast tokenizer of a checkpoint folder, checked against VITA-1.5's special ids."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.json").is_file():
        raise FileNotFoundError(f"{path}: no tokenizer files (tokenizer.json or vocab.json + merges.txt)")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    ids = tokenizer.convert_tokens_to_ids([IM_START, IM_END, ENDOFTEXT])
    if ids != [IM_START_ID, IM_END_ID, ENDOFTEXT_ID]:
        raise ValueError(f"{path}: not the Qwen2.5 tokenizer (<|im_start|>, <|im_end|>, <|endoftext|> = {ids})")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = ENDOFTEXT
    if len(tokenizer) != 151665:
        logger.warning("%s: tokenizer has %d tokens, VITA-1.5's has 151665", path, len(tokenizer))
    return tokenizer
