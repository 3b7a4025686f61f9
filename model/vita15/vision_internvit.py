"""InternViT-300M-448px (spec §2.1), with the parameter names of the official checkpoint.

Pre-norm transformer with layer scale, CLS token, learned 32×32 position table that is bicubically
resized to other patch grids. Attention uses torch SDPA (same math as the reference's flash-attn /
naive paths). Drop-path is an inference no-op and is therefore not modelled.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_vita import InternViTConfig


class InternVisionEmbeddings(nn.Module):
    def __init__(self, cfg: InternViTConfig) -> None:
        super().__init__()
        self.grid = cfg.image_size // cfg.patch_size
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, cfg.hidden_size))
        self.patch_embedding = nn.Conv2d(cfg.num_channels, cfg.hidden_size, cfg.patch_size, cfg.patch_size)
        self.position_embedding = nn.Parameter(torch.zeros(1, self.grid**2 + 1, cfg.hidden_size))

    def _patch_positions(self, height: int, width: int) -> torch.Tensor:
        """The 32×32 table resized (fp32 bicubic, align_corners=False) to the actual patch grid."""
        table = self.position_embedding[:, 1:]
        if (height, width) == (self.grid, self.grid):
            return table
        dim = table.shape[-1]
        grid = table.float().reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
        return grid.reshape(1, dim, height * width).permute(0, 2, 1).to(table.dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        batch, _, height, width = patches.shape
        patches = patches.flatten(2).transpose(1, 2)  # row-major patch order
        cls = self.class_embedding.expand(batch, -1, -1).to(patches.dtype)
        positions = torch.cat([self.position_embedding[:, :1], self._patch_positions(height, width)], dim=1)
        return torch.cat([cls, patches], dim=1) + positions.to(patches.dtype)


class InternAttention(nn.Module):
    def __init__(self, cfg: InternViTConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # split as [3, heads, head_dim]
        out = F.scaled_dot_product_attention(q, k, v)  # scale head_dim**-0.5, no mask
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class InternMLP(nn.Module):
    def __init__(self, cfg: InternViTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class InternVisionEncoderLayer(nn.Module):
    def __init__(self, cfg: InternViTConfig) -> None:
        super().__init__()
        self.attn = InternAttention(cfg)
        self.mlp = InternMLP(cfg)
        self.norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ls1 = nn.Parameter(cfg.initializer_factor * torch.ones(cfg.hidden_size))
        self.ls2 = nn.Parameter(cfg.initializer_factor * torch.ones(cfg.hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.mlp(self.norm2(x)) * self.ls2


class InternVisionEncoder(nn.Module):
    def __init__(self, cfg: InternViTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(InternVisionEncoderLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class InternVisionModel(nn.Module):
    """Returns the last layer's hidden states (N, 1 + patches, hidden); no final norm or pooler."""

    def __init__(self, cfg: InternViTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = InternVisionEmbeddings(cfg)
        self.encoder = InternVisionEncoder(cfg)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embeddings(pixel_values))
