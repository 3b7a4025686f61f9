"""Run configuration: defaults < YAML file < command line.

Without `--config` and `--model`, the YAML layer is the embedded default
(`benchmarks/default.yaml`: the bundled tiny VITA on the bundled sample suites), so
`vita-eval run --suites MME` is "the default run, only MME". A `--config` file, or a
`--model` of your own, starts from the defaults below instead (data from `--data-root`,
else `$LMUData`, else `~/LMUData`, md5 checked).

One flat dataclass, so the resolved configuration written to `run.json` is exactly
what ran. Per-suite tweaks go in `suite_args: {SUITE: {preset_args: {...}}}` rather than
in more top-level keys; on the command line they are dotted, torchtune / OmegaConf style:
`--set suites.LibriSpeech_test_other.prompt="..."` (short for
`suite_args.LibriSpeech_test_other.preset_args.prompt`).
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
DEFAULT_CONFIG = BENCHMARKS / "default.yaml"
SAMPLES = "samples"  # `data_root: samples` names the bundled sample suites wherever you run from
SAMPLES_DIR = BENCHMARKS / "samples"
DEFAULT_N_BOOT = 2000  # bootstrap resamples of every report: the one after a run and `vita-eval report`


class ConfigError(ValueError):
    """A user mistake in the run configuration; its message is one line that says how to fix it."""


@dataclass
class RunConfig:
    model: str = "builtin:tiny"  # checkpoint dir, or builtin:tiny (the embedded tiny VITA)
    model_name: str | None = None  # used in file names; defaults to the checkpoint folder name
    device: str = "auto"  # cpu | cuda | auto
    dtype: str = "auto"  # fp32 | bf16 | fp16 | auto (bf16 on cuda, fp32 on cpu)
    suites: list[str] = field(default_factory=list)
    data_root: str | None = None  # folder, or "samples" (bundled); default: $LMUData, else ~/LMUData
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
    engine: str = "fast"  # VITA: fast (prefix sharing, CUDA graphs, continuous batching) | reference (batch 1)
    batch_size: int = 8  # backends without streaming (Whisper); the VITA engines schedule themselves
    max_new_tokens: int | None = None  # caps every preset's budget when set
    allow_outside_root: bool = False  # let media paths (.., absolute, symlinks) leave the suite's data root
    check_md5: bool | None = None  # None: on, except for the bundled samples (synthetic stand-ins)
    seed: int = 0
    report: bool = True
    report_bootstrap: int = DEFAULT_N_BOOT  # resamples for the report's CIs (as `vita-eval report --n-boot`)
    suite_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # suite -> {preset_args: {...}}

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def data_root_path(self) -> Path:
        """The folder suites are read from: `samples` is the bundled copy; unset is VLMEvalKit's rule."""
        if self.data_root == SAMPLES:
            return SAMPLES_DIR
        if self.data_root:
            return Path(self.data_root)
        env = os.environ.get("LMUData")
        return Path(env) if env else Path.home() / "LMUData"

    def uses_samples(self) -> bool:
        return self.data_root_path().resolve() == SAMPLES_DIR.resolve()

    def md5_checked(self) -> bool:
        return self.check_md5 if self.check_md5 is not None else not self.uses_samples()


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(RunConfig)}
_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "None": "null", "list[str]": "a list of strings", "dict[str, str]": "a mapping",
               "dict[str, dict[str, Any]]": "a mapping"}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind.startswith("list"):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, dict)


def check_types(values: dict[str, Any], origin: str) -> None:
    """Every value has its field's type (`--set batch_size=abc` fails here, not inside inference)."""
    for key, value in values.items():
        kinds = [k.strip() for k in FIELD_TYPES[key].split("|")]
        if not any(_type_ok(value, kind) for kind in kinds):
            wanted = " or ".join(_TYPE_NAMES.get(k, k) for k in kinds)
            raise ConfigError(f"{origin}: {key} must be {wanted}, got {value!r}")


def _check_keys(values: dict[str, Any], origin: str) -> None:
    for key in sorted(set(values) - set(FIELD_TYPES)):
        close = difflib.get_close_matches(key, FIELD_TYPES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{origin}: unknown config key {key!r}{hint}; the keys are listed in vita_eval/config.py")


def load_yaml_config(path: Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config file must be a mapping")
    _check_keys(values, str(path))
    check_types(values, str(path))
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
        raise ConfigError(f"--set: empty part in key {key!r}")
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
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw  # not YAML (e.g. an unbalanced quote): the text itself
        values = merge(values, _dotted(key.strip(), value))
    return values


def resolve(yaml_path: Path | None, cli: dict[str, Any]) -> RunConfig:
    """Merge defaults < YAML < CLI (CLI values of None mean 'not given')."""
    values: dict[str, Any] = {}
    if yaml_path is not None:
        values.update(_anchor_data_paths(load_yaml_config(yaml_path), Path(yaml_path).parent))
    given = {k: v for k, v in cli.items() if v is not None}
    _check_keys(given, "command line")
    check_types(given, "command line")
    return RunConfig(**merge(values, given))


def embedded_suites() -> list[str]:
    """The suites of the embedded default run."""
    return list(load_yaml_config(DEFAULT_CONFIG).get("suites", []))


def base_config(config: Path | None, model: str | None) -> Path | None:
    """The YAML layer of a run: `--config`, else the embedded default unless `--model` names your own model."""
    if config is not None:
        return config
    return None if model else DEFAULT_CONFIG


def _anchor_data_paths(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """Data paths in a config file are relative to that file, so configs travel with their data."""
    values = dict(values)
    if values.get("data_root") and values["data_root"] != SAMPLES:
        values["data_root"] = str((base / values["data_root"]).resolve())
    if values.get("data"):
        values["data"] = {k: str((base / v).resolve()) for k, v in values["data"].items()}
    return values
