"""A static KV cache of independent rows ("slots") for the fast engine, as a transformers `Cache`.

transformers' `StaticCache` keeps ONE write position for the whole batch (`cumulative_length`), so
every row must be aligned; a finished row can then only be refilled by re-padding the batch. Here
each slot has its own length: a row writes its keys at its own position, so a finished slot is
refilled with a new request while the others keep decoding (continuous batching), and a prefix
computed once is forked into several slots by copying its keys. Prefill (`vita15.prefill_step`, or
transformers' `Qwen2Model.forward` unchanged, with a 4-D mask that transformers passes through as
is) attends through `slot_attention`, registered through transformers' `AttentionInterface`: flash
attention aligned to its past for one long row; decode steps write through `vita15.decode_step`.

Masks are positional: key j of slot b is visible to the query at position p iff j <= p, because
a slot holds exactly its sequence in positions [0, length) (no holes, rotary position = index).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right
from transformers import AttentionInterface, Cache
from transformers.cache_utils import CacheLayerMixin
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

SLOT_ATTENTION = "vita_slots"


def slot_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                   lower_right_causal: bool = False, **kwargs):
    """transformers' SDPA attention, plus one case it cannot express: a single row appended to its own
    cached past (`lower_right_causal=True`). Query i then sees keys up to past + i, the causal mask
    aligned to the lower right, which flash attention computes without any mask tensor and with half
    the work of a dense mask (the mask transformers would build sends SDPA to a kernel that attends
    to every key and masks afterwards)."""
    if lower_right_causal:
        groups = query.shape[1] // key.shape[1]
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
        bias = causal_lower_right(query.shape[2], key.shape[2])
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, scale=scaling)
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  **kwargs)


AttentionInterface.register(SLOT_ATTENTION, slot_attention)
AttentionMaskInterface.register(SLOT_ATTENTION, sdpa_mask)  # other callers' 2-D masks build as for sdpa

@dataclass
class SlotPlan:
    """Where the next forward writes and what it reads.

    `write_rows` (R, 1) and `write_pos` (R, N) index the new tokens' slots and positions.
    `read_rows` None means the batch rows ARE slots 0..R-1 (decode: the keys are a view, no copy);
    otherwise the listed slots are gathered (prefill of arbitrary slots).
    """

    write_rows: torch.Tensor
    write_pos: torch.Tensor
    key_len: int
    read_rows: torch.Tensor | None = None


class SlotLayer(CacheLayerMixin):
    """One decoder layer's keys and values: (slots, kv_heads, capacity, head_dim), written in place."""

    is_compileable = True

    def __init__(self, owner: "SlotCache", keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.owner, self.keys, self.values = owner, keys, values
        self._keys_t, self._values_t = keys.permute(0, 2, 1, 3), values.permute(0, 2, 1, 3)  # (S, L, H, D) views
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Allocated up front by the owner (graph capture needs fixed addresses)."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        plan = self.owner.plan
        index = (plan.write_rows, plan.write_pos)
        self._keys_t.index_put_(index, key_states.transpose(1, 2).to(self.keys.dtype))
        self._values_t.index_put_(index, value_states.transpose(1, 2).to(self.values.dtype))
        keys, values = self.keys[:, :, : plan.key_len], self.values[:, :, : plan.key_len]
        if plan.read_rows is None:
            rows = plan.write_rows.shape[0]
            return keys[:rows], values[:rows]
        return keys.index_select(0, plan.read_rows), values.index_select(0, plan.read_rows)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.plan.key_len, 0

    def get_seq_length(self) -> int:
        return self.owner.plan.key_len

    def get_max_length(self) -> int:
        return self.keys.shape[2]


class SlotCache(Cache):
    """`slots` rows of `capacity` positions for every decoder layer of `config`."""

    def __init__(self, config, slots: int, capacity: int, device: torch.device, dtype: torch.dtype) -> None:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (slots, config.num_key_value_heads, capacity, head_dim)
        self.plan: SlotPlan | None = None
        layers = [SlotLayer(self, torch.zeros(shape, device=device, dtype=dtype),
                            torch.zeros(shape, device=device, dtype=dtype)) for _ in range(config.num_hidden_layers)]
        super().__init__(layers=layers)
        self.slots, self.capacity = slots, capacity

    @staticmethod
    def bytes_per_token(config, dtype: torch.dtype) -> int:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        size = torch.empty((), dtype=dtype).element_size()
        return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * size

    def copy_prefix(self, src: int, dst: torch.Tensor, length: int) -> None:
        """Fork: positions [0, length) of slot `src` into every slot in `dst` (a prefix computed once)."""
        for layer in self.layers:
            for buf in (layer.keys, layer.values):
                buf[dst, :, :length] = buf[src : src + 1, :, :length]
