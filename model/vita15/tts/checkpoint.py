"""Read and write ``vita_tts_ckpt/{decoder,codec}/{model.json,final.pt}``.

Loading is strict (unlike upstream, which silently keeps random weights for missing keys): any
missing, unexpected or mis-shaped tensor raises :class:`TTSCheckpointError` naming file and key. The one
section inference can do without is the codec's ``encoder``: it is then reported and left absent.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from vita15.tts.codec import CodecConfig, TiCodec, fold_weight_norm, stored_state_dict
from vita15.tts.decoder import DecoderConfig, LLM2TTSCodecAR

log = logging.getLogger(__name__)

DECODER_DIR = "decoder"
CODEC_DIR = "codec"
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "final.pt"
CODEC_PARTS = ("generator", "quantizer", "encoder")
INFERENCE_PARTS = ("generator", "quantizer")  # what decoding codes to speech needs

# "full": Freeze-Omni-like values (§6.2/§6.3). "tiny": same architecture, a few MB.
SIZES: dict[str, tuple[DecoderConfig, CodecConfig]] = {
    "full": (DecoderConfig(), CodecConfig()),
    "tiny": (
        DecoderConfig(
            idim=32, attention_dim=32, attention_heads=2, linear_units=64, num_blocks=2, encoder_output_dim=32
        ),
        CodecConfig(
            upsample_initial_channel=64, code_dim=64, encoder_base_channels=4, global_feature_conv=(16, 8, 16, 3, 1)
        ),
    ),
}


class TTSCheckpointError(ValueError):
    """A TTS checkpoint file is missing, unreadable or does not match the architecture."""


class TTSModules(NamedTuple):
    decoder: LLM2TTSCodecAR
    codec: TiCodec


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise TTSCheckpointError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TTSCheckpointError(f"{path}: invalid JSON ({exc})") from exc


def _read_weights(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TTSCheckpointError(f"{path}: file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable/unsafe pickles
        raise TTSCheckpointError(f"{path}: cannot load with weights_only=True ({exc})") from exc
    if not isinstance(data, dict):
        raise TTSCheckpointError(f"{path}: expected a dict of tensors, got {type(data).__name__}")
    return data


def check_state(
    expected: dict[str, torch.Tensor], found: dict[str, Any], path: Path, section: str = ""
) -> None:
    """Raise naming the first missing/unexpected/mis-shaped key (``section`` e.g. ``generator.``)."""
    for key, ref in expected.items():
        if key not in found:
            raise TTSCheckpointError(f"{path}: missing key '{section}{key}' (shape {tuple(ref.shape)})")
        value = found[key]
        if not isinstance(value, torch.Tensor):
            raise TTSCheckpointError(f"{path}: key '{section}{key}' is not a tensor")
        if tuple(value.shape) != tuple(ref.shape):
            raise TTSCheckpointError(
                f"{path}: key '{section}{key}' has shape {tuple(value.shape)}, expected {tuple(ref.shape)}"
            )
    for key in found:
        if key not in expected:
            raise TTSCheckpointError(f"{path}: unexpected key '{section}{key}'")


def _finish(module: nn.Module, device: str | torch.device, dtype: torch.dtype) -> nn.Module:
    return module.to(device=device, dtype=dtype).eval()


def load_decoder(
    ckpt_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> LLM2TTSCodecAR:
    folder = Path(ckpt_dir) / DECODER_DIR
    cfg = DecoderConfig.from_model_json(_read_json(folder / CONFIG_FILE))
    path = folder / WEIGHTS_FILE
    state = _read_weights(path)
    state = state.get("model", state)  # upstream accepts a {'model': state_dict} snapshot too
    decoder = LLM2TTSCodecAR(cfg)
    check_state(decoder.state_dict(), state, path)
    decoder.load_state_dict(state)
    return _finish(decoder, device, dtype)


def load_codec(
    ckpt_dir: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    require_encoder: bool = True,
) -> TiCodec:
    """The codec of a ``vita_tts_ckpt``; ``encoder`` is None when absent and not ``require_encoder``.

    Decoding codes to speech needs only the generator and quantizer (upstream's ``VQVAE`` loads the
    encoder only ``with_encoder``); encoding speech, and so training stages 3.1 and 3.2, needs the encoder.
    """
    folder = Path(ckpt_dir) / CODEC_DIR
    cfg = CodecConfig.from_json(_read_json(folder / CONFIG_FILE))
    path = folder / WEIGHTS_FILE
    data = _read_weights(path)
    has_encoder = isinstance(data.get("encoder"), dict)
    if not has_encoder and require_encoder:
        raise TTSCheckpointError(f"{path}: missing section 'encoder' (encoding speech and training stages 3.1/3.2 "
                                 "need it; inference needs only generator + quantizer)")
    codec = TiCodec(cfg, with_encoder=has_encoder)
    for part in CODEC_PARTS if has_encoder else INFERENCE_PARTS:
        if not isinstance(data.get(part), dict):
            raise TTSCheckpointError(f"{path}: missing section '{part}'")
        module = getattr(codec, part)
        check_state(stored_state_dict(module), data[part], path, f"{part}.")
        module.load_state_dict(fold_weight_norm(module, data[part]))
    if not has_encoder:
        log.warning("%s: no 'encoder' section; loaded generator + quantizer (decoding only)", path)
    return _finish(codec, device, dtype)


def absent_codec_parts(codec: TiCodec) -> list[str]:
    """Codec sections the checkpoint did not have (only the encoder may be absent)."""
    return [part for part in CODEC_PARTS if getattr(codec, part) is None]


def load_tts(
    ckpt_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> TTSModules:
    """Load decoder and codec from a ``vita_tts_ckpt`` folder for inference (upstream runs them in bf16 on
    GPU); a codec without its encoder loads, see `absent_codec_parts`."""
    return TTSModules(load_decoder(ckpt_dir, device, dtype), load_codec(ckpt_dir, device, dtype, require_encoder=False))


def _build(size: str, seed: int) -> tuple[DecoderConfig, LLM2TTSCodecAR, CodecConfig, TiCodec]:
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    dec_cfg, codec_cfg = SIZES[size]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return dec_cfg, LLM2TTSCodecAR(dec_cfg), codec_cfg, TiCodec(codec_cfg)


def write_tts_checkpoint(out_dir: Path, *, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight ``vita_tts_ckpt`` (``out_dir`` itself) in the released layout."""
    out_dir = Path(out_dir)
    dec_cfg, decoder, codec_cfg, codec = _build(size, seed)
    (out_dir / DECODER_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / CODEC_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / DECODER_DIR / CONFIG_FILE).write_text(json.dumps(dec_cfg.to_model_json(), indent=2))
    torch.save(decoder.state_dict(), out_dir / DECODER_DIR / WEIGHTS_FILE)
    (out_dir / CODEC_DIR / CONFIG_FILE).write_text(json.dumps(codec_cfg.to_json(), indent=2))
    parts = {part: stored_state_dict(getattr(codec, part)) for part in CODEC_PARTS}
    torch.save(parts, out_dir / CODEC_DIR / WEIGHTS_FILE)
    return out_dir
