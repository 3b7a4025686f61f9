"""`vita-eval ask`: the demo's one-shot question, answered in text (streamed) and optionally speech.

Everything a user can get wrong is checked before the model loads: files that are missing or do not
decode, a question with nothing in it, `--speak` on a checkpoint without `vita_tts_ckpt/`. The
prompt comes from `vita15.demo.load_query` + `prepare_request`, the code `model-dump` uses.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vita_eval import fsio
from vita_eval.models.vita import pick_device, pick_dtype, resolve_model_path


class AskError(SystemExit):
    """A user mistake, reported as one line before anything heavy runs."""

    def __init__(self, message: str) -> None:
        super().__init__(f"vita-eval ask: {message}")


@dataclass
class AskInputs:
    model_dir: Path
    query: Any  # vita15.demo.DemoQuery
    speak: Path | None


def _check_file(path: str | None, what: str) -> None:
    if path is None:
        return
    p = Path(path)
    if not p.is_file():
        raise AskError(f"{what} file not found: {p}")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise AskError(f"{what} file unreadable: {p} ({exc.strerror or exc})") from exc


def has_tts(model_dir: Path) -> bool:
    from vita15.checkpoint import TTS_FOLDER

    folder = model_dir / TTS_FOLDER
    return all((folder / part / "model.json").is_file() for part in ("decoder", "codec"))


def check_inputs(model: str, *, images: Sequence[str] = (), video: str | None = None, audio: str | None = None,
                 question: str = "", max_tiles: int = 12, speak: str | None = None) -> AskInputs:
    """Validate and decode everything the question needs; raises AskError (one line) on the first problem."""
    if not (images or video or audio or question.strip()):
        raise AskError("nothing to ask: give --question and/or --image / --video / --audio")
    if max_tiles < 1:
        raise AskError(f"--max-tiles must be >= 1, got {max_tiles}")
    try:
        model_dir = resolve_model_path(model)
    except FileNotFoundError as exc:
        raise AskError(str(exc)) from exc
    for path in images:
        _check_file(path, "image")
    _check_file(video, "video")
    _check_file(audio, "audio")
    if speak is not None and not has_tts(model_dir):
        raise AskError(f"{model_dir}: no vita_tts_ckpt/ (speech decoder + codec), so --speak cannot be honoured")
    from vita15.demo import load_query

    try:
        query = load_query(question, images, video, audio, max_tiles)
    except (ValueError, OSError) as exc:  # ImageError / AudioError / VideoError name the file
        raise AskError(str(exc).splitlines()[0]) from exc
    return AskInputs(model_dir, query, Path(speak) if speak else None)


def timing_line(record: dict[str, Any]) -> str:
    """`first text token 0.12 s · first audio chunk 0.45 s · total 1.23 s (...)`."""
    t = record["timings"]
    events = t["events"]
    parts = [f"first text token {events['first_text_token']:.3f} s"]
    if "first_audio" in events:
        parts.append(f"first audio chunk {events['first_audio']:.3f} s")
    parts.append(f"total {events['done']:.3f} s")
    extra = f"prompt {record['n_prompt_tokens']} tokens, {record['n_new_tokens']} new"
    if record.get("wav"):
        extra += f"; audio {t['audio_s']:.2f} s in {t['n_chunks']} chunks, RTF {t['rtf']}"
    return " · ".join(parts) + f" ({extra})"


def ask(inputs: AskInputs, *, device: str = "auto", dtype: str = "auto", max_new_tokens: int = 1024,
        policy: str = "reference", seed: int = 0, stream: bool = True) -> dict[str, Any]:
    """Load, answer (streaming the text to stdout when `stream`), write the WAV; returns the JSON record."""
    from vita15.inference import VitaInference
    from vita15.pipeline import Speaker, StreamingAnswerer, get_policy

    device = pick_device(device)
    dtype = pick_dtype(dtype, device)
    engine = VitaInference.from_pretrained(inputs.model_dir, device=device, dtype=dtype)
    speech_policy = get_policy(policy)
    speaker = Speaker.load(inputs.model_dir, engine, speech_policy) if inputs.speak else None

    def show(delta: str) -> None:
        sys.stdout.write(delta)
        sys.stdout.flush()

    result = StreamingAnswerer(engine, speaker).answer(inputs.query, max_new_tokens=max_new_tokens, seed=seed,
                                                       on_text=show if stream else None)
    if stream:
        sys.stdout.write("\n")
    wav = None
    if inputs.speak is not None:
        from vita15.tts.synthesize import write_wav

        with fsio.atomic_path(inputs.speak) as tmp:
            write_wav(tmp, result.wave, result.timings.sample_rate)
        wav = str(inputs.speak)
    return {
        "model": str(inputs.model_dir), "device": device, "dtype": dtype, "max_tiles": inputs.query.max_tiles,
        "speech_policy": speech_policy.name if speaker else None,
        "prompt": result.prompt, "raw": result.raw, "answer": result.answer,
        "n_prompt_tokens": result.n_prompt_tokens, "n_new_tokens": result.n_new_tokens,
        "segments": result.segments, "timings": result.timings.as_dict(), "wav": wav,
        "sample_rate": result.timings.sample_rate if wav else None,
        "n_samples": int(len(result.wave)) if wav else None,
    }


def ask_command(args: Any) -> None:
    """The CLI entry: check, answer, print the stream and the timing line (or one JSON record)."""
    inputs = check_inputs(args.model, images=args.image or (), video=args.video, audio=args.audio,
                          question=args.question or "", max_tiles=args.max_tiles, speak=args.speak)
    record = ask(inputs, device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
                 policy=args.speech_policy, seed=args.seed, stream=not args.json)
    if args.json:
        print(json.dumps(record, ensure_ascii=False))
        return
    print(timing_line(record))
    if record["wav"]:
        print(f"wrote {record['wav']} ({record['sample_rate']} Hz, {record['n_samples']} samples)")
