"""VITA-JSON preprocessing: prompt layout equals the inference prompt, label masking, markers, skips."""
from __future__ import annotations

import logging

import torch
from vita15.conversation import (
    AUDIO_TOKEN_INDEX,
    IGNORE_INDEX,
    IM_END_ID,
    IMAGE_TOKEN_INDEX,
    build_prompt,
    tokenize_with_placeholders,
    user_content,
)
from vita15.train.data import (
    DataConfig,
    VitaJsonDataset,
    build_ids_and_labels,
    collate,
    expand_user_text,
)

from .conftest import data_config


def _learned(ids, labels, tokenizer) -> str:
    return tokenizer.decode([i for i, lab in zip(ids, labels) if lab != IGNORE_INDEX])


def test_instruction_part_is_the_inference_prompt(tokenizer) -> None:
    raw = {"image": "x.png", "conversations": [
        {"from": "human", "value": "<image>\nIs it red? Please answer yes or no."},
        {"from": "gpt", "value": "Yes"}]}
    ids, labels = build_ids_and_labels(raw, [3], tokenizer)
    prompt = tokenize_with_placeholders(tokenizer, build_prompt(user_content("Is it red? Please answer yes or no.", [3]), "image"))
    assert ids[: len(prompt)] == prompt and all(lab == IGNORE_INDEX for lab in labels[: len(prompt)])
    assert ids.count(IMAGE_TOKEN_INDEX) == 3
    assert _learned(ids, labels, tokenizer) == "☜Yes<|im_end|>"
    assert ids[-1] == IM_END_ID and len(ids) == len(labels)


def test_markers_end_tag_and_multi_turn(tokenizer) -> None:
    raw = {"audio": "q.wav", "inserted_id": 3, "end_tag": False, "conversations": [
        {"from": "human", "value": "<audio>\n"}, {"from": "gpt", "value": "Hello"},
        {"from": "human", "value": "noise"}, {"from": "gpt", "value": ""}]}
    ids, labels = build_ids_and_labels(raw, [], tokenizer)
    assert ids.count(AUDIO_TOKEN_INDEX) == 1
    assert _learned(ids, labels, tokenizer) == "☞Hello<|im_end|>☟"  # no final <|im_end|> (end_tag false)
    text = tokenizer.decode([i for i in ids if i >= 0])
    assert "You are an AI robot" in text and "strictly according to the content" not in text  # lang prompt


def test_placeholder_layout_matches_the_demo() -> None:
    assert expand_user_text("<image>\n<audio>\n", [2]) == "<image><image>\n<audio>"
    assert expand_user_text("<video>\n\nQuestion", [2]) == "<image><image>\n\nQuestion"
    assert expand_user_text("Say:\n<audio>", []) == "Say:\n<audio>"


def test_bad_samples_are_skipped_logged_and_counted(mini_data, tokenizer, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        ds = VitaJsonDataset(DataConfig.from_dict(data_config(mini_data, "bad.json")), tokenizer)
    assert len(ds) == 1
    assert set(ds.skipped) == {"missing_image", "swapped_turns", "no_placeholder"}
    assert "missing media file" in ds.skipped["missing_image"]
    assert "turn 0" in ds.skipped["swapped_turns"]
    assert all(sid in caplog.text for sid in ds.skipped)


def test_batch_holds_every_modality(mini_data, tokenizer) -> None:
    ds = VitaJsonDataset(DataConfig.from_dict(data_config(mini_data, "good.json")), tokenizer)
    batch = collate([ds[i] for i in range(len(ds))])
    n_placeholders = int((batch.input_ids == IMAGE_TOKEN_INDEX).sum())
    assert batch.pixel_values is not None and len(batch.pixel_values) == n_placeholders == 1 + 1 + 1 + 4
    assert batch.audio_features is not None and batch.audio_lengths.tolist() == [len(ds[2].audio[0]), len(ds[3].audio[0])]
    assert torch.equal(batch.attention_mask.sum(1), torch.tensor([len(ds[i].input_ids) for i in range(len(ds))]))
