"""`vita-eval latency`: spoken questions answered one at a time on the streaming path, timed per stage.

Each request is what a user does: a spoken question (the bundled espeak sentences, joined and cut to
`question_s` seconds), with or without an image, handed over complete; the clock starts there (the
end of the question audio). Per request: time to the first text token, to the first audio chunk
leaving the codec, to the last chunk, the audio's real-time factor, playback stalls, and every
stage's time (in total and up to the first chunk). Requests of one scenario x policy run after an
untimed warm-up; records are appended (and fsynced) as they finish, so a killed run keeps its data.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vita_eval import fsio
from vita_eval.models.vita import pick_device, pick_dtype, resolve_model_path
from vita_eval.suites import BENCHMARKS_DIR

SPOKEN = BENCHMARKS_DIR / "samples" / "LibriSpeech" / "test-clean" / "9001" / "100"
PERCENTILES = (50, 90, 99)
EVENTS = ("first_text_token", "first_text_chunk", "first_audio", "last_audio", "done")


@dataclass(frozen=True)
class Scenario:
    name: str
    max_tiles: int | None  # None: no image

    @property
    def image(self) -> bool:
        return self.max_tiles is not None


SCENARIOS: dict[str, Scenario] = {
    "speech": Scenario("speech", None),
    "speech+image6": Scenario("speech+image6", 6),  # 3x2 grid + thumbnail: 7 blocks of 256 tokens
    "speech+image1": Scenario("speech+image1", 1),  # --max-tiles 1, the low-latency setting
}


def spoken_questions(n: int, seconds: float) -> list[np.ndarray]:
    """`n` different `seconds`-long spoken questions from the bundled sentences (16 kHz float32)."""
    from vita15.audio_features import load_audio

    pool = np.concatenate([load_audio(p) for p in sorted(SPOKEN.glob("*.flac"))])
    length = int(seconds * 16000)
    while len(pool) < length * 2:
        pool = np.concatenate([pool, pool])
    step = max(1, (len(pool) - length) // max(n, 1))
    return [pool[i * step: i * step + length].copy() for i in range(n)]


def scene_image():
    """A 3:2 synthetic scene (1344x896): 6 tiles + thumbnail at max_tiles 6, one tile at max_tiles 1."""
    from vita15.synthetic import draw_scene

    return draw_scene(7, size=448).image.resize((1344, 896))


def request_record(scenario: Scenario, policy: str, index: int, question_s: float, answer: Any) -> dict[str, Any]:
    """One line of latency.jsonl; `ordered` says the events and chunks came in streaming order."""
    t = answer.timings
    events = {k: t.events.get(k) for k in EVENTS}
    chunk_times = [c.t for c in t.chunks]
    present = [events[k] for k in EVENTS if events[k] is not None]
    ordered = present == sorted(present) and chunk_times == sorted(chunk_times) and bool(chunk_times)
    to_first = dict(t.at_first_audio)
    if "first_audio" in t.events:  # what no stage accounts for: bookkeeping, text detokenisation, quiet cuts
        to_first["other"] = max(0.0, t.events["first_audio"] - sum(to_first.values()))
    return {
        "scenario": scenario.name, "policy": policy, "request": index, "question_s": question_s,
        "max_tiles": scenario.max_tiles, "n_prompt_tokens": answer.n_prompt_tokens,
        "n_new_tokens": answer.n_new_tokens, **{f"{k}_s": v for k, v in events.items()},
        "audio_s": round(t.audio_s, 4), "rtf": t.rtf, "stall_s": round(t.stall_s, 4), "n_chunks": len(t.chunks),
        "n_codes": t.counts.get("codes", 0), "ordered": ordered, "stages": t.stages,
        "stages_to_first_audio": to_first, "chunk_times": chunk_times,
        "chunk_samples": [c.n_samples for c in t.chunks],
    }


class _Appender:
    """latency.jsonl: one fsynced line per finished request."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {f"p{p}": None for p in PERCENTILES}
    return {f"p{p}": float(np.percentile(finite, p)) for p in PERCENTILES}


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scenario x policy: percentiles of the waits, mean stage times (whole request, to first audio)."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        cells.setdefault((r["scenario"], r["policy"]), []).append(r)
    rows = []
    for (scenario, policy), group in cells.items():
        stages = sorted({k for r in group for k in r["stages"]})
        rows.append({
            "scenario": scenario, "policy": policy, "n": len(group), "all_ordered": all(r["ordered"] for r in group),
            "n_prompt_tokens": int(np.median([r["n_prompt_tokens"] for r in group])),
            **{f"{k}_s": percentiles([r[f"{k}_s"] for r in group]) for k in ("first_text_token", "first_audio",
                                                                                "last_audio")},
            "rtf": percentiles([r["rtf"] for r in group]), "audio_s_mean": float(np.mean([r["audio_s"] for r in group])),
            "stall_s_mean": float(np.mean([r["stall_s"] for r in group])),
            "stages_mean": {k: float(np.mean([r["stages"].get(k, 0.0) for r in group])) for k in stages},
            "to_first_audio_mean": {k: float(np.mean([r["stages_to_first_audio"].get(k, 0.0) for r in group]))
                                    for k in [*stages, "other"]},
        })
    return rows


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{1000 * value:.0f}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The latency tables: waits (ms, p50/p90/p99) and where the time to the first chunk went."""
    lines = [f"# Speech-interaction latency: {meta['model']}", "",
             f"Command: `{meta['command']}`", "",
             f"Device {meta['device']} ({meta['device_name']}), {meta['dtype']}, torch {meta['torch']}; "
             f"{meta['requests']} timed requests per row after {meta['warmup']} warm-up; spoken questions of "
             f"{meta['question_s']} s; answers capped at {meta['max_new_tokens']} tokens, speech at "
             f"{meta['codes_per_token']} codes (x 25 ms) per text token.", "",
             "| scenario | policy | prompt tokens | first text token p50/p90/p99 (ms) | first audio chunk p50/p90/p99 "
             "(ms) | last chunk p50 (ms) | audio RTF p50 | stalls (s, mean) | in order |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        trio = lambda k: "/".join(_ms(r[k][f"p{p}"]) for p in PERCENTILES)  # noqa: E731
        rtf = r["rtf"]["p50"]
        lines.append(f"| {r['scenario']} | {r['policy']} | {r['n_prompt_tokens']} | {trio('first_text_token_s')} | "
                     f"{trio('first_audio_s')} | {_ms(r['last_audio_s']['p50'])} | "
                     f"{'—' if rtf is None else f'{rtf:.3f}'} | {r['stall_s_mean']:.2f} | "
                     f"{'yes' if r['all_ordered'] else 'NO'} |")
    if meta.get("speech_decoder"):
        lines += ["", "Speech-decoder AR loop: " + ", ".join(f"{k}: {v}" for k, v in meta["speech_decoder"].items())]
    stages = [s for s in ("prepare", "image_encoder", "audio_encoder", "prefill", "first_text_chunk", "decode",
                          "speech_decoder", "codec") if any(s in r["to_first_audio_mean"] for r in rows)]
    lines += ["", "Where the wait for the first audio chunk goes (mean ms per stage, up to that chunk):", "",
              "| scenario | policy | " + " | ".join(stages) + " | other | = first audio (mean) |",
              "|---|---|" + "---|" * (len(stages) + 2)]
    for r in rows:
        part = r["to_first_audio_mean"]
        lines.append(f"| {r['scenario']} | {r['policy']} | " + " | ".join(_ms(part.get(s)) for s in [*stages, "other"])
                     + f" | {_ms(sum(part.values()))} |")
    lines += ["", "Whole-request stage totals (mean ms):", "",
              "| scenario | policy | " + " | ".join(stages) + " |", "|---|---|" + "---|" * len(stages)]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['policy']} | "
                     + " | ".join(_ms(r["stages_mean"].get(s)) for s in stages) + " |")
    return "\n".join(lines) + "\n"


def _device_name(device: str) -> str:
    import platform

    import torch

    return torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu"


def run_latency(model: str, *, device: str = "auto", dtype: str = "auto", requests: int = 10, warmup: int = 1,
                question_s: float = 5.0, max_new_tokens: int = 32, policies: Sequence[str] = ("reference", "fast"),
                codes_per_token: int | None = 10,
                scenarios: Sequence[str] = tuple(SCENARIOS), out: Path = Path("outputs/latency"),
                command: str = "") -> list[dict[str, Any]]:
    """Run the matrix, writing latency.jsonl as it goes, then summary.json and latency.md; returns the summary."""
    import torch

    from vita15.demo import DemoQuery
    from vita15.inference import VitaInference
    from vita15.pipeline import Speaker, StreamingAnswerer, get_policy

    for name in scenarios:
        if name not in SCENARIOS:
            raise SystemExit(f"vita-eval latency: unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    # random weights never emit EOS: speech length is set per text token (10 codes = 0.25 s, about natural speech)
    specs = [replace(get_policy(p), max_codes_per_token=codes_per_token or get_policy(p).max_codes_per_token)
             for p in policies]
    path = resolve_model_path(model)
    device = pick_device(device)
    dtype = pick_dtype(dtype, device)
    started = time.perf_counter()
    engine = VitaInference.from_pretrained(path, device=device, dtype=dtype)
    questions = spoken_questions(requests + warmup, question_s)
    image = scene_image()
    writer = _Appender(Path(out) / "latency.jsonl")
    records: list[dict[str, Any]] = []
    decoder_modes: dict[str, str] = {}
    load_s = time.perf_counter() - started
    try:
        for policy in specs:
            speaker = Speaker.load(path, engine, policy)
            answerer = StreamingAnswerer(engine, speaker)
            for scenario in (SCENARIOS[s] for s in scenarios):
                for i, wave in enumerate(questions):
                    query = DemoQuery(text="", images=[image] if scenario.image else [], audio=wave,
                                      max_tiles=scenario.max_tiles or 1, uid=f"{scenario.name}-{i}")
                    result = answerer.answer(query, max_new_tokens=max_new_tokens, seed=i)
                    if i < warmup:
                        continue
                    record = request_record(scenario, policy.name, i - warmup, question_s, result)
                    records.append(record)
                    writer.write(record)
                decoder_modes[policy.name] = getattr(speaker.decoder, "mode", "reference")
                print(f"{policy.name:10s} {scenario.name:14s} first audio p50 "
                      f"{_ms(percentiles([r['first_audio_s'] for r in records if r['policy'] == policy.name and r['scenario'] == scenario.name])['p50'])} ms",  # noqa: E501
                      file=sys.stderr, flush=True)
    finally:
        writer.close()
    rows = summarize(records)
    meta = {"model": str(path), "command": command, "device": device, "device_name": _device_name(device),
            "dtype": dtype, "torch": torch.__version__, "requests": requests, "warmup": warmup,
            "question_s": question_s, "max_new_tokens": max_new_tokens, "load_s": round(load_s, 2),
            "codes_per_token": specs[0].max_codes_per_token if specs else None,
            "policies": {p.name: p.as_dict() for p in specs}, "speech_decoder": decoder_modes,
            "wall_s": round(time.perf_counter() - started, 2)}
    fsio.write_json(Path(out) / "summary.json", {"meta": meta, "rows": rows})
    fsio.write_text(Path(out) / "latency.md", markdown(rows, meta))
    return rows


def latency_command(args: Any) -> None:
    from vita_eval.speech.ask import has_tts

    path = resolve_model_path(args.model)
    if not has_tts(path):
        raise SystemExit(f"vita-eval latency: {path}: no vita_tts_ckpt/ (speech decoder + codec) to time")
    command = shlex.join(["vita-eval", "latency", "--model", args.model, "--device", args.device, "--dtype", args.dtype,
                          "--requests", str(args.requests), "--warmup", str(args.warmup), "--question-seconds",
                          str(args.question_seconds), "--max-new-tokens", str(args.max_new_tokens),
                          "--codes-per-token", str(args.codes_per_token),
                          "--policies", *args.policies, "--scenarios", *args.scenarios, "--out", str(args.out)])
    rows = run_latency(args.model, device=args.device, dtype=args.dtype, requests=args.requests, warmup=args.warmup,
                       question_s=args.question_seconds, max_new_tokens=args.max_new_tokens, policies=args.policies,
                       codes_per_token=args.codes_per_token,
                       scenarios=args.scenarios, out=Path(args.out), command=command)
    print((Path(args.out) / "latency.md").read_text(encoding="utf-8"))
    if not all(r["all_ordered"] for r in rows):
        raise SystemExit("vita-eval latency: some requests streamed out of order (see latency.jsonl)")
