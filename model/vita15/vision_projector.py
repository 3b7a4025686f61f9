"""Vision tower wrapper (×0.5 scaling + pixel shuffle, spec §2.2) and the `mlp2x_gelu` projector.

The wrapper keeps the ViT under the attribute `vision_tower`, so the checkpoint keys read
`model.vision_tower.vision_tower.…`; the projector is an `nn.Sequential` (`model.mm_projector.0/.2`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .configuration_vita import InternViTConfig
from .vision_internvit import InternVisionModel

FEATURE_SCALE = 0.5  # `scale_pix_shuffle`: part of the trained model, applied before the shuffle


def pixel_shuffle(features: torch.Tensor) -> torch.Tensor:
    """(N, H, W, C) → (N, H/2 · W/2, 4C).

    Output token 16·i + j (for a 32×32 grid) is the channel concatenation
    [g(2i,2j), g(2i,2j+1), g(2i+1,2j), g(2i+1,2j+1)], g(r, c) = feature of patch row r, column c.
    """
    n, height, width, channels = features.shape
    if height % 2 or width % 2:
        raise ValueError(f"pixel shuffle needs an even patch grid, got {height}×{width}")
    x = features.reshape(n, height // 2, 2, width // 2, 2, channels)  # [i, a, j, b]
    x = x.permute(0, 1, 3, 2, 4, 5)  # [i, j, a, b]: channels ordered a-major, b-minor
    return x.reshape(n, (height // 2) * (width // 2), 4 * channels)


class InternViTVisionTower(nn.Module):
    """Pixels (N, 3, 448, 448) → (N, 256, 4·vit_hidden) features, ready for the projector."""

    def __init__(self, cfg: InternViTConfig) -> None:
        super().__init__()
        self.vision_tower = InternVisionModel(cfg)

    @property
    def hidden_size(self) -> int:
        return self.vision_tower.config.hidden_size * 4

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.vision_tower(pixel_values)[:, 1:]  # last layer, CLS dropped
        n, tokens, channels = hidden.shape
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise ValueError(f"vision tower: {tokens} patch tokens do not form a square grid")
        return pixel_shuffle(hidden.reshape(n, side, side, channels) * FEATURE_SCALE)


def build_projector(projector_type: str, in_dim: int, out_dim: int) -> nn.Sequential:
    """`mlp2x_gelu`: Linear → GELU (exact) → Linear, as `nn.Sequential` (keys .0 and .2)."""
    if projector_type != "mlp2x_gelu":
        raise ValueError(f"config.json: mm_projector_type={projector_type!r} is not supported (VITA-1.5: mlp2x_gelu)")
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
