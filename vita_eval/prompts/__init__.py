"""Prompt presets: how a `Sample` becomes a `Request`, reproduced from a named reference.

Each preset is a function `build(sample, suite, args) -> Request` registered under a
name that is recorded in every result, so two numbers made with different prompts
can never be confused.
"""
from __future__ import annotations

from typing import Any, Callable

from vita_eval.types import Request, Sample

PresetFn = Callable[[Sample, Any, dict[str, Any]], Request]
PRESETS: dict[str, PresetFn] = {}
PRESET_DOCS: dict[str, str] = {}


def register(name: str) -> Callable[[PresetFn], PresetFn]:
    def deco(fn: PresetFn) -> PresetFn:
        PRESETS[name] = fn
        PRESET_DOCS[name] = (fn.__doc__ or "").strip().splitlines()[0]
        return fn

    return deco


def _load_all() -> None:
    """Import the preset modules so their @register calls run."""
    from vita_eval.prompts import asr, videomme, vlmevalkit_vita15  # noqa: F401


def get_preset(name: str) -> PresetFn:
    _load_all()
    if name not in PRESETS:
        raise KeyError(f"unknown prompt preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]


def list_presets() -> dict[str, str]:
    _load_all()
    return dict(PRESET_DOCS)
