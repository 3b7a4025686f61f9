"""VITA-JSON training data (spec §7.3): samples → token ids, labels and media tensors.

Upstream resolves media folders through `FolderDict` / `AudioFolder` Python modules; here a recipe
names them (`image_folders: {set: path}`, `audio_folder: path`). Samples are validated once when
the dataset is built: a sample whose media file is missing, whose turns do not alternate
human/gpt, or whose placeholders do not match its media is skipped, logged with its id and the
reason, and counted (`VitaJsonDataset.skipped`), so a bad row never stops a long run.

The text layout reproduces what `vita15.conversation.build_prompt` / `user_content` give at
inference, so the first round of a training sample tokenises exactly like an evaluation prompt.

Dummy media (§7.3): batches carry only real media. Upstream's zero image / zero audio are spliced
as zero-length slices, so they never change the loss; their one real job, making every rank run
every tower under ZeRO-3/FSDP, is done by `objectives.VitaLM` (`dummy_media`, on when sharded).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from vita15 import audio_features
from vita15.conversation import (
    AUDIO_TOKEN,
    IGNORE_INDEX,
    IM_END,
    IM_START,
    IMAGE_TOKEN,
    SYSTEM_PROMPTS,
    tokenize_with_placeholders,
)
from vita15.image_processing import (
    demo_frame_indices,
    load_image,
    preprocess_frames,
    preprocess_image,
)

logger = logging.getLogger(__name__)

VIDEO_TOKEN = "<video>"
SPEECH_MARK, TEXT_MARK, IGNORE_MARK = "☞", "☜", "☟"


@dataclass
class DataConfig:
    """Where the VITA-JSON files and their media live, and how media are turned into tokens."""

    files: list[str]
    image_folders: dict[str, str] = field(default_factory=dict)
    audio_folder: str | None = None
    max_tiles: int = 12
    max_frames: int = 16
    min_frames: int = 4
    model_max_length: int = 6200
    cache_media: bool = False  # keep preprocessed tiles/frames/fbank in memory (small data sets)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DataConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"data: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**raw)


@dataclass
class Example:
    """One tokenised sample; `pixel_values` holds all tiles/frames in placeholder order."""

    sample_id: str
    input_ids: torch.Tensor  # (L,) with −200 / −500 placeholders
    labels: torch.Tensor  # (L,) −100 on instruction parts
    pixel_values: torch.Tensor | None  # (N, 3, 448, 448)
    audio: list[torch.Tensor]  # fbank (T, 80) per <audio>


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class SampleError(ValueError):
    """A sample that cannot be trained on; the message is the reason that gets logged."""


class VitaJsonDataset(Dataset):
    """The concatenation of VITA-JSON files, with bad samples skipped at construction time."""

    def __init__(self, cfg: DataConfig, tokenizer) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.samples: list[dict[str, Any]] = []
        self.skipped: dict[str, str] = {}
        self._cache: dict[Path, torch.Tensor] = {}
        for file in cfg.files:
            for raw in _read_json_list(Path(file)):
                sid = str(raw.get("id", f"{Path(file).name}[{len(self.samples) + len(self.skipped)}]"))
                try:
                    self._validate(raw)
                except SampleError as exc:
                    self.skipped[sid] = str(exc)
                    logger.warning("skipping sample %s: %s", sid, exc)
                    continue
                self.samples.append(raw)
        self.lengths = [self._length_hint(raw) for raw in self.samples]
        if not self.samples:
            raise ValueError(f"no usable samples in {cfg.files} ({len(self.skipped)} skipped)")
        logger.info("%d samples from %d files, %d skipped", len(self.samples), len(cfg.files), len(self.skipped))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Example:
        raw = self.samples[index]
        sid = str(raw.get("id", index))
        pixels = self._visual(raw)
        audio = [self.media(p, fbank_file) for p in self.audio_paths(raw)]
        n_tokens = [len(p) for p in pixels]
        ids, labels = build_ids_and_labels(raw, n_tokens, self.tokenizer)
        if len(ids) > self.cfg.model_max_length:
            logger.info("sample %s: %d tokens before splicing; the model truncates after splicing", sid, len(ids))
        return Example(sid, torch.tensor(ids), torch.tensor(labels),
                       torch.cat(pixels) if pixels else None, audio)

    # ------------------------------------------------------------------ media
    def _media_path(self, set_name: Any, name: str) -> Path:
        if not isinstance(set_name, str) or set_name not in self.cfg.image_folders:
            raise SampleError(f"set {set_name!r} has no entry in image_folders")
        return Path(self.cfg.image_folders[set_name]) / name

    def _image_paths(self, raw: dict) -> list[Path]:
        images = _as_list(raw.get("image"))
        sets = _as_list(raw.get("set")) if isinstance(raw.get("set"), list) else [raw.get("set")] * len(images)
        if len(sets) != len(images):
            raise SampleError(f"{len(images)} images but {len(sets)} sets")
        return [self._media_path(s, name) for s, name in zip(sets, images)]

    def _video_path(self, raw: dict) -> Path | None:
        video = raw.get("video")
        return None if video is None else self._media_path(raw.get("set"), video)

    def audio_paths(self, raw: dict) -> list[Path]:
        names = _as_list(raw.get("audio"))
        if names and self.cfg.audio_folder is None:
            raise SampleError("sample has audio but the recipe sets no audio_folder")
        return [Path(self.cfg.audio_folder) / n for n in names]

    def _visual(self, raw: dict) -> list[torch.Tensor]:
        """Tiles per image, then the video frames (one tensor per placeholder group)."""
        out = [self.media(p, self._tiles) for p in self._image_paths(raw)]
        video = self._video_path(raw)
        if video is not None:
            out.append(self.media(video, self._frames))
        return out

    def media(self, path: Path, load) -> torch.Tensor:
        """`load(path)`, memoised when `cache_media` is set (media repeat across samples and epochs)."""
        if not self.cfg.cache_media:
            return load(path)
        if path not in self._cache:
            self._cache[path] = load(path)
        return self._cache[path]

    def _tiles(self, path: Path) -> torch.Tensor:
        return preprocess_image(load_image(path), max_tiles=self.cfg.max_tiles)

    def _frames(self, path: Path) -> torch.Tensor:
        """The demo's frame choice: 1 fps, clamped to [min_frames, max_frames] by linspace."""
        from vita15.video_io import open_video  # PyAV only for data sets that hold videos

        handle = open_video(path)
        indices = demo_frame_indices(handle.n_frames, handle.fps, self.cfg.min_frames, self.cfg.max_frames)
        return preprocess_frames(handle.frames(indices))

    def _length_hint(self, raw: dict) -> int:
        """Rough spliced length without decoding media (for length-grouped batches)."""
        text = sum(len(t["value"]) for t in raw["conversations"]) // 4
        visual = 256 * len(_as_list(raw.get("image"))) + 256 * self.cfg.max_frames * int(raw.get("video") is not None)
        return text + visual + 100 * len(_as_list(raw.get("audio")))

    def _validate(self, raw: dict) -> None:
        turns = raw.get("conversations")
        if not isinstance(turns, list) or not turns or len(turns) % 2:
            raise SampleError("conversations must be a non-empty list of human/gpt pairs")
        for i, turn in enumerate(turns):
            expected = "human" if i % 2 == 0 else "gpt"
            if not isinstance(turn, dict) or turn.get("from") != expected or not isinstance(turn.get("value"), str):
                raise SampleError(f"turn {i} must be a {expected!r} turn with a string value")
        inserted = raw.get("inserted_id")
        if inserted is not None and (not isinstance(inserted, int) or not 0 <= inserted < len(turns) or inserted % 2 == 0):
            raise SampleError(f"inserted_id {inserted!r} is not the index of a gpt turn")
        text = "".join(t["value"] for t in turns)
        images, audio = self._image_paths(raw), self.audio_paths(raw)
        video = self._video_path(raw)
        counts = {IMAGE_TOKEN: (text.count(IMAGE_TOKEN), len(images)), VIDEO_TOKEN: (text.count(VIDEO_TOKEN), int(video is not None)),
                  AUDIO_TOKEN: (text.count(AUDIO_TOKEN), len(audio))}
        for token, (n_text, n_media) in counts.items():
            if n_text != n_media:
                raise SampleError(f"{n_text} {token} placeholders for {n_media} media files")
        for path in [*images, *audio, *([video] if video else [])]:
            if not path.is_file():
                raise SampleError(f"missing media file {path}")


def fbank_file(path: Path) -> torch.Tensor:
    return audio_features.fbank(audio_features.load_audio(path))


def _read_json_list(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read VITA-JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of samples")
    return data


# ---------------------------------------------------------------------- text layout
def expand_user_text(value: str, visual_tokens: list[int]) -> str:
    """`<image>`/`<video>` blocks → `"<image>"*n + "\\n"` at the front; `"<audio>\\n"` → `"<audio>"`.

    Upstream first glues a placeholder to its neighbouring newline, then expands it; the result is
    the demo's `user_content` layout (visual block, newline, text, audio last).
    """
    counts = iter(visual_tokens)
    value = value.replace(AUDIO_TOKEN + "\n", AUDIO_TOKEN)
    pieces = re.split(f"({re.escape(IMAGE_TOKEN)}|{re.escape(VIDEO_TOKEN)})", value)
    visual, text = [], []
    for piece in pieces:
        if piece in (IMAGE_TOKEN, VIDEO_TOKEN):
            visual.append(IMAGE_TOKEN * next(counts) + "\n")
        else:
            text.append(piece)
    body = "".join(text)
    if visual:  # the newline that separated the placeholder from the text is part of the block
        body = body.removeprefix("\n")
    return "".join(visual) + body


def _system_prompt(raw: dict) -> str:
    if raw.get("video") is not None:
        return SYSTEM_PROMPTS["video"]
    return SYSTEM_PROMPTS["image"] if raw.get("image") else SYSTEM_PROMPTS["lang"]


def conversation_segments(raw: dict, visual_tokens: list[int]) -> list[tuple[str, bool]]:
    """(text, learned) pieces of the `qwen2p5_instruct` conversation.

    Learned: each answer (state marker + text) and its `<|im_end|>`; `end_tag: false` drops the
    final `<|im_end|>` (no stop target). Everything else is instruction (label −100).
    """
    turns = raw["conversations"]
    inserted = raw.get("inserted_id")
    counts = list(visual_tokens)
    segments: list[tuple[str, bool]] = [(f"{IM_START}system\n{_system_prompt(raw)}{IM_END}\n", False)]
    for i in range(0, len(turns), 2):
        question = turns[i]["value"]
        n_vis = question.count(IMAGE_TOKEN) + question.count(VIDEO_TOKEN)
        user = expand_user_text(question, counts[:n_vis])
        counts = counts[n_vis:]
        marker = IGNORE_MARK if inserted == i + 1 else (SPEECH_MARK if AUDIO_TOKEN in question else TEXT_MARK)
        last = i + 2 == len(turns)
        end = "" if last and raw.get("end_tag", True) is False else IM_END
        segments.append((f"{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n", False))
        segments.append((marker + turns[i + 1]["value"] + end, True))
        if not last:
            segments.append(("\n", False))
    return segments


def build_ids_and_labels(raw: dict, visual_tokens: list[int], tokenizer) -> tuple[list[int], list[int]]:
    """Token ids (with placeholders) and labels; adjacent instruction pieces are tokenised together."""
    ids: list[int] = []
    labels: list[int] = []
    pending = ""
    for text, learned in conversation_segments(raw, visual_tokens) + [("", True)]:
        if not learned:
            pending += text
            continue
        if pending:
            piece = tokenize_with_placeholders(tokenizer, pending)
            ids += piece
            labels += [IGNORE_INDEX] * len(piece)
            pending = ""
        if text:
            piece = tokenize_with_placeholders(tokenizer, text)
            ids += piece
            labels += piece
    return ids, labels


# ---------------------------------------------------------------------- batching
@dataclass
class Batch:
    """Right-padded ids/labels plus the media of all samples, ready for `VITAQwen2ForCausalLM`."""

    sample_ids: list[str]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor | None
    audio_features: torch.Tensor | None
    audio_lengths: torch.Tensor | None

    @property
    def n_label_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def collate(examples: list[Example]) -> Batch:
    """Pad ids with 0 / labels with −100 on the right; concatenate tiles; zero-pad fbank rows."""
    length = max(len(e.input_ids) for e in examples)
    ids = torch.zeros(len(examples), length, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros(len(examples), length, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e.input_ids)] = e.input_ids
        labels[i, : len(e.labels)] = e.labels
        mask[i, : len(e.input_ids)] = 1
    pixels = [e.pixel_values for e in examples if e.pixel_values is not None]
    audio = [a for e in examples for a in e.audio]
    feats = lengths = None
    if audio:
        lengths = torch.tensor([len(a) for a in audio], dtype=torch.long)
        feats = torch.zeros(len(audio), int(lengths.max()), audio[0].shape[-1])
        for i, a in enumerate(audio):
            feats[i, : len(a)] = a
    return Batch([e.sample_id for e in examples], ids, mask, labels,
                 torch.cat(pixels) if pixels else None, feats, lengths)
