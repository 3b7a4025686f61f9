"""model_dump tensors and the tiny CPU benchmark, end to end."""
import json

import av
import numpy as np
from safetensors import safe_open

from vita15.bench import main as bench_main
from vita15.conversation import AUDIO_TOKEN_INDEX, IMAGE_TOKEN_INDEX, SYSTEM_PROMPTS
from vita15.dump import model_dump

from .conftest import random_image

HIDDEN, VOCAB = 64, 151665


def _read(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_image_and_audio_dump(tiny_ckpt, tmp_path, rng):
    image = random_image(rng, 896, 448)  # 2×1 grid → 2 tiles + thumbnail
    wave = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    out = model_dump(tiny_ckpt, "", images=[image], audio=wave, max_tiles=12, max_new_tokens=2, out=tmp_path / "d.safetensors")
    t, meta = _read(out)
    assert (t["input_ids"] == IMAGE_TOKEN_INDEX).sum() == 3 and (t["input_ids"] == AUDIO_TOKEN_INDEX).sum() == 1
    assert meta["prompt"].count("<image>") == 3 and "<image>\n<audio><|im_end|>" in meta["prompt"]
    assert t["pixel_values"].shape == (3, 3, 448, 448)
    assert t["image_embeds"].shape == (3, 256, HIDDEN)
    assert t["audio_features"].shape == (98, 80) and t["audio_embeds"].shape == (12, HIDDEN)
    n = len(t["input_ids"]) - 4 + 3 * 256 + 12
    assert t["inputs_embeds"].shape == (n, HIDDEN) and t["last_hidden_state"].shape == (n, HIDDEN)
    assert t["last_logits"].shape == (VOCAB,) and t["generated_ids"].shape == (2,)
    assert int(t["generated_ids"][0]) == int(t["last_logits"].argmax())


def test_text_only_and_video_dump(tiny_ckpt, tmp_path, rng):
    t, meta = _read(model_dump(tiny_ckpt, "Hello", max_new_tokens=0, out=tmp_path / "t.safetensors"))
    assert set(t) == {"input_ids", "inputs_embeds", "last_hidden_state", "last_logits"}
    assert SYSTEM_PROMPTS["lang"] in meta["prompt"]
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(12):  # 3 s at 4 fps → 3 positions at 1 fps → clamped to 4 frames
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    t, meta = _read(model_dump(tiny_ckpt, "What?", video=video, max_new_tokens=0, out=tmp_path / "v.safetensors"))
    assert t["pixel_values"].shape == (4, 3, 448, 448) and t["image_embeds"].shape == (4, 256, HIDDEN)
    assert SYSTEM_PROMPTS["video"] in meta["prompt"] and "<image>" * 4 + "\nWhat?" in meta["prompt"]


def test_bench_tiny_cpu(tmp_path):
    out = tmp_path / "bench.json"
    assert bench_main(["--size", "tiny", "--device", "cpu", "--dtype", "fp32", "--decode-tokens", "2", "--no-warmup", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["scenarios"]) == {"image_13_tiles", "audio_30s", "video_16_frames"}
    image = report["scenarios"]["image_13_tiles"]
    assert image["n_prompt_tokens"] > 13 * 256 and image["prefill_s"] > 0 and image["decode_s_per_token"] > 0
    assert report["scenarios"]["video_16_frames"]["n_prompt_tokens"] > 16 * 256
    assert report["scenarios"]["audio_30s"]["n_prompt_tokens"] > 30 * 12
