"""One way to plug things in: string-named targets of six kinds, imported only when asked for.

| kind     | what it is                                   | built-ins live in      | called as                                   |
|----------|----------------------------------------------|------------------------|---------------------------------------------|
| `loader` | an official data layout -> `SuiteData`       | `vita_eval/data/`      | `fn(path, suite=NAME, **loader_args)`       |
| `preset` | `Sample` -> `Request`, as a reference does   | `vita_eval/prompts/`   | `fn(sample, suite_spec, preset_args)`       |
| `scorer` | predictions -> `ScoreResult`                 | `vita_eval/scorers/`   | `factory()` -> object with `score`/`aggregate` |
| `judge`  | a `--judge SCHEME:ARG` backend               | `vita_eval/judges/`    | `factory(arg, cache=..., **options)`        |
| `model`  | a `--model SCHEME:ARG` backend               | `vita_eval/models/`    | `factory(arg, device=, dtype=, name=)`      |
| `suites` | a folder of suite YAMLs                      | `benchmarks/`          | a `Path`                                    |

A module registers a target with the decorator `@register(kind, name)` (or calls
`register("suites", name)(folder)`). Nothing is imported up front: the first lookup of a
kind imports every module of that kind's package whose source calls `register(` (a package
scan), then every module named by an entry point of the group `vita_eval.plugins`. So a
new suite with a new data layout is three new files (a loader module, a scorer module, a
YAML) and an outside package adds its own with one entry point:

    [project.entry-points."vita_eval.plugins"]
    my_suites = "my_package.vita_plugin"
"""
from __future__ import annotations

import difflib
import importlib
import logging
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

PACKAGES: dict[str, str] = {
    "loader": "vita_eval.data",
    "preset": "vita_eval.prompts",
    "scorer": "vita_eval.scorers",
    "judge": "vita_eval.judges",
    "model": "vita_eval.models",
    "suites": "vita_eval.suites",  # a module, not a package: importing it registers benchmarks/
}
KINDS: tuple[str, ...] = tuple(PACKAGES)
ENTRY_POINT_GROUP = "vita_eval.plugins"

_targets: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_scanned: set[str] = set()
_plugins_loaded = False


class RegistryError(KeyError):
    """An unknown kind or name; the message lists what is known and the closest match."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _check_kind(kind: str) -> None:
    if kind not in _targets:
        raise RegistryError(f"unknown plug-in kind {kind!r}; known: {', '.join(KINDS)}")


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator: make `target` reachable as `get(kind, name)`; a second target of one name is an error."""
    _check_kind(kind)

    def deco(target: T) -> T:
        old = _targets[kind].get(name)
        if old is not None and old is not target and getattr(old, "__qualname__", None) != getattr(
                target, "__qualname__", object()):
            raise RegistryError(f"{kind} {name!r} is registered twice: {_origin(old)} and {_origin(target)}")
        _targets[kind][name] = target
        return target

    return deco


def _origin(target: Any) -> str:
    module = getattr(target, "__module__", None)
    return f"{module}.{getattr(target, '__qualname__', '')}" if module else repr(target)


def _scan(kind: str) -> None:
    """Import the modules of the kind's package that register something (once per kind).

    A kind whose home is a single module (`suites`) is scanned by importing that module.
    """
    if kind in _scanned:
        return
    _scanned.add(kind)
    package = importlib.import_module(PACKAGES[kind])
    for folder in getattr(package, "__path__", []):
        for path in sorted(Path(folder).glob("*.py")):
            if path.stem != "__init__" and "register(" in path.read_text(encoding="utf-8"):
                importlib.import_module(f"{package.__name__}.{path.stem}")
    _load_plugins()


def _load_plugins() -> None:
    """Import every `vita_eval.plugins` entry point once; a broken plug-in is a warning, not a crash."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:  # a third-party package must not take the harness down
            log.warning("plug-in %s (%s) failed to load: %s: %s", entry.name, entry.value, type(exc).__name__, exc)


def get(kind: str, name: str) -> Any:
    """The target registered as `name`, or a RegistryError naming the known ones."""
    _check_kind(kind)
    _scan(kind)
    if name not in _targets[kind]:
        known = sorted(_targets[kind])
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RegistryError(f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}")
    return _targets[kind][name]


def names(kind: str) -> dict[str, Any]:
    """Every target of a kind, by name (after the scan)."""
    _check_kind(kind)
    _scan(kind)
    return dict(sorted(_targets[kind].items()))


def describe(target: Any) -> str:
    """The first line of a target's docstring (a folder describes itself by its path)."""
    if isinstance(target, Path):
        return str(target)
    return ((getattr(target, "__doc__", None) or "").strip().splitlines() or [""])[0]


def split_spec(kind: str, spec: str, default: str) -> tuple[str, str]:
    """`SCHEME:ARG` -> (scheme, arg) when SCHEME is a registered name of `kind`; else (default, spec).

    Paths and model names containing ':' (`/ckpt/a:b`, `Qwen/Qwen2.5:7b`) stay whole unless
    their prefix names a backend.
    """
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in names(kind):
        return scheme, rest
    return default, spec
