"""`vita-train`: run one stage from a YAML config, or a recipe that chains stages.

    vita-train --stage 2.2 --config stage2_2 [train.lr=1e-5 ...]
    vita-train --recipe tiny [output_dir=runs/tiny ...]
    torchrun --nproc-per-node 8 -m vita15.train.cli --stage 1.2 --config stage1_2

A config name without a path is looked up in `vita15/train/recipes/`. A stage config holds
`output_dir`, `init` (checkpoint to start from; null → random `model: {size, seed}`), `data`
and `train`; `phase_overrides: {<phase>: {...}}` adjusts one phase of a multi-phase stage (2.1).
A recipe lists `stages` (each merged over `defaults`); each stage starts from the previous
stage's export, and the last export is copied to `final_export`.
"""
from __future__ import annotations

import argparse
import copy
import logging
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # torch-heavy: imported when a stage runs, so `vita-train --help` stays instant
    from .engine import DistContext

logger = logging.getLogger("vita15.train")

RECIPES = Path(__file__).resolve().parent / "recipes"
SPEECH_TOOLS = ("espeak-ng", "sox")  # the synthetic training set speaks its questions with these


# ---------------------------------------------------------------------- config handling
def find_config(name: str) -> Path:
    """A path, or a name in the bundled recipes folder (with or without `.yaml`)."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = RECIPES / f"{name.removesuffix('.yaml')}.yaml"
    if bundled.is_file():
        return bundled
    raise FileNotFoundError(f"config {name!r} not found: not a file, nor a bundled name ({', '.join(bundled_names())})")


def bundled_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def stage_names() -> list[str]:
    """Stage ids from the bundled stage configs (stage2_2.yaml -> 2.2), without importing torch."""
    return sorted(p.stem.removeprefix("stage").replace("_", ".") for p in RECIPES.glob("stage*.yaml"))


def describe_config(path: Path) -> str:
    """A bundled config's leading comment block and what it runs: its own documentation."""
    lines = path.read_text(encoding="utf-8").splitlines()
    comment = [ln.lstrip("# ").rstrip() for ln in lines[: next((i for i, ln in enumerate(lines)
                                                               if not ln.startswith("#")), len(lines))]]
    cfg = load_yaml(path)
    facts = []
    if "stages" in cfg:
        facts.append("stages: " + " -> ".join(str(e["stage"]) for e in cfg["stages"]))
    for key in ("stage", "init", "output_dir", "final_export"):
        if cfg.get(key):
            facts.append(f"{key}: {cfg[key]}")
    return "\n".join([f"{path.name}:", *comment, "", *facts])


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping")
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `over` wins, lists are replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=value` (value parsed as YAML) for each override."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value")
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return cfg


def resolve_data(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make `files`, `image_folders` and `audio_folder` absolute against `root` (default: `base`)."""
    data = dict(data)
    root = Path(data.pop("root", ".") or ".")
    root = root if root.is_absolute() else base / root

    def absolute(p: str) -> str:
        return str(p if Path(p).is_absolute() else root / p)

    data["files"] = [absolute(f) for f in data.get("files", [])]
    data["image_folders"] = {k: absolute(v) for k, v in (data.get("image_folders") or {}).items()}
    if data.get("audio_folder"):
        data["audio_folder"] = absolute(data["audio_folder"])
    return data


# ---------------------------------------------------------------------- running
def run_stage(stage: str, cfg: dict[str, Any], base: Path, ctx: DistContext) -> Path:
    """Every phase of a stage in `output_dir/<phase>`; returns the last export folder."""
    from .engine import TrainConfig, train_phase
    from .objectives import build_objective
    from .stages import phases

    out_root = _path(cfg.get("output_dir", f"runs/stage{stage}"), base)
    init = _path(cfg["init"], base) if cfg.get("init") else None
    export = init
    for phase in phases(stage):
        phase_cfg = merge(cfg, cfg.get("phase_overrides", {}).get(phase.name, {}))
        phase_cfg["data"] = resolve_data(phase_cfg["data"], base)
        phase_cfg["output_dir"] = str(out_root / phase.name)
        objective = build_objective(phase, phase_cfg, export, ctx.world > 1)
        train_cfg = TrainConfig.from_dict(phase_cfg.get("train", {}))
        export = train_phase(objective, phase.name, train_cfg, Path(phase_cfg["output_dir"]), ctx)
    assert export is not None
    return export


def run_recipe(cfg: dict[str, Any], base: Path, ctx: DistContext) -> Path:
    """Build the synthetic data if asked, then the stages in order, each from the previous export."""
    out_root = _path(cfg.get("output_dir", "runs/recipe"), base)
    defaults = cfg.get("defaults", {})
    build = cfg.get("build_data")
    if build:
        _build_data(build, base, ctx)
    init = _path(cfg["init"], base) if cfg.get("init") else None
    if init is None and cfg.get("init_export"):
        init = _export_init(cfg, _path(cfg["init_export"], base), ctx)
    for entry in cfg["stages"]:
        stage_cfg = merge(merge(defaults, {"model": cfg.get("model", {})}), entry)
        stage = str(stage_cfg.pop("stage"))
        stage_cfg.setdefault("output_dir", str(out_root / f"stage{stage}"))
        stage_cfg["init"] = str(init) if init else None
        init = run_stage(stage, stage_cfg, base, ctx)
    final = cfg.get("final_export")
    if final and ctx.main:
        target = _path(final, base)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(init, target)
        logger.info("final checkpoint: %s", target)
        return target
    return init


def _export_init(cfg: dict[str, Any], target: Path, ctx: DistContext) -> Path:
    """Write the seeded random initialisation in the official layout (the baseline to compare with)."""
    from .engine import DTYPES, TrainConfig
    from .model_io import export_vita, load_model

    if ctx.main and not (target / "config.json").is_file():
        model, _, model_cfg = load_model(cfg.get("model", {}), None)
        train = TrainConfig.from_dict(cfg.get("defaults", {}).get("train", {}))
        # bf16 like the released checkpoints; stage 1 then starts from exactly these weights.
        export_vita(model.state_dict(), model_cfg, target, DTYPES["bf16"], train.max_shard_mb * 1024**2)
    ctx.barrier()
    return target


def _build_data(build: dict[str, Any], base: Path, ctx: DistContext) -> None:
    from .synthetic import build_training_set

    out = _path(build["out"], base)
    if ctx.main and not (out / "caption.json").is_file():
        build_training_set(out, n_images=int(build.get("n_images", 60)), seed=int(build.get("seed", 0)))
    ctx.barrier()


def missing_speech_tools(cfg: dict[str, Any], base: Path) -> list[str]:
    """The tools a recipe's synthetic data build needs but this machine lacks (none if the data exists)."""
    build = cfg.get("build_data")
    if not build or (_path(build["out"], base) / "caption.json").is_file():
        return []
    return [tool for tool in SPEECH_TOOLS if shutil.which(tool) is None]


def _path(value: str | Path, base: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


# ---------------------------------------------------------------------- entry point
def build_parser(config_help: str | None = None) -> argparse.ArgumentParser:
    epilog = config_help or (f"bundled configs: {', '.join(bundled_names())} "
                             "(`vita-train --recipe NAME --help` or `--config NAME --help` describes one)")
    parser = argparse.ArgumentParser(prog="vita-train", description="Train VITA-1.5 stages (FSDP, resumable).",
                                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=stage_names(), metavar="STAGE",
                        help=f"run one stage ({', '.join(stage_names())}) with --config (default: none)")
    parser.add_argument("--config", metavar="YAML", help="stage config: a path, or a bundled name such as stage2_2 "
                                                       "(default: none)")
    parser.add_argument("--recipe", metavar="YAML", help="recipe chaining stages: a path, or a bundled name; 'tiny' "
                                                       "trains the embedded tiny VITA on the CPU (default: none)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, YAML-parsed, e.g. train.lr=1e-4 output_dir=runs/x (default: none)")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:  # describe the named recipe or config under the usual help
        known, _ = build_parser().parse_known_args([a for a in argv if a not in ("-h", "--help")])
        name = known.recipe or known.config
        if name:
            try:
                build_parser(describe_config(find_config(name))).parse_args(["--help"])
            except FileNotFoundError as exc:
                build_parser().error(str(exc))
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.recipe) == bool(args.stage):
        parser.error("give either --recipe, or --stage with --config")
    if args.stage and not args.config:
        parser.error("--stage needs --config")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        path = find_config(args.recipe or args.config)
        cfg = apply_overrides(load_yaml(path), args.overrides)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"vita-train: error: {exc}") from None
    if args.stage and str(cfg.get("stage", args.stage)) != args.stage:
        raise SystemExit(f"vita-train: error: {path} is a stage {cfg['stage']} config, not {args.stage}")
    base = Path.cwd()
    missing = missing_speech_tools(cfg, base)
    if missing:
        raise SystemExit(f"vita-train: error: {path.name} builds its synthetic training speech with "
                         f"{' and '.join(SPEECH_TOOLS)}, and {', '.join(missing)} is not installed "
                         "(Debian/Ubuntu: sudo apt-get install espeak-ng sox)")
    from .engine import init_distributed

    ctx = init_distributed()
    logging.basicConfig(level=logging.INFO if ctx.main else logging.WARNING,
                        format=f"%(asctime)s [rank {ctx.rank}] %(levelname)s %(name)s: %(message)s")
    result = run_recipe(cfg, base, ctx) if args.recipe else run_stage(args.stage, cfg, base, ctx)
    if ctx.main:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
