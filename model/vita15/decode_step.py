"""One Qwen2 decode step for a batch of slots, with few kernels, for CUDA-graph replay.

A decode step reads every weight once (15 GB for VITA-1.5's LLM, ~3.2 ms of H200 bandwidth) and
launches transformers' `Qwen2DecoderLayer` code as ~45 small kernels per layer (RMSNorm as seven
element-wise ops, separate q/k/v and gate/up products, the rotary halves, `repeat_kv` copies of
the whole cache under a mask). Replayed from a CUDA graph each small kernel still costs a few
microseconds, ~3 ms per step for 28 layers. This step is the same arithmetic in ~16 kernels:
fused RMSNorm (`F.rms_norm`), q/k/v and gate/up each one product over weights concatenated in
place (`fuse_projections`), the residual adds folded into `addmm`, the query heads of a kv head
read in place by one flash-attention varlen call per layer (`kv_slots.SlotLayer.flash`: each row's keys
up to its own length, no mask; where flash is unavailable, the query heads of a kv head folded into
one SDPA call under one additive mask for all layers). `rotate` and `mlp_residual` are shared with
the prefill (`vita15.prefill_step`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .kv_slots import SlotCache


@torch.no_grad()
def fuse_projections(llm) -> bool:
    """Concatenate q/k/v (and gate/up) weights of every layer into one tensor each, in place.

    The modules' parameters become row blocks (contiguous views) of the fused tensors, so the
    model computes exactly as before and no memory is added. The fused tensors are non-persistent
    buffers (`vita_qkv_weight`, `vita_qkv_bias`, `vita_gate_up`): not in the state dict, moved by
    `.to()`. A `.to()` un-shares them from the parameters; calling this again re-fuses (and says so).
    """
    changed = False
    for layer in llm.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if not _fused(attn.q_proj.weight, getattr(attn, "vita_qkv_weight", None)):
            projections = (attn.q_proj, attn.k_proj, attn.v_proj)
            weight = torch.cat([p.weight for p in projections])
            bias = torch.cat([p.bias for p in projections])
            _repoint(projections, weight, bias)
            attn.register_buffer("vita_qkv_weight", weight, persistent=False)
            attn.register_buffer("vita_qkv_bias", bias, persistent=False)
            changed = True
        if not _fused(mlp.gate_proj.weight, getattr(mlp, "vita_gate_up", None)):
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
            _repoint((mlp.gate_proj, mlp.up_proj), gate_up, None)
            mlp.register_buffer("vita_gate_up", gate_up, persistent=False)
            changed = True
    return changed


def _fused(first: torch.Tensor, fused: torch.Tensor | None) -> bool:
    return fused is not None and first.dtype == fused.dtype and first.data_ptr() == fused.data_ptr()


def _repoint(modules, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    start = 0
    for module in modules:
        rows = module.weight.shape[0]
        module.weight = torch.nn.Parameter(weight[start : start + rows], requires_grad=False)
        if bias is not None:
            module.bias = torch.nn.Parameter(bias[start : start + rows], requires_grad=False)
        start += rows


def rotate_sign(head_dim: int) -> torch.Tensor:
    """[-1..., +1...] over a head: `rotate_half(x) * sin == swap_halves(x) * (sign * sin)`, exactly."""
    half = head_dim // 2
    return torch.cat([-torch.ones(half), torch.ones(half)])


def rotate(qk: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """transformers' `q * cos + rotate_half(q) * sin` in the same bf16 operations, with the sign of
    `rotate_half` folded into `signed_sin` (`sin * [-1..., +1...]`, exact): one op fewer per tensor."""
    half = qk.shape[-1] // 2
    return qk * cos + torch.cat((qk[..., half:], qk[..., :half]), dim=-1) * signed_sin


def mlp_residual(h: torch.Tensor, layer, fused_gate_up: bool = True) -> torch.Tensor:
    """h + MLP(post-attention RMSNorm(h)) for (rows, hidden) `h`, the residual add inside the down
    projection's `addmm`. Gate/up as one product (`fused_gate_up`, decode: one weight read, one
    launch), or as two products into contiguous outputs (prefill: halves of the fused output are
    strided, which sends SiLU and the product to PyTorch's generic element-wise kernels, ~13% of
    MME's GPU time in reports/perf/profile/MME.txt, instead of its vectorised ones)."""
    mlp, norm = layer.mlp, layer.post_attention_layernorm
    x = F.rms_norm(h, (h.shape[-1],), norm.weight, norm.variance_epsilon)
    if fused_gate_up:
        gate_up = x @ mlp.vita_gate_up.t()
        inner = gate_up.shape[-1] // 2
        gate, up = gate_up[:, :inner], gate_up[:, inner:]
    else:
        gate, up = x @ mlp.gate_proj.weight.t(), x @ mlp.up_proj.weight.t()
    return torch.addmm(h, F.silu(gate) * up, mlp.down_proj.weight.t())


class DecodeStep:
    """logits for one new token per slot in [0, batch), writing its keys into the slot cache."""

    def __init__(self, model) -> None:
        llm = model.model
        cfg = model.config
        self.model, self.llm = model, llm
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.hidden = cfg.hidden_size
        self.scaling = self.head_dim ** -0.5
        self.sign = rotate_sign(self.head_dim)

    def prepare(self) -> bool:
        """(Re-)fuse the projections and place the constants before decoding; True if weights moved
        (captured graphs then point at old memory)."""
        changed = fuse_projections(self.llm)
        weight = self.llm.embed_tokens.weight
        self.sign = self.sign.to(weight.device, weight.dtype)
        return changed

    def __call__(self, ids: torch.Tensor, pos: torch.Tensor, cache: SlotCache, write_rows: torch.Tensor,
                 key_len: int) -> torch.Tensor:
        """`ids`, `pos` (B,) for slots [0, B), `write_rows` (B, 1) = those slots, keys read up to
        `key_len`; returns (B, hidden) final states."""
        llm, batch = self.llm, ids.shape[0]
        h = llm.embed_tokens(ids)
        cos, sin = llm.rotary_emb(h[:, None], pos[:, None])  # (B, 1, D): broadcast over heads
        sin = sin * self.sign  # rotate_half(x) * sin == swap_halves(x) * (sign * sin), exactly
        n_q, n_qk = self.heads * self.head_dim, (self.heads + self.kv_heads) * self.head_dim
        attention = _DecodeAttention(cache, pos, key_len, self.scaling, self.kv_heads)
        for layer, slot_layer in zip(llm.layers, cache.layers):
            attn = layer.self_attn
            x = F.rms_norm(h, (self.hidden,), layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon)
            qkv = torch.addmm(attn.vita_qkv_bias, x, attn.vita_qkv_weight.t())
            qk = rotate(qkv[:, :n_qk].view(batch, self.heads + self.kv_heads, self.head_dim), cos, sin)
            slot_layer.k_store.index_put_((write_rows, pos[:, None]), qk[:, None, self.heads :])
            slot_layer.v_store.index_put_((write_rows, pos[:, None]), qkv[:, None, n_qk:].view(batch, 1, self.kv_heads,
                                                                                               self.head_dim))
            out = attention(qk[:, : self.heads], slot_layer)
            h = mlp_residual(torch.addmm(h, out.reshape(batch, n_q), attn.o_proj.weight.t()), layer)
        return F.rms_norm(h, (self.hidden,), llm.norm.weight, llm.norm.variance_epsilon)


class _DecodeAttention:
    """One query per slot [0, B) at `pos` over its keys [0, pos]: flash varlen in place, or SDPA under
    an additive mask (built once per step, for all layers) where flash is unavailable."""

    def __init__(self, cache: SlotCache, pos: torch.Tensor, key_len: int, scale: float, kv_heads: int) -> None:
        self.pos, self.key_len, self.scale, self.kv_heads = pos, key_len, scale, kv_heads
        self.mask: torch.Tensor | None = None
        batch = pos.shape[0]
        self.cu_q = torch.arange(batch + 1, dtype=torch.int32, device=pos.device)
        self.cu_k = self.cu_q * cache.capacity
        self.used = (pos + 1).clamp(max=key_len).to(torch.int32)  # idle rows may be longer

    def __call__(self, q: torch.Tensor, layer) -> torch.Tensor:
        """(B, H, D) queries -> (B, H, D)."""
        out = layer.flash(q, self.cu_q, self.cu_k, self.used, 1, self.key_len, self.scale)
        if out is not None:
            return out
        batch, heads, dim = q.shape
        if self.mask is None:
            visible = torch.arange(self.key_len, device=q.device)[None, :] <= self.pos[:, None]
            self.mask = torch.zeros(visible.shape, dtype=q.dtype, device=q.device).masked_fill_(
                ~visible, float("-inf"))[:, None, None, :]
        grouped = q.reshape(batch, self.kv_heads, heads // self.kv_heads, dim)
        out = F.scaled_dot_product_attention(grouped, layer.keys[:batch, :, : self.key_len],
                                             layer.values[:batch, :, : self.key_len], attn_mask=self.mask,
                                             scale=self.scale)
        return out.reshape(batch, heads, dim)
