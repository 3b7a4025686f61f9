"""The few value types every part of the harness passes around.

Data loaders produce `Sample`s, prompt presets turn a `Sample` into a `Request`,
a model turns `Request`s into `Output`s, scorers turn predictions into a
`ScoreResult`. Media are loaded lazily so that a suite of thousands of base64
images or long videos never sits in memory at once, and so that one bad cell
fails one sample (with a `SampleError` naming it) instead of the whole run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd


class SampleError(Exception):
    """A problem with one sample's input (bad image cell, undecodable video, ...).

    The runner records `str(error)` as the failure reason and goes on.
    """


class SuiteError(Exception):
    """A problem that stops a whole suite (missing columns, md5 mismatch, ...)."""


def fail_loading(message: str) -> Any:
    """A loader body for media found bad while the table was read: it fails at load time, with
    the reason (`partial(fail_loading, reason)` pickles, so such samples travel to processes too)."""
    raise SampleError(message)


@dataclass
class Media:
    """A lazily loaded input. `load()` raises SampleError with a clear reason."""

    kind: str  # "image" | "audio" | "video"
    source: str  # human-readable origin: file path, "MME.tsv row 12 column image", ...
    loader: Callable[[], Any]
    # Equal keys load equal content (two MME rows citing one image cell): the runner schedules such
    # samples together so the model can share their prefix. None: the source names the content.
    key: str | None = None

    def load(self) -> Any:
        try:
            return self.loader()
        except SampleError:
            raise
        except Exception as exc:  # decoding libraries raise anything; name the source
            raise SampleError(f"{self.kind} {self.source}: {type(exc).__name__}: {exc}") from exc


@dataclass
class Sample:
    """One benchmark row: its raw fields (as the scorer needs them) plus lazy media.

    `uid` is the row's identity in the source (VLMEvalKit `index`, an utterance id,
    a Video-MME question id) as a string; `fields` holds every non-media column.
    """

    suite: str
    uid: str
    fields: dict[str, Any]
    images: list[Media] = field(default_factory=list)
    video: Media | None = None  # loader returns a vita15.video_io.VideoHandle
    audio: Media | None = None  # loader returns float32 mono 16 kHz np.ndarray


@dataclass
class GenerationParams:
    do_sample: bool = False
    temperature: float = 0.0
    top_p: float | None = None
    max_new_tokens: int = 2048
    stop: tuple[str, ...] = ("<|im_end|>",)
    seed: int = 0


@dataclass
class Request:
    """What the model is asked, built by a prompt preset exactly as the reference does.

    `text` is the user turn AFTER the visual block: the model prepends
    `"<image>" * n_visual_tokens_blocks + "\\n"` itself, because the number of tiles is
    only known after tiling. `audio` is appended as an `<audio>` placeholder at the
    end of the user turn (VITA's demo layout).
    """

    uid: str
    text: str
    images: list[Any] = field(default_factory=list)  # PIL images (tiled by the model)
    frames: list[Any] = field(default_factory=list)  # PIL video frames (not tiled)
    audio: np.ndarray | None = None  # float32 mono 16 kHz
    max_tiles: int = 6
    modality: str = "image"  # system prompt: "image" | "video" | "lang"
    gen: GenerationParams = field(default_factory=GenerationParams)


@dataclass
class Output:
    raw: str  # decoded text, markers kept
    answer: str  # what the reference adapter would hand to the scorer (markers dropped)
    n_prompt_tokens: int = 0
    n_new_tokens: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class SuiteData:
    """A loaded suite: the scorer's table, the lazy samples, and what loading found.

    `table` has VLMEvalKit's columns minus media, with an `index` column whose
    string form is each `Sample.uid`. `problems` lists rows that could not be
    turned into samples at all ({"uid", "reason"}); they count as failed. `notes` are
    what loading found about the suite as a whole (a truncated file, ...), for scores.json.
    """

    table: pd.DataFrame
    samples: list[Sample]
    files: dict[str, str] = field(default_factory=dict)  # data file path -> md5
    problems: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
