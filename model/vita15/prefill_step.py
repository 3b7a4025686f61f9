"""The fast engine's prefill: Qwen2's decoder layers over the slot cache, with fused element-wise work.

Why: prefill is compute-bound, yet transformers' `Qwen2DecoderLayer` spends ~20% of MME's GPU time
outside the matrix products (reports/perf/profile-874223a/MME.txt): RMSNorm as seven fp32 element-wise
passes over (tokens, 3584), separate q/k/v and gate/up products, the rotary halves as their own
kernels and residual adds. This is the same layer with `F.rms_norm` (one kernel), q/k/v as one
product over the weights `decode_step.fuse_projections` concatenated in place, gate and up as two
products into contiguous outputs (so SiLU and the product run vectorised), the rotary sign folded
into sin, and the residual adds inside `addmm`. The tokens come packed (one
sequence after another, no padding) and attend through the cache's own `SlotLayer.attend` (flash
varlen over the cache in place), the very function transformers' path calls through the registered
`slot_attention`, so the keys written and read are those of transformers' path. Differences are
bf16 rounding only: RMSNorm multiplies by its weight before rounding once, and the fused products
may accumulate in another order.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .decode_step import mlp_residual, rotate, rotate_sign
from .kv_slots import SlotCache


class PrefillStep:
    """Final hidden states (after the last RMSNorm) of `x` appended to the cache rows in `cache.plan`."""

    def __init__(self, model) -> None:
        cfg = model.config
        self.llm = model.model
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self._signs: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def _sign(self, like: torch.Tensor) -> torch.Tensor:
        """[-1..., +1...] of a head, made once per device and dtype (no host copy per forward)."""
        key = (like.device, like.dtype)
        if key not in self._signs:
            self._signs[key] = rotate_sign(self.head_dim).to(like.device, like.dtype)
        return self._signs[key]

    def __call__(self, x: torch.Tensor, pos: torch.Tensor, cache: SlotCache) -> torch.Tensor:
        """`x` (1, T, hidden) packed embeddings at positions `pos` (1, T), appended as `cache.plan`
        says. Returns (1, T, hidden)."""
        llm = self.llm
        _, total, hidden = x.shape
        cos, sin = llm.rotary_emb(x, pos)
        cos, sin = cos[0, :, None], (sin[0] * self._sign(x))[:, None]  # (T, 1, D): broadcast over heads
        n_qk = (self.heads + self.kv_heads) * self.head_dim
        h = x[0]
        for layer, slot_layer in zip(llm.layers, cache.layers):
            attn, norm = layer.self_attn, layer.input_layernorm
            normed = F.rms_norm(h, (hidden,), norm.weight, norm.variance_epsilon)
            qkv = torch.addmm(attn.vita_qkv_bias, normed, attn.vita_qkv_weight.t())
            qk = rotate(qkv[:, :n_qk].view(total, self.heads + self.kv_heads, self.head_dim), cos, sin)
            values = qkv[None, :, n_qk:].view(1, total, self.kv_heads, self.head_dim)
            slot_layer.write(qk[None, :, self.heads :], values)
            out = slot_layer.attend(qk[:, : self.heads], attn.scaling)
            h = torch.addmm(h, out.reshape(total, -1), attn.o_proj.weight.t())
            h = mlp_residual(h, layer, fused_gate_up=False)
        final = llm.norm
        return F.rms_norm(h, (hidden,), final.weight, final.variance_epsilon)[None]
