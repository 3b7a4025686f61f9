"""A static KV cache of independent rows ("slots") for the fast engine, as a transformers `Cache`.

transformers' `StaticCache` keeps ONE write position for the whole batch (`cumulative_length`), so
every row must be aligned; a finished row can then only be refilled by re-padding the batch. Here
each slot has its own length: a row writes its keys at its own position, so a finished slot is
refilled with a new request while the others keep decoding (continuous batching), and a prefix
computed once is forked into several slots by copying its keys.

A forward's new tokens are packed, one sequence after another with no padding (`SlotPlan.packed`):
sequence r appends its tokens to slot `rows[r]` and attends to that slot's keys, its past included,
causally aligned to the end. On a GPU in bf16/fp16 that is one flash-attention varlen call per layer
that reads the keys in place (`seqused_k`: the cache is one (slots x capacity) block of positions,
sequence r starting at slot r's first position); elsewhere each sequence is one SDPA call under its
causal mask. The fused prefill (`vita15.prefill_step`) and transformers' `Qwen2Model.forward` (through
`slot_attention`, registered in transformers' `AttentionInterface`) both attend this way; decode steps
(`vita15.decode_step`) call `SlotLayer.flash` with one query per slot.

A slot holds exactly its sequence in positions [0, length) (no holes, rotary position = index).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, Cache
from transformers.cache_utils import CacheLayerMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

log = logging.getLogger(__name__)

SLOT_ATTENTION = "vita_slots"
FLASH_DTYPES = (torch.bfloat16, torch.float16)


@dataclass
class SlotPlan:
    """Where a forward's packed tokens go and what each of its sequences reads.

    Device tensors: `write_rows` / `write_pos` (1, T) the slot and position of every new token,
    `rows` (R,) each sequence's slot, `last` (R,) its last token's index in the pack, and for flash
    `cu_q` (R+1,) the sequences' token offsets, `cu_k` (R+1,) their slots' first flat cache position,
    `used` (R,) their key counts after the write. `spans` is the same on the host:
    (slot, first token, tokens, keys) per sequence.
    """

    write_rows: torch.Tensor
    write_pos: torch.Tensor
    rows: torch.Tensor
    last: torch.Tensor
    cu_q: torch.Tensor
    cu_k: torch.Tensor
    used: torch.Tensor
    max_q: int
    max_k: int
    spans: list[tuple[int, int, int, int]]

    @classmethod
    def packed(cls, slots: list[int], starts: list[int], lengths: list[int], capacity: int,
               device: torch.device) -> "SlotPlan":
        """Sequences of `lengths` tokens appended to `slots` (distinct) that hold `starts` positions.
        Built on the host and sent in one page-locked copy (no sync with the GPU)."""
        n = torch.tensor(lengths, dtype=torch.long)
        slot = torch.tensor(slots, dtype=torch.long)
        start = torch.tensor(starts, dtype=torch.long)
        cu = torch.zeros(len(lengths) + 1, dtype=torch.long)
        torch.cumsum(n, 0, out=cu[1:])
        total = int(cu[-1])
        first = torch.repeat_interleave(cu[:-1], n, output_size=total)
        pos = torch.arange(total) - first + torch.repeat_interleave(start, n, output_size=total)
        used = start + n
        cu_k = torch.cat([slot * capacity, torch.tensor([0])])
        host = torch.cat([torch.repeat_interleave(slot, n, output_size=total), pos, slot, cu[1:] - 1, cu, cu_k, used])
        if device.type == "cuda":
            host = host.pin_memory()
        meta = host.to(device, non_blocking=True)
        r = len(lengths)
        parts = meta.split([total, total, r, r, r + 1, r + 1, r])
        write_rows, write_pos, rows, last = parts[:4]
        cu_q, cu_k_d, used_d = (p.to(torch.int32) for p in parts[4:])
        spans = list(zip(slots, cu[:-1].tolist(), lengths, used.tolist()))
        return cls(write_rows[None], write_pos[None], rows, last, cu_q, cu_k_d, used_d, max(lengths),
                   int(used.max()), spans)


def flash_slots(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, cu_q: torch.Tensor,
                cu_k: torch.Tensor, used: torch.Tensor, max_q: int, max_k: int, scale: float) -> torch.Tensor:
    """Flash-attention varlen over the cache in place: `query` (T, H, D) packed, `keys`/`values` one
    layer's (slots, capacity, kv_heads, D) store; sequence r reads `used[r]` keys from flat position
    `cu_k[r]`, causal aligned to its end (query i of n sees keys < used - n + i + 1). GQA native."""
    slots, capacity, heads, dim = keys.shape
    return torch.ops.aten._flash_attention_forward(
        query, keys.view(slots * capacity, heads, dim), values.view(slots * capacity, heads, dim), cu_q, cu_k,
        max_q, max_k, 0.0, True, False, scale=scale, seqused_k=used)[0]


class SlotLayer(CacheLayerMixin):
    """One decoder layer's keys and values, stored (slots, capacity, kv_heads, head_dim) and written in
    place; `keys` / `values` are (slots, kv_heads, capacity, head_dim) views of the same memory."""

    is_compileable = True

    def __init__(self, owner: "SlotCache", k_store: torch.Tensor, v_store: torch.Tensor) -> None:
        super().__init__()
        self.owner, self.k_store, self.v_store = owner, k_store, v_store
        self.keys, self.values = k_store.permute(0, 2, 1, 3), v_store.permute(0, 2, 1, 3)
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Allocated up front by the owner (graph capture needs fixed addresses)."""

    def write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """New tokens' keys and values, (1, T, kv_heads, D), at the plan's slots and positions."""
        plan = self.owner.plan
        index = (plan.write_rows, plan.write_pos)
        self.k_store.index_put_(index, keys.to(self.k_store.dtype))
        self.v_store.index_put_(index, values.to(self.v_store.dtype))

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """transformers' hook: write (1, kv_heads, T, D) states; `slot_attention` then reads the store."""
        self.write(key_states.transpose(1, 2), value_states.transpose(1, 2))
        return self.keys, self.values

    def flash(self, query: torch.Tensor, cu_q: torch.Tensor, cu_k: torch.Tensor, used: torch.Tensor, max_q: int,
              max_k: int, scale: float) -> torch.Tensor | None:
        """`flash_slots` over this layer while the cache allows flash; None where it does not (or the
        kernel refuses now, which turns flash off for the cache): the caller then attends its own way."""
        if not self.owner.flash:
            return None
        try:
            return flash_slots(query, self.k_store, self.v_store, cu_q, cu_k, used, max_q, max_k, scale)
        except RuntimeError as exc:
            self.owner.no_flash(exc)
            return None

    def attend(self, query: torch.Tensor, scale: float) -> torch.Tensor:
        """(T, H, D) packed queries of the plan's sequences -> (T, H, D) attention outputs."""
        plan = self.owner.plan
        out = self.flash(query, plan.cu_q, plan.cu_k, plan.used, plan.max_q, plan.max_k, scale)
        if out is not None:
            return out
        out = torch.empty_like(query)
        for slot, first, n, used in plan.spans:
            q = query[first : first + n].transpose(0, 1)
            visible = torch.ones(n, used, dtype=torch.bool, device=query.device).tril(used - n)
            attended = F.scaled_dot_product_attention(q, self.keys[slot, :, :used], self.values[slot, :, :used],
                                                      attn_mask=visible, scale=scale, enable_gqa=True)
            out[first : first + n] = attended.transpose(0, 1)
        return out

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.plan.max_k, 0

    def get_seq_length(self) -> int:
        return self.owner.plan.max_k

    def get_max_length(self) -> int:
        return self.k_store.shape[1]


class SlotCache(Cache):
    """`slots` rows of `capacity` positions for every decoder layer of `config`.

    `flash`: attend with flash-attention varlen (a GPU in bf16/fp16); turned off, with a warning, by
    the first call the kernel refuses, after which every sequence is its own masked SDPA call."""

    def __init__(self, config, slots: int, capacity: int, device: torch.device, dtype: torch.dtype) -> None:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (slots, capacity, config.num_key_value_heads, head_dim)
        self.plan: SlotPlan | None = None
        self.flash = torch.device(device).type == "cuda" and dtype in FLASH_DTYPES
        layers = [SlotLayer(self, torch.zeros(shape, device=device, dtype=dtype),
                            torch.zeros(shape, device=device, dtype=dtype)) for _ in range(config.num_hidden_layers)]
        super().__init__(layers=layers)
        self.slots, self.capacity = slots, capacity

    def no_flash(self, exc: Exception) -> None:
        log.warning("flash attention over the slots unavailable (%s: %s); one SDPA call per sequence from now on",
                    type(exc).__name__, exc)
        self.flash = False

    @staticmethod
    def bytes_per_token(config, dtype: torch.dtype) -> int:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        size = torch.empty((), dtype=dtype).element_size()
        return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * size

    def copy_prefix(self, src: torch.Tensor, dst: torch.Tensor, length: int) -> None:
        """Fork: positions [0, length) of slot `src[i]` into slot `dst[i]` (prefixes computed once)."""
        for layer in self.layers:
            for store in (layer.k_store, layer.v_store):
                store[dst, :length] = store[src, :length]


def slot_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                   slot_cache: SlotCache | None = None, **kwargs):
    """transformers' SDPA attention, or, for a forward over a `SlotCache` (`slot_cache=`), the slot
    attention of the cache's plan: (1, H, T, D) packed queries -> (1, T, H, D)."""
    if slot_cache is not None:
        layer = slot_cache.layers[module.layer_idx]
        out = layer.attend(query[0].transpose(0, 1), scaling)
        return out[None], None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  **kwargs)


AttentionInterface.register(SLOT_ATTENTION, slot_attention)
AttentionMaskInterface.register(SLOT_ATTENTION, sdpa_mask)  # other callers' 2-D masks build as for sdpa
