"""The inspection commands as a user types them: model-init, model-dump, tts-dump."""
import subprocess
import sys
from pathlib import Path

from PIL import Image
from safetensors import safe_open

CLI = [sys.executable, "-m", "vita_eval.cli"]


def _run(args: list[str]) -> None:
    proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_model_init_then_model_dump_and_tts_dump(tmp_path: Path) -> None:
    ckpt = tmp_path / "tiny"
    _run(["model-init", "--size", "tiny", "--out", str(ckpt), "--with-tts"])
    image = tmp_path / "red.png"
    Image.new("RGB", (1344, 896), "red").save(image)  # 2x2 tiles + thumbnail
    dump = tmp_path / "dump.safetensors"
    _run(["model-dump", "--model", str(ckpt), "--prompt", "What colour is it?", "--image", str(image),
          "--max-tiles", "4", "--max-new-tokens", "2", "--out", str(dump)])
    with safe_open(dump, "pt") as f:
        keys = set(f.keys())
        assert {"input_ids", "pixel_values", "image_embeds", "inputs_embeds", "last_hidden_state", "last_logits",
                "generated_ids"} <= keys
        n_tiles = f.get_tensor("pixel_values").shape[0]
        assert (f.get_tensor("input_ids") == -200).sum() == n_tiles * 1 and n_tiles > 1  # one -200 per tile
    tts = tmp_path / "tts.safetensors"
    _run(["tts-dump", "--model", str(ckpt), "--text", "Hello.", "--greedy", "--out", str(tts)])
    with safe_open(tts, "pt") as f:
        codes, wave = f.get_tensor("codec_codes"), f.get_tensor("waveform")
        assert wave.numel() == 600 * codes.numel()  # 40 codes/s -> 24 kHz
