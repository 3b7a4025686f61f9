"""Dump the intermediate tensors of one reference-style query, for comparison with the public code.

The prompt is built as `video_audio_demo.py` does (spec §4.3), by `vita15.demo.load_query` (shared
with `vita-eval ask`): image → image system prompt and `"<image>"*tiles + "\\n" + TEXT`; video → demo
frame sampling, video system prompt; audio → `<audio>` appended (lang system prompt without an image). Tensors are written with safetensors; only those that
apply to the query are present.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from .demo import load_query
from .image_processing import normalize_pixels
from .inference import VitaInference, pad_audio, prepare_request


@torch.no_grad()
def model_dump(
    model_dir: str | Path,
    prompt: str,
    images: Sequence[str | Path | Image.Image] = (),
    audio: str | Path | np.ndarray | None = None,
    video: str | Path | None = None,
    max_tiles: int = 12,
    dtype: str = "fp32",
    device: str = "cpu",
    max_new_tokens: int = 1,
    out: str | Path = "vita_dump.safetensors",
) -> Path:
    """Run one query and write input_ids, pixel_values, image/audio embeddings, inputs_embeds,
    last_hidden_state, last_logits (fp32, final position, full stored vocab) and greedy ids.

    The metadata holds the prompt and, when tokens were generated, their text (`generated_text`)."""
    query = load_query(prompt, images, video, audio, max_tiles)  # media errors come before the model load
    engine = VitaInference.from_pretrained(model_dir, device=device, dtype=dtype)
    model = engine.model
    prepared = prepare_request(query, engine.tokenizer, engine.dither)
    tensors: dict[str, torch.Tensor] = {"input_ids": prepared.input_ids}
    image_embeds = audio_embeds = None
    if prepared.pixel_values is not None:
        tensors["pixel_values"] = normalize_pixels(prepared.pixel_values)  # the reference's float32 tiles
        image_embeds = model.encode_images(prepared.pixel_values)
        tensors["image_embeds"] = image_embeds.float()
    if prepared.audio_features is not None:
        tensors["audio_features"] = prepared.audio_features.float()
        audio_embeds = model.encode_audio(*pad_audio([prepared.audio_features]))
        tensors["audio_embeds"] = audio_embeds[0].float()
    embeds, _ = model.splice([prepared.input_ids], image_embeds, audio_embeds)
    hidden = model.model(inputs_embeds=embeds[0][None]).last_hidden_state[0]
    tensors["inputs_embeds"] = embeds[0].float()
    tensors["last_hidden_state"] = hidden.float()
    tensors["last_logits"] = model.lm_head(hidden[-1]).float()
    metadata = {"prompt": prepared.prompt, "dtype": dtype, "device": device}
    if max_new_tokens > 0:
        ids = engine.decode(embeds, max_new_tokens=max_new_tokens)[0]
        tensors["generated_ids"] = torch.tensor(ids, dtype=torch.long)
        metadata["generated_text"] = engine.tokenizer.decode(ids, skip_special_tokens=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(out), metadata=metadata)
    return out
