"""build_judge: specs, VLMEvalKit aliases, LOCAL_LLM and OPENAI_API_BASE (no requests are sent)."""
from __future__ import annotations

from pathlib import Path

import pytest

from vita_eval.judges.factory import build_judge
from vita_eval.judges.local import LocalJudge
from vita_eval.judges.openai_judge import OpenAIJudge

BASE = "http://127.0.0.1:9/v1"


@pytest.mark.parametrize("spec", [None, "none", "exact_matching", "EXACT_MATCHING"])
def test_no_judge_specs(spec: str | None) -> None:
    assert build_judge(spec, base_url=BASE) is None


@pytest.mark.parametrize(("alias", "model"), [
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("chatgpt-0125", "gpt-3.5-turbo-0125"),
    ("gpt-4-turbo", "gpt-4-1106-preview"), ("gpt-4o-1120", "gpt-4o-2024-11-20"),
    ("qwen-72b", "Qwen/Qwen2.5-72B-Instruct"), ("my-served-model", "my-served-model"),
])
def test_aliases_map_to_pinned_versions(alias: str, model: str, tmp_path: Path) -> None:
    judge = build_judge(alias, base_url=BASE + "/chat/completions", cache_dir=tmp_path)
    assert isinstance(judge, OpenAIJudge) and judge.identity == f"{model} @ {BASE}"


def test_local_llm_and_openai_api_base(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOCAL_LLM", "Qwen2.5-7B-Instruct")
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:23333/v1/chat/completions")
    judge = build_judge("gpt-4o-mini", base_url=None, cache_dir=tmp_path)
    assert judge is not None and judge.identity == "Qwen2.5-7B-Instruct @ http://127.0.0.1:23333/v1"


def test_default_base_is_openai_and_needs_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    judge = build_judge("gpt-4o-mini", base_url=None, cache_dir=tmp_path)
    assert judge is not None and judge.identity == "gpt-4o-mini-2024-07-18 @ https://api.openai.com/v1"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValueError, match="OPENAI_API_KEY is not set"):
        build_judge("gpt-4o-mini", base_url=None, cache_dir=tmp_path)
    assert build_judge("gpt-4o-mini", base_url=BASE, cache_dir=tmp_path) is not None  # local: no key needed


def test_local_spec_loads_in_process(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    judge = build_judge(f"local:{tiny_qwen_dir}", base_url=None, cache_dir=tmp_path)
    assert isinstance(judge, LocalJudge) and judge.cache.root == tmp_path
