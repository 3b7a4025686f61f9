"""Build a judge from a ``--judge`` spec, as VLMEvalKit's ``build_judge`` does, minus its traps.

* ``None``, ``"none"``, ``"exact_matching"``: no judge (the scorer matches exactly).
* ``"local:/path/to/qwen"``: an in-process LocalJudge.
* ``"openai:NAME"`` or any other name: an OpenAIJudge.
* ``"SCHEME:ARG"`` for a judge backend a plug-in registered with ``@register("judge", SCHEME)``. VLMEvalKit's aliases map to their pinned versions
  (``gpt-4o-mini`` -> ``gpt-4o-mini-2024-07-18``, ...); an unknown name passes through.
  As in VLMEvalKit, a non-empty ``LOCAL_LLM`` replaces the model name whatever the
  alias: that is how the name a local server registered is chosen. VLMEvalKit sends
  ``qwen-*``/``deepseek`` to SiliconFlow and ``llama31-8b`` to local transformers;
  here they all go to the OpenAI-compatible ``base_url`` you give.
* Base URL: ``base_url``, else a non-empty ``OPENAI_API_BASE``, else OpenAI's; both a
  ``.../v1`` base and the full ``.../chat/completions`` URL are accepted.
* Key: ``OPENAI_API_KEY`` only. Unlike VLMEvalKit we read no ``.env`` file and no
  ``*_JUDGE`` variables, so what you set is what is used.
"""
from __future__ import annotations

import os
from pathlib import Path

from vita_eval import registry
from vita_eval.judges.base import Judge
from vita_eval.judges.cache import JudgeCache
from vita_eval.judges.openai_judge import OPENAI_BASE_URL, OpenAIJudge

MODEL_ALIASES: dict[str, str] = {
    "gpt-4-turbo": "gpt-4-1106-preview",
    "gpt-4-0613": "gpt-4-0613",
    "gpt-4-0125": "gpt-4-0125-preview",
    "gpt-4-0409": "gpt-4-turbo-2024-04-09",
    "chatgpt-1106": "gpt-3.5-turbo-1106",
    "chatgpt-0125": "gpt-3.5-turbo-0125",
    "gpt-4o": "gpt-4o-2024-05-13",
    "gpt-4o-0806": "gpt-4o-2024-08-06",
    "gpt-4o-1120": "gpt-4o-2024-11-20",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "qwen-7b": "Qwen/Qwen2.5-7B-Instruct",
    "qwen-72b": "Qwen/Qwen2.5-72B-Instruct",
    "deepseek": "deepseek-ai/DeepSeek-V3",
    "llama31-8b": "meta-llama/Llama-3.1-8B-Instruct",
}
NO_JUDGE = {"none", "exact_matching"}
DEFAULT_BACKEND = "openai"


def resolve_model(alias: str) -> str:
    """The model name sent to the endpoint: ``LOCAL_LLM`` if set, else the pinned alias."""
    return os.environ.get("LOCAL_LLM") or MODEL_ALIASES.get(alias, alias)


def resolve_base_url(base_url: str | None) -> str:
    return base_url or os.environ.get("OPENAI_API_BASE") or OPENAI_BASE_URL


@registry.register("judge", "openai")
def openai_backend(name: str, *, cache: JudgeCache, base_url: str | None = None, max_concurrency: int = 32,
                   retry: int = 6, timeout: float = 600.0) -> Judge:
    """Any OpenAI-compatible endpoint (GPT-4-class APIs, vLLM / LMDeploy / SGLang, `judge serve`)."""
    return OpenAIJudge(resolve_model(name), resolve_base_url(base_url), cache=cache,
                       max_concurrency=max_concurrency, retry=retry, timeout=timeout)


@registry.register("judge", "local")
def local_backend(path: str, *, cache: JudgeCache, **_network: object) -> Judge:
    """A Qwen2/Qwen2.5 checkpoint folder run in process (local:/path/to/qwen)."""
    from vita_eval.judges.local import LocalJudge

    return LocalJudge(Path(path), cache=cache)


def build_judge(spec: str | None, *, base_url: str | None = None,
                cache_dir: str | os.PathLike[str] | None = None, max_concurrency: int = 32,
                retry: int = 6, timeout: float = 600.0) -> Judge | None:
    """A judge for ``spec`` (see the module docstring), or None for exact matching."""
    if spec is None or spec.strip().lower() in NO_JUDGE:
        return None
    scheme, arg = registry.split_spec("judge", spec.strip(), DEFAULT_BACKEND)
    return registry.get("judge", scheme)(arg, cache=JudgeCache(cache_dir), base_url=base_url,
                                         max_concurrency=max_concurrency, retry=retry, timeout=timeout)
