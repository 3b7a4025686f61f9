"""Model backends the runner can drive, chosen by `--model [SCHEME:]ARG` (see `vita_eval.registry`).

`vita` (the default scheme: a checkpoint folder or `builtin:tiny`) and `whisper`
(`whisper:tiny.en`, `whisper:DIR`) are built in; a plug-in adds others with
`@register("model", NAME)`.
"""
from __future__ import annotations

import inspect
from typing import Any

from vita_eval import registry

DEFAULT_BACKEND = "vita"


def load_model(spec: str, *, device: str, dtype: str, name: str | None = None, engine: str | None = None) -> Any:
    """The backend named by the spec's scheme, built on `device` in `dtype`.

    `engine` goes to backends whose factory takes one (VITA: fast | reference); others have one.
    """
    scheme, arg = registry.split_spec("model", spec, DEFAULT_BACKEND)
    factory = registry.get("model", scheme)
    options = {}
    if engine is not None and "engine" in inspect.signature(factory).parameters:
        options["engine"] = engine
    return factory(arg, device=device, dtype=dtype, name=name, **options)
