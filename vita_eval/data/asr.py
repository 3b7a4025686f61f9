"""ASR suites from their distributed layouts: LibriSpeech, AISHELL-1, WenetSpeech, JSONL manifests.

Each loader returns a table with `index` (utterance id), `answer` (reference text exactly
as distributed: normalisation is the scorer's job), `language` (`en`|`zh`) and `set`
(the suite name); `fields` add `audio_path`, `offset_s`, `duration_s`. Audio is decoded
lazily by `vita15.audio_features.load_audio`, imported on first use so that building a
table does not import torch.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vita_eval.data.checksums import file_md5
from vita_eval.registry import register
from vita_eval.types import Media, Sample, SampleError, SuiteData, SuiteError

LANGUAGES = ("en", "zh")
AISHELL_TRANSCRIPT = "aishell_transcript_v0.8.txt"


@dataclass(frozen=True)
class Utterance:
    uid: str
    text: str
    language: str
    audio: Path
    offset_s: float = 0.0
    duration_s: float | None = None


def _audio_loader(utt: Utterance) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from vita15.audio_features import AudioError, load_audio

        try:
            return load_audio(utt.audio, utt.offset_s, utt.duration_s)
        except AudioError as exc:
            raise SampleError(f"utterance {utt.uid}: {exc}") from exc

    return load


def build_suite(
    utterances: Iterable[Utterance], *, suite: str, origin: Path, files: Iterable[Path], problems: list[dict[str, str]]
) -> SuiteData:
    """SuiteData for `utterances`; `origin` names the data in errors, `files` are md5-recorded."""
    utts = list(utterances)
    if not utts:
        raise SuiteError(f"{origin}: no utterances found for suite {suite}")
    uids = pd.Series([u.uid for u in utts])
    dupes = sorted(set(uids[uids.duplicated()]))
    if dupes:
        raise SuiteError(f"{origin}: duplicate utterance id(s) {dupes[:10]}")
    table = pd.DataFrame({
        "index": uids.tolist(), "answer": [u.text for u in utts],
        "language": [u.language for u in utts], "set": suite,
    })
    samples = []
    for fields, utt in zip(table.to_dict(orient="records"), utts):
        fields.update(audio_path=str(utt.audio), offset_s=utt.offset_s, duration_s=utt.duration_s)
        source = f"{utt.audio}" if utt.duration_s is None else f"{utt.audio} [{utt.offset_s}s +{utt.duration_s}s]"
        samples.append(Sample(suite=suite, uid=utt.uid, fields=fields, audio=Media("audio", source, _audio_loader(utt))))
    return SuiteData(table=table, samples=samples, files={str(f): file_md5(f) for f in files}, problems=problems)


def _id_text_lines(path: Path) -> Iterable[tuple[int, str, str]]:
    """(line number, id, text) of a Kaldi-style `<id> <text>` transcript file."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            uid, _, text = line.strip().partition(" ")
            if uid:
                yield number, uid, text.strip()


@register("loader", "librispeech")
def load_librispeech(root: Path, *, suite: str) -> SuiteData:
    """One LibriSpeech set (e.g. `LibriSpeech/test-other`): `<spk>/<chapter>/<spk>-<chapter>.trans.txt`
    with `<utt-id>.flac` beside it. A missing flac fails its own sample when loaded."""
    root = Path(root)
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise SuiteError(f"{root}: no LibriSpeech *.trans.txt files")
    utts, problems = [], []
    for trans in transcripts:
        for number, uid, text in _id_text_lines(trans):
            if not text:
                problems.append({"uid": uid, "reason": f"{trans} line {number}: empty transcript"})
                continue
            utts.append(Utterance(uid, text, "en", trans.parent / f"{uid}.flac"))
    return build_suite(utts, suite=suite, origin=root, files=transcripts, problems=problems)


@register("loader", "aishell")
def load_aishell(root: Path, *, suite: str) -> SuiteData:
    """AISHELL-1 test: `wav/test/<spk>/*.wav` (at any depth under `root`) with the ids of
    `transcript/aishell_transcript_v0.8.txt`; as in the standard 7,176-utterance test set,
    only wavs that have a transcript line are kept."""
    root = Path(root)
    transcript = next(iter(sorted(root.rglob(AISHELL_TRANSCRIPT))), None)
    if transcript is None:
        raise SuiteError(f"{root}: {AISHELL_TRANSCRIPT} not found")
    texts = {uid: text for _, uid, text in _id_text_lines(transcript)}
    wavs = {p.stem: p for p in sorted(root.rglob("*.wav")) if p.parent.parent.name == "test"}
    if not wavs:
        raise SuiteError(f"{root}: no wav files under a test/<speaker>/ folder")
    utts = [Utterance(uid, texts[uid], "zh", wavs[uid]) for uid in sorted(wavs) if uid in texts]
    return build_suite(utts, suite=suite, origin=root, files=[transcript], problems=[])


def _wenet_segments(meta: dict, subset: str, root: Path, path: Path) -> Iterable[Utterance]:
    """The segments of `subset`, cut from their long opus files by begin/end time."""
    for a, audio in enumerate(meta["audios"]):
        for s, seg in enumerate(audio.get("segments", [])):
            if subset not in seg.get("subsets", []):
                continue
            try:
                begin, end = float(seg["begin_time"]), float(seg["end_time"])
                yield Utterance(seg["sid"], seg["text"], "zh", root / audio["path"], begin, end - begin)
            except (KeyError, TypeError, ValueError) as exc:
                raise SuiteError(f"{path}: audios[{a}].segments[{s}]: bad segment ({type(exc).__name__}: {exc})") from exc


@register("loader", "wenetspeech")
def load_wenetspeech(root: Path, *, suite: str, subset: str = "TEST_NET") -> SuiteData:
    """WenetSpeech `TEST_NET` or `TEST_MEETING` from `WenetSpeech.json` and the opus files it names."""
    root = Path(root)
    path = root / "WenetSpeech.json"
    if not path.is_file():
        raise SuiteError(f"{path}: not found")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        utts = list(_wenet_segments(meta, subset, root, path))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SuiteError(f"{path}: not a WenetSpeech metadata file ({type(exc).__name__}: {exc})") from exc
    return build_suite(utts, suite=suite, origin=path, files=[path], problems=[])


def _manifest_utterance(entry: object, number: int, folder: Path, language: str | None) -> Utterance:
    """One manifest line as an Utterance; ValueError says what is wrong with it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("audio"), str) or not isinstance(entry.get("text"), str):
        raise ValueError("needs string fields 'audio' and 'text'")
    lang = entry.get("language", language)
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r} is not one of {LANGUAGES}")
    duration = entry.get("duration")
    return Utterance(
        uid=str(entry.get("id", number)), text=entry["text"], language=lang, audio=folder / entry["audio"],
        offset_s=float(entry.get("offset", 0.0)), duration_s=None if duration is None else float(duration),
    )


@register("loader", "manifest")
def load_manifest(path: Path, *, suite: str, language: str | None = None) -> SuiteData:
    """A JSONL manifest: per line `audio` (relative to the manifest's folder), `text`, and optional
    `offset`, `duration` (s), `language` (`en`|`zh`, else `language` here), `id` (else the line number).
    Bad lines become `problems` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: not found")
    utts, problems = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                utts.append(_manifest_utterance(json.loads(line), number, path.parent, language))
            except (ValueError, TypeError) as exc:
                problems.append({"uid": f"line {number}", "reason": f"{path} line {number}: {exc}"})
    return build_suite(utts, suite=suite, origin=path, files=[path], problems=problems)
