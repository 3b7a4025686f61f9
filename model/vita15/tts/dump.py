"""``tts_dump``: run the TTS path of a VITA-1.5 checkpoint and save its tensors for comparison.

Only ``model.embed_tokens.weight`` is read from the LLM shards (via safetensors), so no full model
load is needed. Output safetensors: ``tts_input_embeds`` (1, ΣL, idim) float32, ``codec_codes``
(ΣT,) int64, ``waveform`` (N,) float32 at 24 kHz, and per-sentence ``sentence_input_lengths`` /
``sentence_code_lengths``; the text, sentences, seed, mode and the codec sections the checkpoint
lacks (``codec_absent``: "encoder" for a decoding-only codec) go to the metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from vita15.tts.checkpoint import absent_codec_parts
from vita15.tts.synthesize import TextToSpeech

EMBED_KEY = "model.embed_tokens.weight"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
TTS_SUBDIR = "vita_tts_ckpt"


def _shard_for(model_dir: Path, key: str) -> Path:
    index = model_dir / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        if key not in weight_map:
            raise KeyError(f"{index}: no entry for '{key}' in weight_map")
        return model_dir / weight_map[key]
    single = model_dir / SINGLE_FILE
    if not single.is_file():
        raise FileNotFoundError(f"{model_dir}: neither {INDEX_FILE} nor {SINGLE_FILE} found")
    return single


def read_embed_tokens(model_dir: str | Path, key: str = EMBED_KEY) -> torch.Tensor:
    """The LLM input-embedding matrix, read from whichever shard holds it."""
    path = _shard_for(Path(model_dir), key)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: shard named in {INDEX_FILE} is missing")
    with safe_open(str(path), framework="pt") as handle:
        if key not in handle.keys():  # noqa: SIM118 (safe_open has no __contains__)
            raise KeyError(f"{path}: tensor '{key}' not found")
        return handle.get_tensor(key)


def load_tokenizer(model_dir: str | Path) -> Any:
    """``tokenizer.json`` through ``tokenizers`` if present, else transformers' AutoTokenizer."""
    model_dir = Path(model_dir)
    if (model_dir / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def tts_dump(
    model_dir: str | Path,
    text: str,
    greedy: bool = True,
    out: str | Path = "tts_dump.safetensors",
    device: str = "cpu",
    seed: int = 0,
    max_tokens: int = 1000,
) -> Path:
    """Synthesize ``text`` with ``model_dir``/vita_tts_ckpt and write the tensors to ``out``.

    ``max_tokens`` caps codes per sentence (the reference uses 1000; random test weights rarely
    emit EOS).
    """
    model_dir = Path(model_dir)
    weight = read_embed_tokens(model_dir).float().to(device)
    embed_tokens = torch.nn.Embedding.from_pretrained(weight, freeze=True)
    tts = TextToSpeech.from_checkpoint(
        model_dir / TTS_SUBDIR, embed_tokens, load_tokenizer(model_dir), device, max_tokens=max_tokens
    )
    result = tts.run(text, greedy=greedy, seed=seed)
    idim = tts.decoder.cfg.idim
    tensors = {
        "tts_input_embeds": torch.cat(result.input_embeds, dim=1) if result.input_embeds else torch.zeros(1, 0, idim),
        "codec_codes": torch.cat(result.codes) if result.codes else torch.zeros(0, dtype=torch.long),
        "waveform": torch.from_numpy(result.waveform),
        "sentence_input_lengths": torch.tensor([e.shape[1] for e in result.input_embeds], dtype=torch.long),
        "sentence_code_lengths": torch.tensor([c.numel() for c in result.codes], dtype=torch.long),
    }
    metadata = {
        "text": text,
        "sentences": json.dumps(result.sentences, ensure_ascii=False),
        "greedy": str(greedy),
        "seed": str(seed),
        "sample_rate": str(tts.sample_rate),
        "codec_absent": ",".join(absent_codec_parts(tts.codec)),  # e.g. "encoder": not needed to decode
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out), metadata=metadata)
    return out
