"""Model backends the runner can drive, chosen by `--model [SCHEME:]ARG` (see `vita_eval.registry`).

`vita` (the default scheme: a checkpoint folder or `builtin:tiny`) and `whisper`
(`whisper:tiny.en`, `whisper:DIR`) are built in; a plug-in adds others with
`@register("model", NAME)`.
"""
from __future__ import annotations

from typing import Any

from vita_eval import registry

DEFAULT_BACKEND = "vita"


def load_model(spec: str, *, device: str, dtype: str, name: str | None = None) -> Any:
    """The backend named by the spec's scheme, built on `device` in `dtype`."""
    scheme, arg = registry.split_spec("model", spec, DEFAULT_BACKEND)
    return registry.get("model", scheme)(arg, device=device, dtype=dtype, name=name)
