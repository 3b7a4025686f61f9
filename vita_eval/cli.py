"""The `vita-eval` command line: run, score, data, ls, judge, report, model-init, model-dump, tts-dump, ask, latency,
bench.

Each subcommand parses its flags and calls one function in the package; no logic
lives here beyond turning flags into arguments and mistakes into one-line errors.
Heavy modules (torch, transformers, pandas) are imported inside the commands, so
`--help` and argument errors are instant.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from vita_eval.config import DEFAULT_CONFIG, DEFAULT_N_BOOT, ConfigError, RunConfig, base_config, parse_set, resolve

DEFAULTS = RunConfig()
EXIT_USAGE, EXIT_FAILED_SUITES, EXIT_INTERRUPTED = 2, 1, 130


def _pairs(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        if not value:
            raise ConfigError(f"--data expects SUITE=PATH, got {item!r}")
        out[key] = value
    return out


def _run_config(args: argparse.Namespace) -> tuple[RunConfig, str]:
    """The resolved configuration and a line saying where it came from."""
    cli: dict[str, Any] = {
        "model": args.model, "model_name": args.model_name, "device": args.device, "dtype": args.dtype,
        "suites": args.suites, "data_root": args.data_root, "data": _pairs(args.data) or None,
        "profile": args.profile, "asr_normalizer": args.asr_normalizer, "judge": args.judge,
        "judge_base_url": args.judge_base_url, "out": args.out, "limit": args.limit, "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "engine": args.engine, "report": False if args.no_report else None,
        **parse_set(args.set or []),
    }
    if args.resume is not None:
        from vita_eval.fsio import read_json

        stored = (read_json(args.resume / "run.json") or {}).get("config")
        if not isinstance(stored, dict):
            raise ConfigError(f"--resume {args.resume}: not a run directory (no readable run.json)")
        given = {k: v for k, v in cli.items() if v is not None}
        values = {k: v for k, v in stored.items() if k in DEFAULTS.__dataclass_fields__}
        return resolve(None, {**values, **given, "out": str(args.resume)}), f"{args.resume}/run.json (--resume)"
    yaml_path = base_config(args.config, args.model)
    source = ("the embedded default (benchmarks/default.yaml)" if yaml_path == DEFAULT_CONFIG
              else str(yaml_path) if yaml_path else "built-in defaults (--model given)")
    return resolve(yaml_path, cli), f"{source} + command line"


def cmd_run(args: argparse.Namespace) -> int:
    from vita_eval.runner.preflight import header, plan_run

    cfg, source = _run_config(args)
    plan = plan_run(cfg, force=args.force)
    for line in header(plan, source):
        print(line, flush=True)
    from vita_eval.reports.summary import results_table
    from vita_eval.runner.run import run_plan

    result = run_plan(plan)
    if not result.suites:  # a non-main torchrun rank
        return 0
    print()
    print(results_table(result.suites))
    print(f"\nrun directory: {result.out}  (results.json, per-suite samples and log_samples.jsonl)")
    if (result.out / "report.md").exists():
        print(f"report: {result.out / 'report.md'}")
    if result.failed:
        for name, reason in result.failed.items():
            print(f"FAILED {name}: {reason}", file=sys.stderr)
        return EXIT_FAILED_SUITES
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from vita_eval.runner.preflight import canonical_suites, check_profile
    from vita_eval.runner.rescore import rescore

    (suite,) = canonical_suites([args.suite])
    check_profile(args.profile)
    data = Path(args.data) if args.data else None
    for label, path in (("--data", data), ("--predictions", Path(args.predictions))):
        if path is not None and not path.exists():
            raise ConfigError(f"{label}: {path} does not exist")
    scores = rescore(suite, data, Path(args.predictions), profile=args.profile, judge=args.judge,
                     judge_base_url=args.judge_base_url, out=Path(args.out), asr_normalizer=args.asr_normalizer,
                     judge_cache=args.judge_cache)
    shown = ("suite", "profile", "metrics", "printed", "n", "n_failed")
    print(json.dumps({k: scores[k] for k in shown if k in scores}, indent=2, ensure_ascii=False, default=str))
    return EXIT_FAILED_SUITES if scores.get("status") != "scored" else 0


def cmd_data(args: argparse.Namespace) -> int:
    from vita_eval.data.manage import data_command
    from vita_eval.runner.preflight import canonical_suites

    suites = canonical_suites(args.suites) if args.suites else []
    data_command(args.action, suites, Path(args.data_root) if args.data_root else None, args.profile)
    return 0


LS_KINDS = {"loaders": "loader", "presets": "preset", "scorers": "scorer", "judges": "judge", "models": "model"}


def cmd_ls(args: argparse.Namespace) -> int:
    from vita_eval import registry
    from vita_eval.scorers.profiles import PROFILES, describe
    from vita_eval.suites import load_registry

    if args.what in ("suites", "all"):
        for name, spec in sorted(load_registry().items()):
            print(f"{name:28s} {spec.scorer:10s} judge={spec.judge:8s} preset={spec.preset:20s} {spec.description}")
    if args.what in ("profiles", "all"):
        for name, profile in PROFILES.items():
            default = " (default)" if name == DEFAULTS.profile else ""
            print(f"profile {name}{default}: {describe(profile)}")
    for plural, kind in LS_KINDS.items():
        if args.what in (plural, "all"):
            for name, target in registry.names(kind).items():
                print(f"{kind:7s} {name:22s} {registry.describe(target)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vita_eval.reports.compare import write_report

    path = write_report([Path(p) for p in args.runs], out=Path(args.out),
                        baseline=Path(args.baseline) if args.baseline else None, html=args.html, n_boot=args.n_boot)
    print(f"report: {path}")
    if args.html:
        print(f"html: {path.with_suffix('.html')}  samples: {path.parent / 'samples.html'}")
    return 0


def cmd_judge_serve(args: argparse.Namespace) -> int:
    from vita_eval.judges.server import serve

    serve(args.model, host=args.host, port=args.port)
    return 0


def cmd_model_init(args: argparse.Namespace) -> int:
    import torch

    from vita15.checkpoint import write_checkpoint
    from vita15.configuration_vita import tiny_config, vita15_config

    config = tiny_config() if args.size == "tiny" else vita15_config()
    path = write_checkpoint(Path(args.out), config, seed=args.seed, dtype=torch.bfloat16 if args.size == "full"
                            else torch.float32, with_weights=not args.random_on_load, with_tts=args.with_tts)
    print(f"checkpoint: {path}")
    return 0


def cmd_model_dump(args: argparse.Namespace) -> int:
    from safetensors import safe_open

    from vita_eval.models.vita import resolve_model_path
    from vita15.dump import model_dump

    try:
        model_dir = resolve_model_path(args.model)  # builtin:tiny, as `run` accepts it
    except FileNotFoundError as exc:
        raise ConfigError(f"--model: {exc}") from None
    out = model_dump(model_dir, args.prompt, images=args.image or (), audio=args.audio, video=args.video,
                     max_tiles=args.max_tiles, dtype=args.dtype, device=args.device,
                     max_new_tokens=args.max_new_tokens, out=args.out)
    with safe_open(str(out), "pt") as f:
        meta, keys = f.metadata() or {}, list(f.keys())
    print(f"wrote {out} (safetensors: {', '.join(keys)})")
    if "generated_text" in meta:
        print(f"generated text: {meta['generated_text']!r}")
    return 0


def cmd_tts_dump(args: argparse.Namespace) -> int:
    from vita15.tts.dump import tts_dump

    tts_dump(args.model, args.text, greedy=args.greedy, out=args.out, device=args.device)
    print(f"wrote {args.out}")
    return 0


def _default(value: Any, where: str = "") -> str:
    return f" (default: {value}{where})"


EMBEDDED = ", from the embedded default run"


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="model x suites -> predictions -> scores -> report (resumable)",
                       description="Run a model on suites, score them and write a report. Without --config and "
                                   "--model this is the embedded default run (bundled tiny VITA x bundled sample "
                                   "suites); any flag replaces only its own setting. Re-running the same command "
                                   "resumes it.")
    p.add_argument("--config", type=Path, metavar="YAML",
                   help="YAML run config, keys as in vita_eval/config.py"
                        + _default("benchmarks/default.yaml, the embedded run, unless --model is given"))
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR with the settings stored in its run.json (default: none)")
    p.add_argument("--force", action="store_true",
                   help="if --out holds a run with other settings, move it to OUT.replaced-<time> and start "
                        "afresh (default: refuse)")
    p.add_argument("--model", help="checkpoint folder, builtin:tiny, or whisper:tiny.en" + _default("builtin:tiny"))
    p.add_argument("--model-name", help="name used in output file names" + _default("the checkpoint folder name"))
    p.add_argument("--suites", nargs="+", metavar="SUITE",
                   help="suite names, case-insensitive, space or comma separated (`vita-eval ls suites`)"
                        + _default("the 9 sample suites", EMBEDDED))
    p.add_argument("--data-root", metavar="DIR",
                   help="folder of the official data files, or `samples` for the bundled ones"
                        + _default("samples for the embedded run; else $LMUData, else ~/LMUData"))
    p.add_argument("--data", nargs="+", metavar="SUITE=PATH", help="per-suite data file or folder (default: none)")
    p.add_argument("--profile", metavar="NAME", help="VLMEvalKit scoring profile (`vita-eval ls profiles`)"
                                                     + _default(DEFAULTS.profile))
    p.add_argument("--asr-normalizer", choices=["wenet", "whisper"],
                   help="text normalizer of the ASR suites" + _default("wenet"))
    p.add_argument("--judge", help="none | default (the profile's VLMEvalKit judges) | an OpenAI-compatible model "
                                   "name | local:/path/to/qwen" + _default("none"))
    p.add_argument("--judge-base-url", metavar="URL",
                   help="OpenAI-compatible endpoint of the judge" + _default("$OPENAI_API_BASE, else OpenAI's"))
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N" + _default(DEFAULTS.device))
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16", "auto"],
                   help="weights and activations (default: auto, i.e. bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--out", metavar="DIR", help="run directory" + _default("outputs/<model>/<suites>-<configuration>,"
                                                                         " one per configuration"))
    p.add_argument("--limit", type=int, metavar="N",
                   help="first N samples of each suite (whole MME images / Video-MME videos), scored and marked "
                        "partial" + _default("all"))
    p.add_argument("--batch-size", type=int, metavar="N", help="requests per generate() call of backends without streaming (Whisper)" + _default(8))
    p.add_argument("--engine", choices=["fast", "reference"],
                   help="VITA inference: fast (prefix sharing, CUDA graphs, continuous batching) or reference "
                        "(one request at a time, as VLMEvalKit drives it); recorded in run.json" + _default("fast"))
    p.add_argument("--max-new-tokens", type=int, metavar="N",
                   help="cap on every preset's generation budget" + _default("24 for the embedded run, else none"))
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                   help="any config key, YAML-parsed; suites.NAME.KEY=... sets a preset argument (default: none)")
    p.add_argument("--no-report", action="store_true", help="skip report.md and the plots (default: write them)")
    p.set_defaults(fn=cmd_run)


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a prediction file (ours or VLMEvalKit's .xlsx/.tsv)")
    p.add_argument("--suite", required=True, help="suite name (`vita-eval ls suites`; required)")
    p.add_argument("--data", help="the suite's data file or folder (default: none, when the prediction .xlsx/.tsv "
                                   "carries every dataset column the scorer reads, as VLMEvalKit's files do)")
    p.add_argument("--predictions", required=True, help="samples.jsonl, or VLMEvalKit's .xlsx / .tsv (required)")
    p.add_argument("--profile", default=DEFAULTS.profile, help="scoring profile (default: %(default)s)")
    p.add_argument("--judge", default="none", help="none | an OpenAI-compatible model | local:/path "
                                                   "(default: %(default)s)")
    p.add_argument("--judge-base-url", help="OpenAI-compatible endpoint (default: $OPENAI_API_BASE, else OpenAI's)")
    p.add_argument("--asr-normalizer", choices=["wenet", "whisper"], help="ASR normalizer (default: wenet)")
    p.add_argument("--judge-cache", help="judge cache folder (default: ~/.cache/vita-eval/judge)")
    p.add_argument("--out", required=True, help="folder for scores.json and per_sample.jsonl (required)")
    p.set_defaults(fn=cmd_score)


def _add_misc(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, fetch or md5-verify suite data")
    p.add_argument("action", choices=["list", "fetch", "verify"])
    p.add_argument("suites", nargs="*", help="suite names (default: all)")
    p.add_argument("--data-root", help="data folder (default: $LMUData, else ~/LMUData)")
    p.add_argument("--profile", default=DEFAULTS.profile, help="profile whose md5 pins apply (default: %(default)s)")
    p.set_defaults(fn=cmd_data)

    p = sub.add_parser("ls", help="suites, profiles and every plug-in kind (loaders, presets, scorers, judges, models)")
    p.add_argument("what", nargs="?", default="all", choices=["all", "suites", "profiles", *LS_KINDS],
                   help="what to list (default: %(default)s)")
    p.set_defaults(fn=cmd_ls)

    p = sub.add_parser("report", help="compare run directories in Markdown + PNG (+ HTML with a sample viewer)")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, the first is the baseline")
    p.add_argument("--baseline", metavar="RUN_DIR", help="the reference run (default: the first RUN_DIR)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for report.md and plots (required)")
    p.add_argument("--html", action="store_true",
                   help="also write report.html and samples.html, a per-sample viewer (default: off)")
    p.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT,
                   help="bootstrap resamples for CIs and paired tests, as after a run (default: %(default)s)")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("judge", help="judge utilities")
    jsub = p.add_subparsers(dest="judge_cmd", required=True)
    s = jsub.add_parser("serve", help="serve a local Qwen checkpoint as an OpenAI-compatible endpoint")
    s.add_argument("--model", required=True, help="Qwen2/Qwen2.5 folder (required)")
    s.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    s.add_argument("--port", type=int, default=23333, help="(default: %(default)s)")
    s.set_defaults(fn=cmd_judge_serve)


def cmd_bench(args: argparse.Namespace) -> int:
    from vita_eval.bench.run import WORKLOADS, bench

    tiny = args.size == "tiny"
    result = bench(model=args.model, size=args.size, device=args.device or ("cpu" if tiny else "cuda"),
                   dtype=args.dtype or ("fp32" if tiny else "bf16"), out=Path(args.out),
                   workloads=args.workloads or list(WORKLOADS), limits={k: int(v) for k, v in _pairs(args.limit).items()},
                   reference={k: int(v) for k, v in _pairs(args.reference).items()},
                   work_dir=Path(args.work_dir) if args.work_dir else None,
                   decode_tokens=args.decode_tokens or (4 if tiny else 128), command=" ".join(["vita-eval", *sys.argv[1:]]),
                   profile=args.profile, process_media=args.process_media)
    print((Path(args.out) / "bench.md").read_text())
    print(f"results: {Path(args.out) / 'bench.json'} (total {result['total_s']} s)")
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="fast vs reference engine on synthetic full-scale workloads (throughput, memory)")
    p.add_argument("--model", help="checkpoint folder (default: seeded random weights of --size)")
    p.add_argument("--size", choices=["full", "tiny"], default="full", help="tiny: the same workloads in miniature")
    p.add_argument("--device", help="default cuda (tiny: cpu)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], help="default bf16 (tiny: fp32)")
    p.add_argument("--workloads", nargs="+", help="default: all, in the order MME, LibriSpeech_test_other, "
                                                   "Video-MME_8frame, MMBench_DEV_EN, MathVista_MINI")
    p.add_argument("--limit", nargs="+", metavar="WORKLOAD=N", help="build N images/questions/utterances/videos")
    p.add_argument("--reference", nargs="+", metavar="WORKLOAD=N", help="groups the reference engine runs")
    p.add_argument("--decode-tokens", type=int, help="tokens of the batch-1 decode measurement")
    p.add_argument("--work-dir", help="where data and records are written (default: a temporary folder)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also run the fast engine on each workload's first N groups under torch.profiler "
                        "(tables in OUT/profile/WORKLOAD.txt)")
    p.add_argument("--process-media", nargs="*", choices=["image", "video", "audio"], metavar="KIND",
                   help="media kinds whose suites the fast engine prepares in worker processes, the others on "
                        "threads (default: image video audio; none: all on threads)")
    p.add_argument("--out", default="reports/perf", help="bench.json and bench.md go here")
    p.set_defaults(fn=cmd_bench)


def _add_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model-init", help="write an official-layout VITA-1.5 checkpoint from a seed")
    p.add_argument("--size", choices=["tiny", "full"], default="tiny", help="(default: %(default)s)")
    p.add_argument("--out", required=True, help="checkpoint folder (required)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--random-on-load", action="store_true",
                   help="write no weights: the loader builds them from the seed on the target device")
    p.add_argument("--with-tts", action="store_true", help="add the speech decoder and codec")
    p.set_defaults(fn=cmd_model_init)

    p = sub.add_parser("model-dump", help="write every intermediate tensor of one prompt to a .safetensors file")
    p.add_argument("--model", default="builtin:tiny", help="checkpoint folder or builtin:tiny (default: %(default)s)")
    p.add_argument("--prompt", default="", help="user text after the media (default: empty)")
    p.add_argument("--image", nargs="+", help="image files (default: none)")
    p.add_argument("--audio", help="audio file (default: none)")
    p.add_argument("--video", help="video file (default: none)")
    p.add_argument("--max-tiles", type=int, default=12, help="(default: %(default)s)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="(default: %(default)s)")
    p.add_argument("--device", default="cpu", help="(default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=16, help="greedy tokens to generate (default: %(default)s)")
    p.add_argument("--out", default="model_dump.safetensors", help="output file (default: %(default)s)")
    p.set_defaults(fn=cmd_model_dump)

    p = sub.add_parser("tts-dump", help="text -> speech-decoder tensors, codec codes and waveform (safetensors)")
    p.add_argument("--model", required=True, help="checkpoint folder with the speech decoder (required)")
    p.add_argument("--text", required=True, help="(required)")
    p.add_argument("--greedy", action="store_true", help="greedy decoding (default: sampling)")
    p.add_argument("--device", default="cpu", help="(default: %(default)s)")
    p.add_argument("--out", required=True, help="output .safetensors file (required)")
    p.set_defaults(fn=cmd_tts_dump)


def _add_speech(sub: argparse._SubParsersAction) -> None:
    """`ask` (the demo's one-shot question, streamed) and `latency` (the same stages, timed over a set)."""
    p = sub.add_parser("ask", help="answer one question about an image / video / spoken clip, streamed (and spoken)")
    p.add_argument("--model", required=True, help="checkpoint directory, or builtin:tiny")
    p.add_argument("--image", nargs="+")
    p.add_argument("--video")
    p.add_argument("--audio", help="a spoken question (any format PyAV decodes)")
    p.add_argument("--question", default="")
    p.add_argument("--max-tiles", type=int, default=12, help="image tiles (1: the low-latency setting)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16", "auto"], default="auto")
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--speak", metavar="OUT.wav", help="also speak the answer (24 kHz WAV)")
    p.add_argument("--speech-policy", choices=["reference", "server", "fast", "fast-nograph"], default="reference")
    p.add_argument("--seed", type=int, default=0, help="speech-decoder sampling seed")
    p.add_argument("--json", action="store_true", help="print one JSON record instead of the stream")

    def run_ask(args: argparse.Namespace) -> None:
        from vita_eval.speech.ask import ask_command

        ask_command(args)

    p.set_defaults(fn=run_ask)

    p = sub.add_parser("latency", help="time spoken questions (with and without an image) on the streaming path")
    p.add_argument("--model", required=True, help="checkpoint directory with vita_tts_ckpt/, or builtin:tiny")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16", "auto"], default="auto")
    p.add_argument("--requests", type=int, default=10, help="timed requests per scenario and policy")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--question-seconds", type=float, default=5.0)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--codes-per-token", type=int, default=10,
                   help="speech length per text token (random weights never stop by themselves)")
    p.add_argument("--policies", nargs="+", default=["reference", "server", "fast"],
                   choices=["reference", "server", "fast", "fast-nograph"])
    p.add_argument("--scenarios", nargs="+", default=["speech", "speech+image6", "speech+image1"])
    p.add_argument("--out", default="outputs/latency")

    def run_latency(args: argparse.Namespace) -> None:
        from vita_eval.speech.latency import latency_command

        latency_command(args)

    p.set_defaults(fn=run_latency)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vita-eval", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level (default: warnings only)")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_score, _add_misc, _add_model, _add_speech, _add_bench):
        add(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from vita_eval.registry import RegistryError
    from vita_eval.types import SuiteError

    return ConfigError, RegistryError, SuiteError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    fn: Callable[[argparse.Namespace], int] = args.fn
    try:
        return fn(args)
    except KeyboardInterrupt:
        print("\ninterrupted: every finished sample is saved; re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _user_errors() as exc:
        print(f"vita-eval {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
