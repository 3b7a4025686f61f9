"""Video-MME prompt presets: VLMEvalKit's frame samplers and template, and VITA's own pipeline.

`vlmevalkit-videomme` reproduces what VLMEvalKit hands the VITAQwen2 adapter: frames
sampled by `nframe` or `fps`, saved as JPEG (so they pass one JPEG round trip), then
treated as ordinary images (tiled, image system prompt), followed by the template text.
`vita-videomme` reproduces VITA's `yt_video_inference_qa_imgs.py`: 1 fps frames, at most
16 picked per segment, video frames (no tiling), its subtitle block and its prompt,
sampled decoding at temperature 0.01 with 10 new tokens.
"""
from __future__ import annotations

import ast
import io
from typing import Any

import pysubs2
from PIL import Image

from vita_eval.data.videomme import read_subtitles, subtitle_at
from vita_eval.registry import register
from vita_eval.types import GenerationParams, Request, Sample, SampleError

FRAMES_INTRO = "\nThese are the frames of a video."
SELECT = (
    "Select the best answer to the following multiple-choice question based on the video. "
    "Respond with only the letter (A, B, C, or D) of the correct option.\n"
)
VITA_SUFFIX = "Please respond with only the letter of the correct answer."
VITA_MAX_FRAMES = 16


def nframe_indices(n_frames: int, nframe: int) -> list[int]:
    """VLMEvalKit nframe mode: evenly inside the clip, first and last frame never taken."""
    step = n_frames / (nframe + 1)
    return [int(i * step) for i in range(1, nframe + 1)]


def fps_indices(n_frames: int, avg_fps: float, fps: float) -> list[int]:
    """VLMEvalKit fps mode: `int((n/avg_fps)*fps)` frames, `avg_fps/fps` apart from frame 0."""
    required = int(n_frames / avg_fps * fps)
    step = avg_fps / fps
    return [int(i * step) for i in range(required)]


def vita_segment_picks(n: int, max_frames: int = VITA_MAX_FRAMES) -> list[int]:
    """VITA imgs pipeline: k = min(16, n) picks, each the middle of its segment of the n frames."""
    k = min(max_frames, n)
    seg = (n - 1) / k
    return [(round(seg * i) + round(seg * (i + 1))) // 2 for i in range(k)]


def _jpeg_roundtrip(image: Image.Image) -> Image.Image:
    """VLMEvalKit saves sampled frames as .jpg (PIL default quality) and re-opens them."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _candidates(fields: dict[str, Any]) -> list[str]:
    value = fields["candidates"]
    return list(ast.literal_eval(value) if isinstance(value, str) else value)


def _subtitles(fields: dict[str, Any]) -> pysubs2.SSAFile | None:
    path = fields.get("subtitle_path")
    return read_subtitles(path) if path else None


def _video(sample: Sample):
    if sample.video is None:
        raise SampleError(f"{sample.suite} row {sample.uid}: no video")
    return sample.video.load()


@register("preset", "vlmevalkit-videomme")
def build_vlmevalkit(sample: Sample, suite: Any, args: dict[str, Any]) -> Request:
    """VLMEvalKit Video-MME: nframe/fps sampling, JPEG frames as tiled images, subtitle rule."""
    video = _video(sample)
    if "fps" in args:
        indices = fps_indices(video.n_frames, video.fps, float(args["fps"]))
    else:
        indices = nframe_indices(video.n_frames, int(args.get("nframe", 8)))
    frames = [_jpeg_roundtrip(f) for f in video.frames(indices)]
    intro = FRAMES_INTRO + " "
    if args.get("subtitles"):
        subs = _subtitles(sample.fields)
        lines = [] if subs is None else [subtitle_at(subs, pysubs2.make_time(fps=video.fps, frames=i)) for i in indices]
        intro += "This video's subtitles are listed below:\n" + "\n".join(t for t in lines if t) + "\n"
    question = str(sample.fields["question"]) + "\n" + "\n".join(_candidates(sample.fields))
    return Request(
        uid=sample.uid,
        text=intro + SELECT + f"Question: {question}\nAnswer: ",
        images=frames,
        max_tiles=int(args.get("max_tiles", 6)),
        modality="image",
        gen=GenerationParams(do_sample=False, max_new_tokens=int(args.get("max_new_tokens", 2048))),
    )


@register("preset", "vita-videomme")
def build_vita(sample: Sample, suite: Any, args: dict[str, Any]) -> Request:
    """VITA's own Video-MME pipeline: 16 frames from 1 fps, its prompt, sampled at T=0.01."""
    video = _video(sample)
    stride = max(1, round(video.fps))
    positions = list(range(0, video.n_frames, stride))  # the 1 fps frames VITA pre-extracts
    picks = vita_segment_picks(len(positions), int(args.get("max_frames", VITA_MAX_FRAMES)))
    frames = video.frames([positions[p] for p in picks])
    text = ""
    if args.get("subtitles"):
        subs = _subtitles(sample.fields)
        lines = ["" if subs is None else subtitle_at(subs, p * 1000) for p in picks]  # frame p = second p
        text = "This video's subtitles are listed below: \n" + "\n".join(lines) + "\n"
    question = str(sample.fields["question"]) + "\n" + "\n".join(_candidates(sample.fields)) + "\n"
    return Request(
        uid=sample.uid,
        text=text + question + VITA_SUFFIX,
        frames=frames,
        modality="video",
        gen=GenerationParams(do_sample=True, temperature=0.01, max_new_tokens=int(args.get("max_new_tokens", 10)),
                             stop=("<|im_start|>",), seed=int(args.get("seed", 0))),
    )
