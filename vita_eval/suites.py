"""The suite registry: one declarative YAML per suite in `benchmarks/`.

A suite names its data source (loader, path under the data root, md5, url), its prompt
preset, its scorer, whether it needs a judge, and which metrics are its headline and
categories. Shared fields live in `_*.yaml` files pulled in with `include:`. Code only
exists where logic is needed: loaders in `vita_eval.data`, presets in
`vita_eval.prompts`, scorers in `vita_eval.scorers`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vita_eval.types import SuiteData, SuiteError

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    loader: str  # tsv | videomme | librispeech | aishell | wenetspeech | manifest
    path: str  # relative to the data root
    dataset_type: str  # Y/N | MCQ | VQA | Video-MCQ | ASR
    preset: str
    scorer: str
    judge: str = "none"  # none | optional | required
    md5: str | dict[str, str] | None = None  # one md5, or {profile: md5} where files changed
    url: str | None = None
    required_columns: tuple[str, ...] = ()
    preset_args: dict[str, Any] = field(default_factory=dict)
    profile_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {videomme_parser: vita}
    loader_args: dict[str, Any] = field(default_factory=dict)
    headline: tuple[str, ...] = ()
    categories: dict[str, Any] = field(default_factory=dict)
    description: str = ""

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
        for key in ("required_columns", "headline"):
            raw[key] = tuple(raw.get(key, ()))
        return SuiteSpec(**raw)
    except TypeError as exc:
        raise SuiteError(f"{origin}: invalid suite declaration: {exc}") from exc


def load_registry(directory: Path = BENCHMARKS_DIR) -> dict[str, SuiteSpec]:
    """Every `benchmarks/*.yaml` that is not a `_shared` include, keyed by suite name."""
    specs: dict[str, SuiteSpec] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name.startswith("_") or path.name.startswith("default"):
            continue
        spec = _spec_from_dict(_read_yaml(path), path)
        specs[spec.name] = spec
    return specs


def get_suite(name: str, directory: Path = BENCHMARKS_DIR) -> SuiteSpec:
    registry = load_registry(directory)
    if name not in registry:
        raise SuiteError(f"unknown suite {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]


def data_path(spec: SuiteSpec, root: Path, override: str | Path | None = None) -> Path:
    return Path(override) if override else root / spec.path


def load_suite_data(spec: SuiteSpec, path: Path) -> SuiteData:
    """Dispatch to the loader for the suite's official layout."""
    from vita_eval.data import asr, tsv, videomme

    if not path.exists():
        raise SuiteError(f"{spec.name}: data not found at {path} (set --data-root / $LMUData or --data)")
    loaders = {
        "tsv": lambda: tsv.load_tsv_suite(path, suite=spec.name, required_columns=spec.required_columns),
        "videomme": lambda: videomme.load_videomme(path, suite=spec.name),
        "librispeech": lambda: asr.load_librispeech(path, suite=spec.name),
        "aishell": lambda: asr.load_aishell(path, suite=spec.name),
        "wenetspeech": lambda: asr.load_wenetspeech(path, suite=spec.name, **spec.loader_args),
        "manifest": lambda: asr.load_manifest(path, suite=spec.name),
    }
    if spec.loader not in loaders:
        raise SuiteError(f"{spec.name}: unknown loader {spec.loader!r}")
    return loaders[spec.loader]()
