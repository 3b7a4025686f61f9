"""Configuration of VITA-1.5: the HF `config.json` class plus the two tower configs.

The official `config.json` only names the towers (`mm_vision_tower`, `mm_audio_encoder`): either a
Hub id (whose architecture we know: InternViT-300M-448px and the VITA-1.5 Whale encoder) or a folder
next to the checkpoint holding the tower's own `config.json` / `train.yaml`. `VitaModelConfig`
bundles the three resolved configs so a model can be built without touching the disk again.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, Qwen2Config

if TYPE_CHECKING:  # imported lazily so the vision/text parts do not need the audio module
    from .audio_whale import WhaleConfig

logger = logging.getLogger(__name__)

VISION_HUB_ID = "OpenGVLab/InternViT-300M-448px"
AUDIO_HUB_ID = "VITA-MLLM/VITA-1.5_AudioEnc"
# Folder names used by the official checkpoint (and by our checkpoint writer).
VISION_FOLDER = "InternViT-300M-448px"
AUDIO_FOLDER = "audio-encoder-Qwen2-7B-1107-weight-base-11wh-tunning"
TOKENIZER_LEN = 151665  # len(Qwen2.5 tokenizer): ids above 151664 do not exist for VITA-1.5


@strict
class VITAQwen2Config(Qwen2Config):
    """Qwen2 config plus VITA's multimodal keys (spec §1.2); unknown keys are kept as attributes."""

    model_type = "vita-Qwen2"

    mm_vision_tower: str | None = None
    mm_audio_encoder: str | None = None
    mm_projector_type: str = "mlp2x_gelu"
    mm_hidden_size: int = 4096
    use_mm_proj: bool = True
    image_aspect_ratio: str = "square"
    tokenizer_model_max_length: int = 6200
    tokenizer_padding_side: str = "right"
    freeze_audio_encoder: bool = True
    freeze_audio_encoder_adapter: bool = False
    audio_prompt_finetune: bool = False
    audio_prompt_num: int | None = None
    audio_state_predictor_tuning: bool = False
    unfreeze_vision_tower: bool = False
    use_s2: bool = False


AutoConfig.register(VITAQwen2Config.model_type, VITAQwen2Config, exist_ok=True)


@dataclass
class InternViTConfig:
    """InternViT-300M-448px architecture (spec §2.1); inference ignores drop-path and init values."""

    image_size: int = 448
    patch_size: int = 14
    num_channels: int = 3
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    qk_normalization: bool = False
    norm_type: str = "layer_norm"
    hidden_act: str = "gelu"
    drop_path_rate: float = 0.1
    initializer_factor: float = 1.0

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> "InternViTConfig":
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        if cfg.qk_normalization or cfg.norm_type != "layer_norm" or cfg.hidden_act != "gelu":
            raise ValueError(
                f"{source}: unsupported InternViT variant (qk_normalization={cfg.qk_normalization}, "
                f"norm_type={cfg.norm_type!r}, hidden_act={cfg.hidden_act!r}); VITA-1.5 uses "
                "qk_normalization=false, layer_norm, gelu"
            )
        return cfg

    @classmethod
    def from_json(cls, path: str | Path) -> "InternViTConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read InternViT config: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    def to_json(self, path: str | Path) -> None:
        data = {"architectures": ["InternVisionModel"], "model_type": "intern_vit_6b", **asdict(self)}
        Path(path).write_text(json.dumps(data, indent=2) + "\n")

    @property
    def tokens_per_tile(self) -> int:
        """LLM tokens per tile after the 0.5 pixel shuffle (256 at 448 px / patch 14)."""
        return (self.image_size // self.patch_size // 2) ** 2


@dataclass
class VitaModelConfig:
    """Everything needed to build the model: the LLM config and both resolved tower configs."""

    llm: VITAQwen2Config
    vision: InternViTConfig
    audio: "WhaleConfig"


def vita15_config() -> VitaModelConfig:
    """The exact VITA-1.5 configuration (HF `config.json` of spec §1.2, vocab 152064 as stored)."""
    from .audio_whale import WhaleConfig

    llm = VITAQwen2Config(
        architectures=["VITAQwen2ForCausalLM"],
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        max_position_embeddings=32768,
        rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"},
        rms_norm_eps=1e-6,
        hidden_act="silu",
        tie_word_embeddings=False,
        use_sliding_window=False,
        sliding_window=None,
        max_window_layers=28,
        attention_dropout=0.0,
        bos_token_id=151643,
        eos_token_id=151645,
        use_cache=False,
        mm_vision_tower=VISION_HUB_ID,
        mm_audio_encoder=AUDIO_HUB_ID,
        mm_hidden_size=4096,
        dtype="bfloat16",
    )
    return VitaModelConfig(llm=llm, vision=InternViTConfig(), audio=WhaleConfig.vita15_default(3584))


def tiny_config() -> VitaModelConfig:
    """Same architecture at a few MB, with the real tokenizer's vocabulary and 448 px tiles.

    The towers point at checkpoint sub-folders, as a locally trained checkpoint would.
    """
    from .audio_whale import WhaleConfig

    hidden = 64
    vision = InternViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    llm = VITAQwen2Config(
        architectures=["VITAQwen2ForCausalLM"],
        hidden_size=hidden,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=TOKENIZER_LEN,
        max_position_embeddings=32768,
        rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"},
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=151643,
        eos_token_id=151645,
        use_cache=False,
        mm_vision_tower=VISION_FOLDER,
        mm_audio_encoder=AUDIO_FOLDER,
        mm_hidden_size=vision.hidden_size * 4,
    )
    return VitaModelConfig(llm=llm, vision=vision, audio=WhaleConfig.tiny(hidden))


def _is_hub_id(name: str, ckpt_dir: Path | None) -> bool:
    local = Path(name) if Path(name).is_absolute() or ckpt_dir is None else ckpt_dir / name
    return "/" in name and not local.is_dir()


def resolve_vision_config(llm: VITAQwen2Config, ckpt_dir: Path | None) -> InternViTConfig:
    """Hub id → the known InternViT-300M-448px config; folder → its `config.json`."""
    name = llm.mm_vision_tower
    if not name:
        raise ValueError("config.json: mm_vision_tower is not set (VITA-1.5 always has a vision tower)")
    if _is_hub_id(name, ckpt_dir):
        if "internvit" not in name.lower():
            raise ValueError(f"config.json: mm_vision_tower={name!r} is not an InternViT tower")
        return InternViTConfig()
    folder = Path(name) if Path(name).is_absolute() or ckpt_dir is None else ckpt_dir / name
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: vision tower config not found (config.json mm_vision_tower={name!r})")
    return InternViTConfig.from_json(cfg_path)


def resolve_audio_config(llm: VITAQwen2Config, ckpt_dir: Path | None) -> "WhaleConfig":
    """Folder with `train.yaml` → read it; hub id or missing yaml → the VITA-1.5 default, with a warning."""
    from .audio_whale import WhaleConfig

    name = llm.mm_audio_encoder
    if not name:
        raise ValueError("config.json: mm_audio_encoder is not set (VITA-1.5 always has an audio encoder)")
    folder = Path(name) if Path(name).is_absolute() or ckpt_dir is None else ckpt_dir / name
    if ckpt_dir is not None and not folder.is_dir():
        # The official checkpoint also ships the encoder folder under its local name.
        folder = ckpt_dir / AUDIO_FOLDER
    yaml_path = folder / "train.yaml"
    if yaml_path.is_file():
        return WhaleConfig.from_train_yaml(yaml_path, llm.hidden_size)
    logger.warning(
        "%s not found: audio encoder uses the VITA-1.5 default (full attention, dither 0)", yaml_path
    )
    return WhaleConfig.vita15_default(llm.hidden_size)


def load_config(ckpt_dir: str | Path) -> VitaModelConfig:
    """Read `config.json` of a checkpoint folder and resolve both towers."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read model config: {exc}") from exc
    if data.get("model_type") != VITAQwen2Config.model_type:
        raise ValueError(
            f"{path}: model_type is {data.get('model_type')!r}, expected {VITAQwen2Config.model_type!r}"
        )
    data.pop("model_type")
    llm = VITAQwen2Config.from_dict(data)
    return VitaModelConfig(llm=llm, vision=resolve_vision_config(llm, ckpt_dir), audio=resolve_audio_config(llm, ckpt_dir))
