"""The `vita-eval` command line: run, score, data, ls, judge, report, model-init, model-dump, tts-dump, ask, latency.

Each subcommand parses its flags and calls one function in the package; no logic
lives here beyond turning flags into arguments.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from vita_eval.config import DEFAULT_CONFIG, parse_set, resolve


def _pairs(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"expected SUITE=PATH, got {item!r}")
        out[key] = value
    return out


def cmd_run(args: argparse.Namespace) -> None:
    from vita_eval.runner.run import run

    # the embedded sample run, unless a config or an explicit suite list is given
    yaml_path = args.config or (None if args.suites else DEFAULT_CONFIG)
    cli: dict[str, Any] = {
        "model": args.model, "model_name": args.model_name, "device": args.device, "dtype": args.dtype,
        "suites": args.suites, "data_root": args.data_root, "data": _pairs(args.data) or None,
        "profile": args.profile, "asr_normalizer": args.asr_normalizer, "judge": args.judge, "judge_base_url": args.judge_base_url, "out": args.out,
        "limit": args.limit, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "report": False if args.no_report else None, **parse_set(args.set or []),
    }
    cfg = resolve(yaml_path, cli)
    if not cfg.suites:
        raise SystemExit("no suites given (use --suites or a --config that lists them)")
    out = run(cfg)
    print(f"run directory: {out}")
    if (out / "report.md").exists():
        print(f"report: {out / 'report.md'}")


def cmd_score(args: argparse.Namespace) -> None:
    from vita_eval.runner.rescore import rescore
    from vita_eval.types import SuiteError

    data = Path(args.data) if args.data else None
    try:
        scores = rescore(args.suite, data, Path(args.predictions), profile=args.profile, judge=args.judge,
                         judge_base_url=args.judge_base_url, out=Path(args.out), asr_normalizer=args.asr_normalizer,
                         judge_cache=args.judge_cache)
    except SuiteError as exc:
        raise SystemExit(f"vita-eval score: {exc}") from exc
    shown = ("suite", "profile", "metrics", "printed", "n", "n_failed")
    print(json.dumps({k: scores[k] for k in shown if k in scores}, indent=2, ensure_ascii=False, default=str))


def cmd_data(args: argparse.Namespace) -> None:
    from vita_eval.data.manage import data_command

    data_command(args.action, args.suites, Path(args.data_root) if args.data_root else None, args.profile)


LS_KINDS = {"loaders": "loader", "presets": "preset", "scorers": "scorer", "judges": "judge", "models": "model"}


def cmd_ls(args: argparse.Namespace) -> None:
    from vita_eval import registry
    from vita_eval.scorers.profiles import PROFILES
    from vita_eval.suites import load_registry

    if args.what in ("suites", "all"):
        for name, spec in sorted(load_registry().items()):
            print(f"{name:28s} {spec.scorer:10s} judge={spec.judge:8s} preset={spec.preset:20s} {spec.description}")
    if args.what in ("profiles", "all"):
        for name in PROFILES:
            print(f"profile {name}")
    for plural, kind in LS_KINDS.items():
        if args.what in (plural, "all"):
            for name, target in registry.names(kind).items():
                print(f"{kind:7s} {name:22s} {registry.describe(target)}")


def cmd_report(args: argparse.Namespace) -> None:
    from vita_eval.reports.compare import write_report

    path = write_report([Path(p) for p in args.runs], out=Path(args.out),
                        baseline=Path(args.baseline) if args.baseline else None, html=args.html, n_boot=args.n_boot)
    print(f"report: {path}")


def cmd_judge_serve(args: argparse.Namespace) -> None:
    from vita_eval.judges.server import serve

    serve(args.model, host=args.host, port=args.port)


def cmd_model_init(args: argparse.Namespace) -> None:
    import torch

    from vita15.checkpoint import write_checkpoint
    from vita15.configuration_vita import tiny_config, vita15_config

    config = tiny_config() if args.size == "tiny" else vita15_config()
    path = write_checkpoint(Path(args.out), config, seed=args.seed, dtype=torch.bfloat16 if args.size == "full"
                            else torch.float32, with_weights=not args.random_on_load, with_tts=args.with_tts)
    print(f"checkpoint: {path}")


def cmd_model_dump(args: argparse.Namespace) -> None:
    from vita15.dump import model_dump

    model_dump(args.model, args.prompt, images=args.image or (), audio=args.audio, video=args.video,
               max_tiles=args.max_tiles, dtype=args.dtype, device=args.device, max_new_tokens=args.max_new_tokens,
               out=args.out)
    print(f"wrote {args.out}")


def cmd_tts_dump(args: argparse.Namespace) -> None:
    from vita15.tts.dump import tts_dump

    tts_dump(args.model, args.text, greedy=args.greedy, out=args.out, device=args.device)
    print(f"wrote {args.out}")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="model x suites -> predictions -> scores -> report (resumable)")
    p.add_argument("--config", type=Path, help="YAML run config (default: the embedded sample run)")
    p.add_argument("--model", help="checkpoint directory, or builtin:tiny")
    p.add_argument("--model-name")
    p.add_argument("--suites", nargs="+")
    p.add_argument("--data-root", help="folder of the official data files (default $LMUData or ~/LMUData)")
    p.add_argument("--data", nargs="+", metavar="SUITE=PATH", help="per-suite data file or folder")
    p.add_argument("--profile")
    p.add_argument("--asr-normalizer", choices=["wenet", "whisper"])
    p.add_argument("--judge", help="none | default (the profile's VLMEvalKit judges) | an OpenAI-compatible model "
                                   "name | local:/path/to/qwen")
    p.add_argument("--judge-base-url")
    p.add_argument("--device")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16", "auto"])
    p.add_argument("--out", help="run directory (re-running with the same one resumes)")
    p.add_argument("--limit", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="any config key, YAML-parsed")
    p.add_argument("--no-report", action="store_true")
    p.set_defaults(fn=cmd_run)


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a prediction file (ours or VLMEvalKit's .xlsx/.tsv)")
    p.add_argument("--suite", required=True)
    p.add_argument("--data", help="the suite's data file or folder (optional when the prediction .xlsx/.tsv "
                                   "carries every dataset column the scorer reads, as VLMEvalKit's files do)")
    p.add_argument("--predictions", required=True)
    p.add_argument("--profile", default="vlmevalkit-2026.08")
    p.add_argument("--judge", default="none")
    p.add_argument("--judge-base-url")
    p.add_argument("--asr-normalizer", choices=["wenet", "whisper"])
    p.add_argument("--judge-cache", help="judge cache folder (default ~/.cache/vita-eval/judge)")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_score)


def _add_misc(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, fetch or md5-verify suite data")
    p.add_argument("action", choices=["list", "fetch", "verify"])
    p.add_argument("suites", nargs="*")
    p.add_argument("--data-root")
    p.add_argument("--profile", default="vlmevalkit-2026.08")
    p.set_defaults(fn=cmd_data)

    p = sub.add_parser("ls", help="suites, profiles and every plug-in kind (loaders, presets, scorers, judges, models)")
    p.add_argument("what", nargs="?", default="all", choices=["all", "suites", "profiles", *LS_KINDS])
    p.set_defaults(fn=cmd_ls)

    p = sub.add_parser("report", help="compare run directories in Markdown + PNG")
    p.add_argument("runs", nargs="+")
    p.add_argument("--baseline")
    p.add_argument("--out", required=True)
    p.add_argument("--html", action="store_true", help="also write one self-contained report.html")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for CIs and paired tests")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("judge", help="judge utilities")
    jsub = p.add_subparsers(dest="judge_cmd", required=True)
    s = jsub.add_parser("serve", help="serve a local Qwen checkpoint as an OpenAI-compatible endpoint")
    s.add_argument("--model", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=23333)
    s.set_defaults(fn=cmd_judge_serve)


def _add_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model-init", help="write an official-layout VITA-1.5 checkpoint from a seed")
    p.add_argument("--size", choices=["tiny", "full"], default="tiny")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-on-load", action="store_true",
                   help="write no weights: the loader builds them from the seed on the target device")
    p.add_argument("--with-tts", action="store_true")
    p.set_defaults(fn=cmd_model_init)

    p = sub.add_parser("model-dump", help="write every intermediate tensor for one prompt (safetensors)")
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", default="")
    p.add_argument("--image", nargs="+")
    p.add_argument("--audio")
    p.add_argument("--video")
    p.add_argument("--max-tiles", type=int, default=12)
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_model_dump)

    p = sub.add_parser("tts-dump", help="text -> speech-decoder tensors, codec codes and waveform (safetensors)")
    p.add_argument("--model", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True)
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
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_score, _add_misc, _add_model, _add_speech):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    fn: Callable[[argparse.Namespace], None] = args.fn
    fn(args)


if __name__ == "__main__":
    main(sys.argv[1:])
