"""Run configuration: defaults < YAML file < command line.

One flat dataclass, so the resolved configuration written to `run.json` is exactly
what ran. Per-suite tweaks go in `suite_args: {SUITE: {preset_args: {...}}}` rather than
in more top-level keys; on the command line they are dotted, torchtune / OmegaConf style:
`--set suites.LibriSpeech_test_other.prompt="..."` (short for
`suite_args.LibriSpeech_test_other.preset_args.prompt`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "benchmarks" / "default.yaml"


@dataclass
class RunConfig:
    model: str = "builtin:tiny"  # checkpoint dir, or builtin:tiny (the embedded tiny VITA)
    model_name: str | None = None  # used in file names; defaults to the checkpoint folder name
    device: str = "auto"  # cpu | cuda | auto
    dtype: str = "auto"  # fp32 | bf16 | fp16 | auto (bf16 on cuda, fp32 on cpu)
    suites: list[str] = field(default_factory=list)
    data_root: str | None = None  # default: $LMUData, else ~/LMUData
    data: dict[str, str] = field(default_factory=dict)  # suite -> file or folder override
    profile: str = "vlmevalkit-2026.08"
    asr_normalizer: str | None = None  # wenet (default) | whisper
    judge: str | None = None  # none | default (the profile's judges) | OpenAI-compatible model | local:/path
    judge_base_url: str | None = None
    judge_concurrency: int = 8
    judge_retry: int = 6
    judge_timeout: float = 120.0
    judge_cache: str | None = None
    judge_budget_s: float | None = 3600.0  # judge time per suite; when spent, the rest is scored without it
    out: str | None = None  # run directory; default outputs/<model_name>
    limit: int | None = None
    batch_size: int = 8
    max_new_tokens: int | None = None  # caps every preset's budget when set
    check_md5: bool = True
    allow_outside_root: bool = False  # let media paths (.., absolute, symlinks) leave the suite's data root
    seed: int = 0
    report: bool = True
    report_bootstrap: int = 500  # resamples for the CIs of the report written after a run
    suite_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # suite -> {preset_args: {...}}

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_keys(values: dict[str, Any], origin: str) -> None:
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{origin}: unknown config keys {unknown}; known: {sorted(known)}")


def load_yaml_config(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config file must be a mapping")
    _check_keys(values, str(path))
    return values


SUITE_ARG_KEYS = ("preset_args", "speech_out")  # what suite_args[SUITE] may hold; other keys are preset arguments


def _dotted(key: str, value: Any) -> dict[str, Any]:
    """`a.b.c=v` -> {a: {b: {c: v}}}, with `suites.NAME.KEY` meaning `suite_args.NAME.preset_args.KEY`."""
    parts = key.split(".")
    if parts[0] == "suites" and len(parts) > 1:
        parts[0] = "suite_args"
    if parts[0] == "suite_args" and len(parts) > 2 and parts[2] not in SUITE_ARG_KEYS:
        parts.insert(2, "preset_args")
    if any(not p for p in parts):
        raise ValueError(f"--set: empty part in key {key!r}")
    nested: Any = value
    for part in reversed(parts[1:]):
        nested = {part: nested}
    return {parts[0]: nested}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in `extra` replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are parsed as YAML scalars (numbers, true/false, lists); keys may be dotted."""
    values: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        values = merge(values, _dotted(key.strip(), yaml.safe_load(raw)))
    return values


def resolve(yaml_path: Path | None, cli: dict[str, Any]) -> RunConfig:
    """Merge defaults < YAML < CLI (CLI values of None mean 'not given')."""
    values: dict[str, Any] = {}
    if yaml_path is not None:
        values.update(_anchor_data_paths(load_yaml_config(yaml_path), Path(yaml_path).parent))
    given = {k: v for k, v in cli.items() if v is not None}
    _check_keys(given, "command line")
    return RunConfig(**merge(values, given))


def _anchor_data_paths(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """Data paths in a config file are relative to that file, so configs travel with their data."""
    values = dict(values)
    if values.get("data_root"):
        values["data_root"] = str((base / values["data_root"]).resolve())
    if values.get("data"):
        values["data"] = {k: str((base / v).resolve()) for k, v in values["data"].items()}
    return values
