"""The suite registry: one declarative YAML per suite in `benchmarks/`.

A suite names its data source (loader, path under the data root, md5, url), its prompt
preset, its scorer, whether it needs a judge, and which metrics are its headline and
categories. Shared fields live in `_*.yaml` files pulled in with `include:`. Code only
exists where logic is needed: loaders, presets and scorers are looked up by name in
`vita_eval.registry`, and suite folders other than `benchmarks/` (a plug-in's) are the
registry's `suites` kind.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vita_eval import registry
from vita_eval.types import SuiteData, SuiteError

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
registry.register("suites", "builtin")(BENCHMARKS_DIR)


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    loader: str  # a registered loader: tsv | videomme | librispeech | aishell | wenetspeech | manifest | ...
    path: str  # relative to the data root
    dataset_type: str  # Y/N | MCQ | VQA | Video-MCQ | ASR
    preset: str
    scorer: str
    judge: str = "none"  # none | optional | required
    md5: str | dict[str, str] | None = None  # one md5, or {profile: md5} where files changed
    url: str | None = None
    preset_args: dict[str, Any] = field(default_factory=dict)
    profile_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {videomme_parser: vita}
    loader_args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the loader
    headline: tuple[str, ...] = ()
    categories: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    speech_out: bool | dict[str, Any] | None = None  # speak the answers too (vita_eval.speech.suite.SpeechOptions)
    group_by: str | None = None  # sample field whose samples belong together: --limit keeps them whole

    def md5_for(self, profile: str) -> str | None:
        if isinstance(self.md5, dict):
            return self.md5.get(profile)
        return self.md5


def _read_yaml(path: Path) -> dict[str, Any]:
    raw = yaml.safe_load(path.read_text()) or {}
    include = raw.pop("include", None)
    if include is None:
        return raw
    base = _read_yaml(path.parent / include)
    return {**base, **raw}


def _spec_from_dict(raw: dict[str, Any], origin: Path) -> SuiteSpec:
    try:
        raw = dict(raw)
        raw["headline"] = tuple(raw.get("headline", ()))
        return SuiteSpec(**raw)
    except TypeError as exc:
        raise SuiteError(f"{origin}: invalid suite declaration: {exc}") from exc


def load_registry(directory: Path | None = None) -> dict[str, SuiteSpec]:
    """Every suite YAML that is not a `_shared` include, keyed by suite name.

    With no `directory`, every registered suite folder (`benchmarks/` and plug-ins') is read;
    a suite name defined twice is an error naming both files.
    """
    folders = [directory] if directory is not None else list(registry.names("suites").values())
    specs: dict[str, SuiteSpec] = {}
    origins: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.yaml")):
            if path.name.startswith("_") or path.name.startswith("default"):
                continue
            spec = _spec_from_dict(_read_yaml(path), path)
            if spec.name in origins:
                raise SuiteError(f"suite {spec.name!r} is defined twice: {origins[spec.name]} and {path}")
            specs[spec.name], origins[spec.name] = spec, path
    return specs


def get_suite(name: str, directory: Path | None = None) -> SuiteSpec:
    registry_ = load_registry(directory)
    if name not in registry_:
        raise SuiteError(f"unknown suite {name!r}; known: {', '.join(sorted(registry_))}")
    return registry_[name]


def data_path(spec: SuiteSpec, root: Path, override: str | Path | None = None) -> Path:
    return Path(override) if override else root / spec.path


def load_suite_data(spec: SuiteSpec, path: Path, *, allow_outside_root: bool = False) -> SuiteData:
    """The suite's registered loader on its official layout: `loader(path, suite=NAME, **loader_args)`.

    `allow_outside_root=True` (the run setting) is passed on as the loader keyword of that name,
    so media paths may leave the data root; a loader without that keyword cannot honour it.
    """
    if not path.exists():
        raise SuiteError(f"{spec.name}: data not found at {path} (set --data-root / $LMUData or --data)")
    try:
        loader = registry.get("loader", spec.loader)
    except registry.RegistryError as exc:
        raise SuiteError(f"{spec.name}: {exc}") from exc
    options = dict(spec.loader_args)
    if allow_outside_root:
        if "allow_outside_root" not in inspect.signature(loader).parameters:
            raise SuiteError(f"{spec.name}: loader {spec.loader!r} has no allow_outside_root option")
        options["allow_outside_root"] = True
    return loader(path, suite=spec.name, **options)
