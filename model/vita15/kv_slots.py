"""A static KV cache of independent rows ("slots") for the fast engine, as a transformers `Cache`.

transformers' `StaticCache` keeps ONE write position for the whole batch (`cumulative_length`), so
every row must be aligned; a finished row can then only be refilled by re-padding the batch. Here
each slot has its own length: a row writes its keys at its own position, so a finished slot is
refilled with a new request while the others keep decoding (continuous batching), and a prefix
computed once is written into every slot that shares it.

A forward's new tokens are packed, one sequence after another with no padding (`SlotPlan.packed`):
sequence r appends its tokens to its slot, and to its mirror slots (a shared prefix: the keys are
written to every slot of the group in the same pass, so the prefix, its forks and the questions'
suffixes are one forward), then attends to its slot's keys, its past included, causally aligned to
the end. Every write of a layer precedes its attention, so a sequence may read keys another
sequence of the same pack wrote. On a GPU in bf16/fp16 that is one flash-attention varlen call per
layer that reads the keys in place (`seqused_k`: the cache is one (slots x capacity) block of
positions, sequence r starting at its slot's first position), and sequences of `LONG_TOKENS` or
more one cuDNN call each (Hopper's faster kernel); elsewhere each sequence is one SDPA call under
its causal mask. The fused prefill (`vita15.prefill_step`) and transformers' `Qwen2Model.forward` (through
`slot_attention`, registered in transformers' `AttentionInterface`) both attend this way; decode steps
(`vita15.decode_step`) call `SlotLayer.flash` with one query per slot.

A slot holds exactly its sequence in positions [0, length) (no holes, rotary position = index).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AttentionInterface, Cache
from transformers.cache_utils import CacheLayerMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

log = logging.getLogger(__name__)

SLOT_ATTENTION = "vita_slots"
FLASH_DTYPES = (torch.bfloat16, torch.float16)
LONG_TOKENS = 2048  # sequences from this length attend by cuDNN on a GPU (shorter ones: flash varlen is faster)
LONG_BACKENDS = [SDPBackend.CUDNN_ATTENTION]
LONG_BUCKET = 256  # their query and key spans are rounded up to this (cuDNN plans per shape)


@dataclass
class SlotPlan:
    """Where a forward's packed tokens go and what each of its sequences reads.

    Device tensors: `positions` (1, T) every new token's rotary position; `write_rows` / `write_pos`
    (1, W) the slot and position of every write and `write_src` (W,) its token (None: token i is
    write i), where a sequence's keys go to its own slot and to its `mirrors` (the other slots of a
    shared prefix, written in the same pass instead of copied afterwards); `last` (R,) each sequence's
    last token; for flash `cu_q` (R+1,) the sequences' token offsets, `cu_k` (R+1,) their slots'
    first flat cache position, `used` (R,) their key counts after the write; `length_rows` /
    `length_values` every written slot's length after the forward. `spans` is the same on the host:
    (slot, first token, tokens, keys) per sequence, and `lengths` slot -> length after.
    The trailing `spans[n_flash:]` are long (>= `long_tokens`): a cache that attends long
    sequences by cuDNN (`SlotCache.long_tokens`) gives flash only the first `n_flash` sequences
    (`flash_tokens` tokens, at most `flash_max_q` / `flash_max_k`).
    """

    positions: torch.Tensor
    write_rows: torch.Tensor
    write_pos: torch.Tensor
    write_src: torch.Tensor | None
    last: torch.Tensor
    cu_q: torch.Tensor
    cu_k: torch.Tensor
    used: torch.Tensor
    length_rows: torch.Tensor
    length_values: torch.Tensor
    max_q: int
    max_k: int
    spans: list[tuple[int, int, int, int]]
    lengths: dict[int, int]
    n_flash: int
    flash_tokens: int
    flash_max_q: int
    flash_max_k: int

    @classmethod
    def packed(cls, slots: list[int], starts: list[int], lengths: list[int], capacity: int,
               device: torch.device, mirrors: list[list[int]] | None = None,
               long_tokens: int | None = None) -> "SlotPlan":
        """Sequences of `lengths` tokens appended at `starts` of `slots` (and of `mirrors[r]`, slots
        that take sequence r's keys too). A slot may recur (a prefix and, after it, a suffix). Built
        on the host and sent in one page-locked copy (no sync with the GPU)."""
        n = torch.tensor(lengths, dtype=torch.long)
        slot = torch.tensor(slots, dtype=torch.long)
        start = torch.tensor(starts, dtype=torch.long)
        cu = torch.zeros(len(lengths) + 1, dtype=torch.long)
        torch.cumsum(n, 0, out=cu[1:])
        total = int(cu[-1])
        first = torch.repeat_interleave(cu[:-1], n, output_size=total)
        pos = torch.arange(total) - first + torch.repeat_interleave(start, n, output_size=total)
        rows, wpos, src = [torch.repeat_interleave(slot, n, output_size=total)], [pos], [torch.arange(total)]
        after = {}
        for r, (s, a, k) in enumerate(zip(slots, starts, lengths)):
            for m in [s] + list(mirrors[r] if mirrors else ()):
                after[m] = max(after.get(m, 0), a + k)
            if mirrors and mirrors[r]:
                copies = torch.tensor(mirrors[r], dtype=torch.long)
                rows.append(torch.repeat_interleave(copies, k))
                wpos.append(pos[cu[r] : cu[r + 1]].repeat(len(copies)))
                src.append(torch.arange(int(cu[r]), int(cu[r + 1])).repeat(len(copies)))
        writes = sum(len(x) for x in rows)
        used = start + n
        cu_k = torch.cat([slot * capacity, torch.tensor([0])])
        length_rows, length_values = torch.tensor(list(after)), torch.tensor(list(after.values()))
        parts = [pos, torch.cat(rows), torch.cat(wpos), *([torch.cat(src)] if writes > total else []), cu[1:] - 1, cu,
                 cu_k, used, length_rows, length_values]
        host = torch.cat(parts)
        if device.type == "cuda":
            host = host.pin_memory()
        meta = list(host.to(device, non_blocking=True).split([len(p) for p in parts]))
        positions, write_rows, write_pos = meta[:3]
        write_src = meta.pop(3) if writes > total else None
        last, cu_q, cu_k_d, used_d, l_rows, l_values = meta[3:]
        cu_q, cu_k_d, used_d = (t.to(torch.int32) for t in (cu_q, cu_k_d, used_d))
        spans = list(zip(slots, cu[:-1].tolist(), lengths, used.tolist()))
        n_flash = len(spans)
        while long_tokens is not None and n_flash and lengths[n_flash - 1] >= long_tokens:
            n_flash -= 1
        return cls(positions[None], write_rows[None], write_pos[None], write_src, last, cu_q, cu_k_d, used_d,
                   l_rows, l_values, max(lengths), int(used.max()), spans, after, n_flash, int(cu[n_flash]),
                   max(lengths[:n_flash], default=0), int(used[:n_flash].max()) if n_flash else 0)


def flash_slots(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, cu_q: torch.Tensor,
                cu_k: torch.Tensor, used: torch.Tensor, max_q: int, max_k: int, scale: float) -> torch.Tensor:
    """Flash-attention varlen over the cache in place: `query` (T, H, D) packed, `keys`/`values` one
    layer's (slots, capacity, kv_heads, D) store; sequence r reads `used[r]` keys from flat position
    `cu_k[r]`, causal aligned to its end (query i of n sees keys < used - n + i + 1). GQA native."""
    slots, capacity, heads, dim = keys.shape
    return torch.ops.aten._flash_attention_forward(
        query, keys.view(slots * capacity, heads, dim), values.view(slots * capacity, heads, dim), cu_q, cu_k,
        max_q, max_k, 0.0, True, False, scale=scale, seqused_k=used)[0]


def end_aligned_causal(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, used: int, scale: float,
                       backends: list[SDPBackend]) -> torch.Tensor:
    """One sequence's (n, H, D) queries, the last n of its slot's first `used` positions, over the
    slot's keys/values (capacity, kv_heads, D), causal aligned to the end, by one SDPA call of
    `backends` (GQA native).

    SDPA's causal mask is aligned to the start, so the query is led by zero rows for the past, and
    query and keys both run on to a multiple of `LONG_BUCKET` (within the slot): rows past `used` are
    dropped and keys past `used` are never visible to the real queries, and cuDNN, which builds a
    plan per shape (tens of ms), sees few shapes. The extra rows buy the long-sequence kernel
    (cuDNN's ~1.8x FA2's speed on a 6,200-position causal block, reports/perf/probes/attention_probe.json)."""
    n = len(query)
    past, span = used - n, min(-(-used // LONG_BUCKET) * LONG_BUCKET, len(keys))
    padded = torch.cat([query.new_zeros(past, *query.shape[1:]), query, query.new_zeros(span - used, *query.shape[1:])])
    with sdpa_kernel(backends):
        out = F.scaled_dot_product_attention(padded.transpose(0, 1)[None], keys[:span].transpose(0, 1)[None],
                                             values[:span].transpose(0, 1)[None], is_causal=True, scale=scale,
                                             enable_gqa=True)
    return out[0, :, past:used].transpose(0, 1)


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
        """New tokens' keys and values, (1, T, kv_heads, D), at the plan's slots and positions (mirrors
        included)."""
        plan = self.owner.plan
        index = (plan.write_rows, plan.write_pos)
        if plan.write_src is not None:
            keys, values = keys[:, plan.write_src], values[:, plan.write_src]
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
        """(T, H, D) packed queries of the plan's sequences -> (T, H, D) attention outputs: long
        sequences by cuDNN where the cache says so, the rest by flash, else one masked SDPA call each."""
        plan = self.owner.plan
        n = plan.n_flash
        if self.owner.long_tokens is not None and n < len(plan.spans):
            tail = self._long(query, plan.spans[n:], scale)
            if tail is not None:
                return torch.cat([self._short(query[: plan.flash_tokens], n, scale), tail]) if n else tail
        return self._short(query, len(plan.spans), scale)

    def _short(self, query: torch.Tensor, n: int, scale: float) -> torch.Tensor:
        """The plan's first `n` sequences (all of `query`) by flash, else one masked SDPA call each."""
        plan = self.owner.plan
        if n == len(plan.spans):
            meta = (plan.cu_q, plan.cu_k, plan.used, plan.max_q, plan.max_k)
        else:
            meta = (plan.cu_q[: n + 1], plan.cu_k[: n + 1], plan.used[:n], plan.flash_max_q, plan.flash_max_k)
        out = self.flash(query, *meta, scale)
        return out if out is not None else self._masked(query, plan.spans[:n], scale)

    def _long(self, query: torch.Tensor, spans: list[tuple[int, int, int, int]], scale: float) -> torch.Tensor | None:
        """The trailing long sequences' outputs, one cuDNN call each; None (and cuDNN off for the
        cache) if the kernel refuses."""
        try:
            return torch.cat([end_aligned_causal(query[first : first + n], self.k_store[slot], self.v_store[slot],
                                                 used, scale, LONG_BACKENDS) for slot, first, n, used in spans])
        except RuntimeError as exc:
            self.owner.no_long_kernel(exc)
            return None

    def _masked(self, query: torch.Tensor, spans: list[tuple[int, int, int, int]], scale: float) -> torch.Tensor:
        """Each sequence one SDPA call under its end-aligned causal mask (CPU, fp32, no flash)."""
        out = torch.empty_like(query)
        for slot, first, n, used in spans:
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

    `flash`: attend with flash-attention varlen (a GPU in bf16/fp16); `long_tokens`: sequences at
    least this long attend by cuDNN there (None: never). Each is turned off, with a warning, by the
    first call its kernel refuses; without either every sequence is its own masked SDPA call."""

    def __init__(self, config, slots: int, capacity: int, device: torch.device, dtype: torch.dtype) -> None:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (slots, capacity, config.num_key_value_heads, head_dim)
        self.plan: SlotPlan | None = None
        self.device = torch.device(device)
        self.flash = self.device.type == "cuda" and dtype in FLASH_DTYPES
        self.long_tokens: int | None = LONG_TOKENS if self.flash else None
        layers = [SlotLayer(self, torch.zeros(shape, device=device, dtype=dtype),
                            torch.zeros(shape, device=device, dtype=dtype)) for _ in range(config.num_hidden_layers)]
        super().__init__(layers=layers)
        self.slots, self.capacity = slots, capacity

    def pack(self, slots: list[int], starts: list[int], lengths: list[int],
             mirrors: list[list[int]] | None = None) -> SlotPlan:
        """`SlotPlan.packed` for this cache, set as the plan of the next forward."""
        self.plan = SlotPlan.packed(slots, starts, lengths, self.capacity, self.device, mirrors, self.long_tokens)
        return self.plan

    def no_flash(self, exc: Exception) -> None:
        log.warning("flash attention over the slots unavailable (%s: %s); one SDPA call per sequence from now on",
                    type(exc).__name__, exc)
        self.flash = False

    def no_long_kernel(self, exc: Exception) -> None:
        log.warning("cuDNN attention for long sequences unavailable (%s: %s); flash attention for all from now on",
                    type(exc).__name__, exc)
        self.long_tokens = None

    @staticmethod
    def bytes_per_token(config, dtype: torch.dtype) -> int:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        size = torch.empty((), dtype=dtype).element_size()
        return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * size


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
