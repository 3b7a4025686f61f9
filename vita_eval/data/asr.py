"""ASR suites from their distributed layouts: LibriSpeech, AISHELL-1, WenetSpeech, JSONL manifests.

Each loader returns a table with `index` (utterance id), `answer` (reference text exactly
as distributed: normalisation is the scorer's job), `language` (`en`|`zh`) and `set`
(the suite name); `fields` add `audio_path`, `offset_s`, `duration_s`. Audio is decoded
lazily by `vita15.audio_features.load_audio`, imported on first use so that building a
table does not import torch.

Bad input stays with its utterance: a transcript or manifest line that is not UTF-8 or
has no text is a problem naming the file and line; an audio path outside the suite's
root (`..`, absolute, a symlink out) is refused (`vita_eval.data.paths`); audio longer than
the Whale encoder takes is refused from the container header before anything is decoded;
and a segment that runs past the end of its audio fails instead of being scored short.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from vita_eval.data.checksums import file_md5
from vita_eval.data.paths import inside_root
from vita_eval.registry import register
from vita_eval.types import Media, Sample, SampleError, SuiteData, SuiteError

LANGUAGES = ("en", "zh")
AISHELL_TRANSCRIPT = "aishell_transcript_v0.8.txt"
SEGMENT_TOLERANCE_S = 0.05  # a segment may end this much past its audio (end-time rounding) and still count


@dataclass(frozen=True)
class Utterance:
    uid: str
    text: str
    language: str
    audio: Path
    offset_s: float = 0.0
    duration_s: float | None = None


@dataclass(frozen=True)
class AudioPolicy:
    """Where a suite's audio may live, and how long it may be."""

    root: Path
    allow_outside_root: bool = False


def header_duration(path: Path) -> float | None:
    """Duration in seconds from the container header (no decoding), or None when it does not say."""
    import av

    with av.open(str(path)) as container:
        if container.streams.audio:
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
    return None


def _check_length(utt: Utterance, path: Path) -> float | None:
    """Refuse, before decoding, audio longer than the Whale encoder takes; returns the header duration."""
    from vita15.audio_whale import MAX_AUDIO_SECONDS

    try:
        total = header_duration(path)
    except Exception:  # the decoder below names what is wrong with the file
        return None
    length = utt.duration_s if utt.duration_s is not None else (None if total is None else total - utt.offset_s)
    if length is not None and length > MAX_AUDIO_SECONDS:
        raise SampleError(f"utterance {utt.uid}: {path}: audio too long ({length:.1f} s, from the file header; "
                          f"the Whale encoder takes at most {MAX_AUDIO_SECONDS:.2f} s); not decoded")
    return total


def _check_segment(utt: Utterance, wave: np.ndarray, total: float | None) -> None:
    """A segment asked for `duration_s` must get it: a cut past the end would be scored on a fragment."""
    from vita15.audio_features import SAMPLE_RATE

    if utt.duration_s is None:
        return
    got = len(wave) / SAMPLE_RATE
    if got < utt.duration_s - SEGMENT_TOLERANCE_S:
        known = f"; the audio is {total:.2f} s long" if total is not None else ""
        raise SampleError(f"utterance {utt.uid}: {utt.audio}: segment [{utt.offset_s:g} s, "
                          f"{utt.offset_s + utt.duration_s:g} s] runs past the end of its audio "
                          f"(got {got:.2f} s of {utt.duration_s:g} s{known})")


def _load_audio(utt: Utterance, policy: AudioPolicy) -> np.ndarray:
    """The utterance's samples (a module function: `partial(_load_audio, ...)` pickles, so samples
    can travel to preparation processes)."""
    from vita15.audio_features import AudioError, load_audio

    path = inside_root(utt.audio, [policy.root], allow_outside=policy.allow_outside_root,
                       what=f"utterance {utt.uid}")
    total = _check_length(utt, path) if path.is_file() else None
    try:
        wave = load_audio(path, utt.offset_s, utt.duration_s)
    except AudioError as exc:
        raise SampleError(f"utterance {utt.uid}: {exc}") from exc
    _check_segment(utt, wave, total)
    return wave


def build_suite(
    utterances: Iterable[Utterance], *, suite: str, origin: Path, files: Iterable[Path], problems: list[dict[str, str]],
    policy: AudioPolicy,
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
        media = Media("audio", source, partial(_load_audio, utt, policy))
        samples.append(Sample(suite=suite, uid=utt.uid, fields=fields, audio=media))
    return SuiteData(table=table, samples=samples, files={str(f): file_md5(f) for f in files}, problems=problems)


def _decoded_lines(path: Path) -> Iterable[tuple[int, str | None, bytes]]:
    """(line number, text or None when the line is not UTF-8, raw bytes) of a text file."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8"), raw
            except UnicodeDecodeError:
                yield number, None, raw


def not_utf8(path: Path, number: int, raw: bytes) -> str:
    """The reason for a line that is not UTF-8, naming its first bad byte."""
    try:
        raw.decode("utf-8")
        return f"{path} line {number}: not UTF-8"
    except UnicodeDecodeError as exc:
        return f"{path} line {number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"


def _id_text_lines(path: Path, problems: list[dict[str, str]]) -> Iterable[tuple[int, str, str]]:
    """(line number, id, text) of a Kaldi-style `<id> <text>` transcript file; undecodable lines are problems."""
    for number, line, raw in _decoded_lines(path):
        if line is None:
            uid = raw.strip().partition(b" ")[0].decode("utf-8", "replace") or f"{path.name} line {number}"
            problems.append({"uid": uid, "reason": not_utf8(path, number, raw)})
            continue
        uid, _, text = line.strip().partition(" ")
        if uid:
            yield number, uid, text.strip()


@register("loader", "librispeech")
def load_librispeech(root: Path, *, suite: str, allow_outside_root: bool = False) -> SuiteData:
    """One LibriSpeech set (e.g. `LibriSpeech/test-other`): `<spk>/<chapter>/<spk>-<chapter>.trans.txt`
    with `<utt-id>.flac` beside it. A missing flac fails its own sample when loaded."""
    root = Path(root)
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise SuiteError(f"{root}: no LibriSpeech *.trans.txt files")
    utts: list[Utterance] = []
    problems: list[dict[str, str]] = []
    for trans in transcripts:
        for number, uid, text in _id_text_lines(trans, problems):
            if not text:
                problems.append({"uid": uid, "reason": f"{trans} line {number}: empty transcript"})
                continue
            utts.append(Utterance(uid, text, "en", trans.parent / f"{uid}.flac"))
    return build_suite(utts, suite=suite, origin=root, files=transcripts, problems=problems,
                       policy=AudioPolicy(root, allow_outside_root))


@register("loader", "aishell")
def load_aishell(root: Path, *, suite: str, allow_outside_root: bool = False) -> SuiteData:
    """AISHELL-1 test: `wav/test/<spk>/*.wav` (at any depth under `root`) with the ids of
    `transcript/aishell_transcript_v0.8.txt`; as in the standard 7,176-utterance test set,
    only wavs that have a transcript line are kept."""
    root = Path(root)
    transcript = next(iter(sorted(root.rglob(AISHELL_TRANSCRIPT))), None)
    if transcript is None:
        raise SuiteError(f"{root}: {AISHELL_TRANSCRIPT} not found")
    problems: list[dict[str, str]] = []
    texts = {uid: text for _, uid, text in _id_text_lines(transcript, problems)}
    wavs = {p.stem: p for p in sorted(root.rglob("*.wav")) if p.parent.parent.name == "test"}
    if not wavs:
        raise SuiteError(f"{root}: no wav files under a test/<speaker>/ folder")
    problems = [p for p in problems if p["uid"] in wavs]  # an unreadable line of a wav we do not have
    utts = [Utterance(uid, texts[uid], "zh", wavs[uid]) for uid in sorted(wavs) if uid in texts]
    return build_suite(utts, suite=suite, origin=root, files=[transcript], problems=problems,
                       policy=AudioPolicy(root, allow_outside_root))


def _has_bad_bytes(*values: object) -> bool:
    """Whether a string read with errors="surrogateescape" held bytes that are not UTF-8."""
    return any(isinstance(v, str) and any("\udc80" <= c <= "\udcff" for c in v) for v in values)


def _wenet_segments(meta: dict, subset: str, root: Path, path: Path,
                    problems: list[dict[str, str]]) -> Iterable[Utterance]:
    """The segments of `subset`, cut from their long opus files by begin/end time."""
    for a, audio in enumerate(meta["audios"]):
        for s, seg in enumerate(audio.get("segments", [])):
            if subset not in seg.get("subsets", []):
                continue
            where = f"{path}: audios[{a}].segments[{s}]"
            if _has_bad_bytes(seg.get("sid"), seg.get("text"), audio.get("path")):
                uid = str(seg.get("sid")).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                problems.append({"uid": uid, "reason": f"{where}: text, sid or audio path is not UTF-8"})
                continue
            try:
                begin, end = float(seg["begin_time"]), float(seg["end_time"])
                yield Utterance(seg["sid"], seg["text"], "zh", root / audio["path"], begin, end - begin)
            except (KeyError, TypeError, ValueError) as exc:
                raise SuiteError(f"{where}: bad segment ({type(exc).__name__}: {exc})") from exc


@register("loader", "wenetspeech")
def load_wenetspeech(root: Path, *, suite: str, subset: str = "TEST_NET", allow_outside_root: bool = False) -> SuiteData:
    """WenetSpeech `TEST_NET` or `TEST_MEETING` from `WenetSpeech.json` and the opus files it names.

    Bytes that are not UTF-8 fail only the segments whose fields hold them."""
    root = Path(root)
    path = root / "WenetSpeech.json"
    if not path.is_file():
        raise SuiteError(f"{path}: not found")
    problems: list[dict[str, str]] = []
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            meta = json.load(f)
        utts = list(_wenet_segments(meta, subset, root, path, problems))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SuiteError(f"{path}: not a WenetSpeech metadata file ({type(exc).__name__}: {exc})") from exc
    return build_suite(utts, suite=suite, origin=path, files=[path], problems=problems,
                       policy=AudioPolicy(root, allow_outside_root))


def _manifest_utterance(entry: object, number: int, folder: Path, language: str | None) -> Utterance:
    """One manifest line as an Utterance; ValueError says what is wrong with it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("audio"), str) or not isinstance(entry.get("text"), str):
        raise ValueError("needs string fields 'audio' and 'text'")
    if not entry["text"].strip():
        raise ValueError("empty reference text (it would count every hypothesis word as an insertion)")
    lang = entry.get("language", language)
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r} is not one of {LANGUAGES}")
    duration = entry.get("duration")
    return Utterance(
        uid=str(entry.get("id", number)), text=entry["text"], language=lang, audio=folder / entry["audio"],
        offset_s=float(entry.get("offset", 0.0)), duration_s=None if duration is None else float(duration),
    )


@register("loader", "manifest")
def load_manifest(path: Path, *, suite: str, language: str | None = None, root: str = ".",
                  allow_outside_root: bool = False) -> SuiteData:
    """A JSONL manifest: per line `audio` (relative to the manifest's folder), `text`, and optional
    `offset`, `duration` (s), `language` (`en`|`zh`, else `language` here), `id` (else the line number).
    Bad lines (not UTF-8, not JSON, no text, ...) become `problems` naming the file and line.
    Audio must lie under `root` (relative to the manifest's folder) unless `allow_outside_root`."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: not found")
    utts, problems = [], []
    for number, line, raw in _decoded_lines(path):
        if line is None:
            problems.append({"uid": f"line {number}", "reason": not_utf8(path, number, raw)})
            continue
        if not line.strip():
            continue
        try:
            utts.append(_manifest_utterance(json.loads(line), number, path.parent, language))
        except (ValueError, TypeError) as exc:
            problems.append({"uid": f"line {number}", "reason": f"{path} line {number}: {exc}"})
    return build_suite(utts, suite=suite, origin=path, files=[path], problems=problems,
                       policy=AudioPolicy(path.parent / root, allow_outside_root))
