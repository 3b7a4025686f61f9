"""The fast engine's prefill: Qwen2's decoder layers over the slot cache, with fused element-wise work.

Why: prefill is compute-bound, yet transformers' `Qwen2DecoderLayer` spends ~20% of MME's GPU time
outside the matrix products (reports/perf/profile/MME.txt): RMSNorm as seven fp32 element-wise
passes over (tokens, 3584), separate q/k/v and gate/up products, the rotary halves as their own
kernels and residual adds. This is the same layer with `F.rms_norm` (one kernel), q/k/v and
gate/up each one product over the weights `decode_step.fuse_projections` concatenated in place,
the rotary sign folded into sin, and the residual adds inside `addmm`. Attention is the very
function transformers calls through the registered `slot_attention` (flash aligned to the past for
one long row, SDPA under a mask for batches), over the same `SlotCache`, so the keys written and
read are those of transformers' path. Differences are bf16 rounding only: RMSNorm multiplies by
its weight before rounding once, and the fused products may accumulate in another order.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .decode_step import mlp_residual, rotate, rotate_sign
from .kv_slots import SlotCache, slot_attention


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

    def __call__(self, x: torch.Tensor, pos: torch.Tensor, cache: SlotCache, mask: torch.Tensor | None,
                 lower_right_causal: bool) -> torch.Tensor:
        """`x` (R, N, hidden) embeddings at positions `pos` (R, N); `mask` (R, 1, N, keys) bool, or None
        with `lower_right_causal` for one unpadded row. Returns (R, N, hidden)."""
        llm, plan = self.llm, cache.plan
        rows, width, hidden = x.shape
        cos, sin = llm.rotary_emb(x, pos)
        cos, sin = cos[:, :, None], (sin * self._sign(x))[:, :, None]  # broadcast over heads
        n_qk = (self.heads + self.kv_heads) * self.head_dim
        h = x.reshape(rows * width, hidden)
        for layer, slot_layer in zip(llm.layers, cache.layers):
            attn, norm = layer.self_attn, layer.input_layernorm
            normed = F.rms_norm(h, (hidden,), norm.weight, norm.variance_epsilon)
            qkv = torch.addmm(attn.vita_qkv_bias, normed, attn.vita_qkv_weight.t()).view(rows, width, -1)
            qk = rotate(qkv[..., :n_qk].view(rows, width, self.heads + self.kv_heads, self.head_dim), cos, sin)
            index = (plan.write_rows, plan.write_pos)
            slot_layer._keys_t.index_put_(index, qk[:, :, self.heads :])
            slot_layer._values_t.index_put_(index, qkv[..., n_qk:].view(rows, width, self.kv_heads, self.head_dim))
            keys = slot_layer.keys[:, :, : plan.key_len].index_select(0, plan.read_rows)
            values = slot_layer.values[:, :, : plan.key_len].index_select(0, plan.read_rows)
            out, _ = slot_attention(attn, qk[:, :, : self.heads].transpose(1, 2), keys, values, mask,
                                    scaling=attn.scaling, lower_right_causal=lower_right_causal)
            h = torch.addmm(h, out.reshape(rows * width, -1), attn.o_proj.weight.t())
            h = mlp_residual(h, layer)
        final = llm.norm
        return F.rms_norm(h, (hidden,), final.weight, final.variance_epsilon).view(rows, width, hidden)
