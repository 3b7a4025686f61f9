"""`vita-eval ask` as a user types it: streamed answer, timings, --speak WAV, --json, bad input first."""
from __future__ import annotations

import json
import shutil
import wave

import pytest
from safetensors import safe_open

from vita_eval.cli import main
from vita_eval.models.vita import BUNDLED_TINY


def _ask(capsys, *argv: str) -> dict:
    main(["ask", *argv, "--device", "cpu", "--max-new-tokens", "6", "--json"])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _ordered(timings: dict) -> None:
    e, s = timings["events"], timings["stages"]
    keys = [k for k in ("first_text_token", "first_text_chunk", "first_audio", "last_audio", "done") if k in e]
    assert [e[k] for k in keys] == sorted(e[k] for k in keys) and e["first_text_token"] > 0
    assert s["prepare"] > 0 and s["prefill"] > 0


def test_ask_on_an_image_streams_the_answer_and_prints_timings(tts_ckpt, scene_png, capsys) -> None:
    main(["ask", "--model", str(tts_ckpt), "--image", str(scene_png), "--question", "What is it?", "--device", "cpu",
          "--max-new-tokens", "6"])
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("first text token ") and " · total " in out[-1] and "prompt " in out[-1]
    record = _ask(capsys, "--model", str(tts_ckpt), "--image", str(scene_png), "--question", "What is it?")
    streamed = "\n".join(out[:-1])
    assert "".join(streamed.split()) == "".join(record["answer"].split())  # the same greedy answer, streamed
    assert record["prompt"].count("<image>") == 3 and "<image>\nWhat is it?<|im_end|>" in record["prompt"]  # 2x1 + thumb
    assert "image_encoder" in record["timings"]["stages"] and record["wav"] is None
    _ordered(record["timings"])


def test_ask_on_audio_and_on_both(tts_ckpt, scene_png, question_flac, capsys) -> None:
    audio = _ask(capsys, "--model", str(tts_ckpt), "--audio", str(question_flac))
    assert audio["prompt"].endswith("<|im_start|>user\n<audio><|im_end|>\n<|im_start|>assistant\n")
    assert "audio_encoder" in audio["timings"]["stages"] and "image_encoder" not in audio["timings"]["stages"]
    both = _ask(capsys, "--model", str(tts_ckpt), "--image", str(scene_png), "--audio", str(question_flac),
                "--max-tiles", "1")
    assert "<|im_start|>user\n<image>\n<audio><|im_end|>" in both["prompt"] and both["max_tiles"] == 1
    assert {"audio_encoder", "image_encoder"} <= set(both["timings"]["stages"])
    _ordered(audio["timings"])
    _ordered(both["timings"])


def test_ask_speak_writes_a_24khz_wav_with_600_samples_per_code(tts_ckpt, question_flac, tmp_path, capsys) -> None:
    out = tmp_path / "answer.wav"
    record = _ask(capsys, "--model", str(tts_ckpt), "--audio", str(question_flac), "--speak", str(out),
                  "--speech-policy", "fast")
    with wave.open(str(out)) as handle:
        assert handle.getframerate() == 24000 and handle.getnchannels() == 1 and handle.getsampwidth() == 2
        frames = handle.getnframes()
    t = record["timings"]
    assert frames == record["n_samples"] == 600 * t["counts"]["codes"] > 0
    assert record["wav"] == str(out) and record["segments"] and {"speech_decoder", "codec"} <= set(t["stages"])
    _ordered(t)
    assert t["events"]["first_audio"] <= t["events"]["last_audio"]
    assert [c["t"] for c in t["chunks"]] == sorted(c["t"] for c in t["chunks"])


def test_ask_prompt_equals_model_dump_prompt(tts_ckpt, scene_png, question_flac, tmp_path, capsys) -> None:
    args = ["--model", str(tts_ckpt), "--image", str(scene_png), "--audio", str(question_flac), "--max-tiles", "4"]
    record = _ask(capsys, *args, "--question", "Describe it.")
    dump = tmp_path / "dump.safetensors"
    main(["model-dump", *args, "--prompt", "Describe it.", "--max-new-tokens", "0", "--out", str(dump)])
    with safe_open(str(dump), "pt") as f:
        assert f.metadata()["prompt"] == record["prompt"]
        assert int((f.get_tensor("input_ids") == -200).sum()) == record["prompt"].count("<image>")


@pytest.mark.parametrize("argv, message", [
    ([], "nothing to ask"),
    (["--image", "/nonexistent/cat.png"], "image file not found: /nonexistent/cat.png"),
    (["--audio", "{bad}"], "cannot decode audio"),
    (["--question", "Hi", "--speak", "x.wav", "--model-without-tts"], "no vita_tts_ckpt/"),
])
def test_bad_input_is_one_line_before_the_model_loads(argv, message, tmp_path, monkeypatch, capsys) -> None:
    import vita15.inference

    def no_load(*a, **k):  # the model must never be loaded for these
        raise AssertionError("model loaded")

    monkeypatch.setattr(vita15.inference.VitaInference, "from_pretrained", no_load)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    model = tmp_path / "no-tts"  # a checkpoint folder without the speech decoder (its config is all that is read)
    model.mkdir()
    shutil.copy(BUNDLED_TINY / "config.json", model / "config.json")
    argv = [str(bad) if a == "{bad}" else a for a in argv if a != "--model-without-tts"]
    with pytest.raises(SystemExit) as err:
        main(["ask", "--model", str(model), *argv])
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith("vita-eval ask: ")
