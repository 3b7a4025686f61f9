"""Template, system prompts, placeholder tokenisation with the real Qwen2.5 tokenizer, markers (spec §4)."""
import pytest

from vita15.conversation import (
    AUDIO_TOKEN_INDEX,
    IMAGE_TOKEN_INDEX,
    SYSTEM_PROMPTS,
    build_prompt,
    remove_markers,
    strip_markers,
    tokenize_with_placeholders,
    user_content,
)


def test_tokenizer_special_ids(tokenizer):
    assert len(tokenizer) == 151665
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>", "<|endoftext|>"]) == [151644, 151645, 151643]
    assert tokenizer.pad_token_id == 151643 and tokenizer.eos_token_id == 151645
    assert tokenizer("hello", add_special_tokens=True)["input_ids"] == tokenizer("hello", add_special_tokens=False)["input_ids"]


def test_system_prompts_verbatim():
    lang = SYSTEM_PROMPTS["lang"]
    assert lang.startswith("You are an AI robot and your name is VITA. \n- You are a multimodal")
    assert lang.endswith("discuss the correct answer with the user.") and lang.count(" \n- ") == 3
    assert SYSTEM_PROMPTS["image"] == lang + (
        " \n- You must answer the question strictly according to the content of the image given by the user, and it "
        "is strictly forbidden to answer the question without the content of the image. Please note that you are "
        "seeing the image, not the video.")
    assert SYSTEM_PROMPTS["video"].endswith("Please note that you are seeing the video, not the image.")


def test_prompt_layout_and_modality_rule():
    q = user_content("What?", [3], 0, has_audio=False)
    assert q == "<image><image><image>\nWhat?"
    assert build_prompt(q, "image") == (
        f"<|im_start|>system\n{SYSTEM_PROMPTS['image']}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n")
    assert SYSTEM_PROMPTS["video"] in build_prompt(user_content("x", [], 4), "video")
    assert SYSTEM_PROMPTS["lang"] + "<|im_end|>" in build_prompt(user_content("", [], 0, True), "image")  # audio only
    assert user_content("", [2], 0, True) == "<image><image>\n<audio>"
    with pytest.raises(ValueError, match="modality"):
        build_prompt("<image>\nq", "lang")


def test_template_ids(tokenizer):
    ids = tokenize_with_placeholders(tokenizer, build_prompt("<image><image>\nHi<audio>", "image"))
    assert ids[:3] == [151644, 8948, 198]  # <|im_start|> system \n
    assert ids[-3:] == [151644, 77091, 198]  # <|im_start|> assistant \n
    start = ids.index(872)  # "user"
    assert ids[start - 1: start + 4] == [151644, 872, 198, IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX]
    assert ids[start + 4: start + 6] == [198, 13048]  # "\n" "Hi" tokenised on their own
    assert ids[start + 6: start + 9] == [AUDIO_TOKEN_INDEX, 151645, 198]
    assert IMAGE_TOKEN_INDEX not in tokenize_with_placeholders(tokenizer, "plain text")


def test_pieces_are_tokenised_separately(tokenizer):
    text = "ab<image>cd"
    expected = tokenizer("ab", add_special_tokens=False)["input_ids"] + [IMAGE_TOKEN_INDEX] + tokenizer("cd", add_special_tokens=False)["input_ids"]
    assert tokenize_with_placeholders(tokenizer, text) == expected
    # the image-only variant keeps a literal <audio> as text
    assert AUDIO_TOKEN_INDEX not in tokenize_with_placeholders(tokenizer, "x<audio>", with_audio=False)


def test_markers(tokenizer):
    for marker in "☞☜☟":
        assert len(tokenizer(marker, add_special_tokens=False)["input_ids"]) == 1
    assert strip_markers("☞Hello") == "Hello"
    assert strip_markers("Hello") == "Hello"
    assert strip_markers("A ☜") == " ☜"  # VLMEvalKit: drop the FIRST character if a marker occurs anywhere
    assert remove_markers("☟☞Hi☜") == "Hi"
