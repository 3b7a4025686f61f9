"""An in-process judge on a Qwen2/Qwen2.5 checkpoint: no server, same cache and stats.

Sampling mirrors the OpenAI API defaults rather than the checkpoint's
``generation_config`` (top_p=1, no top-k, no repetition penalty), so a local
judge answers like the same model behind ``judge serve`` or vLLM with the
request's own parameters. ``generate`` draws from torch's global RNG, so a
sampled reply is made reproducible by seeding inside ``fork_rng`` under the
generation lock, which leaves the caller's RNG state untouched.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from vita_eval.judges.cache import CachedJudge, Generation, JudgeCache

log = logging.getLogger(__name__)

_PROBE_MAX_TOKENS = 16


class LocalJudge(CachedJudge):
    """Loads the checkpoint once; ``chat`` is serialised by a lock (one model, one stream)."""

    def __init__(self, model_dir: str | os.PathLike[str], *, cache: JudgeCache | None = None,
                 device: str | None = None, seed: int = 0) -> None:
        path = Path(model_dir).expanduser().resolve()
        super().__init__(f"local:{path}", cache or JudgeCache())
        self.model_dir = path
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.seed = seed
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        dtype = torch.float32 if self.device.type == "cpu" else "auto"
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self._eos_ids = self._collect_eos_ids()
        self._lock = threading.Lock()

    def _collect_eos_ids(self) -> list[int]:
        """Qwen chat checkpoints stop on <|im_end|> and <|endoftext|>; take both sources."""
        ids = self.model.generation_config.eos_token_id
        eos = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
        if self.tokenizer.eos_token_id is not None:
            eos.add(self.tokenizer.eos_token_id)
        return sorted(eos)

    def _cuda_index(self) -> int:
        return self.device.index if self.device.index is not None else torch.cuda.current_device()

    def _key_params(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def _sampling_kwargs(self, temperature: float, max_tokens: int) -> dict[str, Any]:
        sampled = temperature > 0
        return {
            "max_new_tokens": max_tokens, "do_sample": sampled, "repetition_penalty": 1.0,
            # None clears the checkpoint's sampling defaults, which greedy decoding ignores anyway
            "temperature": temperature if sampled else None, "top_p": 1.0 if sampled else None,
            "top_k": 0 if sampled else None, "eos_token_id": self._eos_ids,
            "pad_token_id": self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
            else self._eos_ids[0],
        }

    def chat(self, messages: list[dict[str, str]], *, temperature: float = 0.0,
             max_tokens: int = 2048) -> tuple[Generation, str]:
        """One uncached generation and its OpenAI ``finish_reason`` ('stop' or 'length')."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self.tokenizer(text, return_tensors="pt").to(self.device)
        n_prompt = int(inputs["input_ids"].shape[1])
        devices = [self._cuda_index()] if self.device.type == "cuda" else []
        with self._lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(self.seed)
            out = self.model.generate(**inputs, **self._sampling_kwargs(temperature, max_tokens))
        new = out[0, n_prompt:].tolist()
        finish = "stop" if new and new[-1] in self._eos_ids else "length"
        gen = Generation(self.tokenizer.decode(new, skip_special_tokens=True), n_prompt, len(new))
        self._record(calls=1, prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens)
        return gen, finish

    def _generate(self, prompt: str, temperature: float, max_tokens: int) -> Generation | None:
        gen, _ = self.chat([{"role": "user", "content": prompt}], temperature=temperature,
                           max_tokens=max_tokens)
        if not gen.text.strip():  # greedy would repeat it, so no retry
            log.warning("local judge %s gave an empty reply", self.identity)
            return None
        return gen

    def working(self) -> bool:
        """The model is loaded; check it also produces text for 'hello'."""
        gen, _ = self.chat([{"role": "user", "content": "hello"}], max_tokens=_PROBE_MAX_TOKENS)
        return bool(gen.text.strip())
