"""LocalJudge: a real (tiny, random) Qwen2 checkpoint through transformers, in process."""
from __future__ import annotations

from pathlib import Path

import torch

from vita_eval.judges.cache import JudgeCache
from vita_eval.judges.local import LocalJudge

MSG = [{"role": "user", "content": "Extract the answer: The result is 42."}]


def test_greedy_is_deterministic_and_counts_tokens(local_judge: LocalJudge) -> None:
    calls = local_judge.stats.calls
    first, finish = local_judge.chat(MSG, temperature=0.0, max_tokens=5)
    second, _ = local_judge.chat(MSG, temperature=0.0, max_tokens=5)
    assert first == second and first.text
    assert first.prompt_tokens > 10 and 1 <= first.completion_tokens <= 5
    assert finish in {"stop", "length"}
    assert local_judge.stats.calls == calls + 2


def test_sampling_is_seeded_and_leaves_global_rng_alone(local_judge: LocalJudge) -> None:
    state = torch.get_rng_state()
    a, _ = local_judge.chat(MSG, temperature=1.0, max_tokens=6)
    b, _ = local_judge.chat(MSG, temperature=1.0, max_tokens=6)
    assert a == b
    assert torch.equal(state, torch.get_rng_state())


def test_complete_uses_the_chat_template_and_the_cache(local_judge: LocalJudge, tiny_qwen_dir: Path,
                                                       tmp_path: Path) -> None:
    judge = LocalJudge(tiny_qwen_dir, cache=JudgeCache(tmp_path), device="cpu")
    text = judge.complete(MSG[0]["content"], max_tokens=5)
    expected, _ = local_judge.chat(MSG, max_tokens=5)
    assert text == expected.text
    assert judge.complete(MSG[0]["content"], max_tokens=5) == text
    assert (judge.stats.calls, judge.stats.cache_hits) == (1, 1)
    assert judge.identity == f"local:{tiny_qwen_dir.resolve()}"
    assert judge.working()
