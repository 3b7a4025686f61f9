"""The speech decoder's AR loop over a fixed-size KV cache, replayed as one CUDA graph on GPUs.

`LLM2TTSCodecAR.infer` runs six Llama layers' worth of small kernels per code through a growing
DynamicCache: on a GPU that step is bound by Python and kernel launches, not by arithmetic. Here
the prefix is encoded exactly as the reference does (same `encode_prefix`), its keys and values
are copied into preallocated buffers, and every AR step runs the decoder's own Llama layers on
one new position with an additive mask over the buffer. The step has fixed shapes, so on CUDA
it is captured once and replayed (one launch per code). Same layers, same inputs: on CPU the
codes equal the reference's (tested); on GPU they differ only by kernel rounding.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from vita15.tts.decoder import MAX_POSITIONS, LLM2TTSCodecAR, pick_token


class StaticKV:
    """Duck-typed `Cache` for the decoder layers: `update` writes one position and returns the buffers."""

    def __init__(self, n_layers: int, heads: int, head_dim: int, capacity: int, device, dtype) -> None:
        shape = (1, heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.position = torch.zeros(1, dtype=torch.long, device=device)  # slot written by the next update

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        self.keys[layer_idx].index_copy_(2, self.position, key)
        self.values[layer_idx].index_copy_(2, self.position, value)
        return self.keys[layer_idx], self.values[layer_idx]


class FastDecoder:
    """`infer` with the reference contract (codes until EOS / any special id / `max_tokens`)."""

    def __init__(self, decoder: LLM2TTSCodecAR, *, capacity: int = MAX_POSITIONS, cuda_graph: bool | None = None):
        self.decoder = decoder
        weight = decoder.embedding.weight
        self.device, self.dtype = weight.device, weight.dtype
        cfg = decoder.cfg
        self.capacity = capacity
        self.kv = StaticKV(cfg.num_blocks, cfg.attention_heads, cfg.attention_dim // cfg.attention_heads, capacity,
                           self.device, self.dtype)
        self.token = torch.zeros(1, 1, dtype=torch.long, device=self.device)
        self.mask = torch.zeros(1, 1, 1, capacity, dtype=self.dtype, device=self.device)
        self.logits: torch.Tensor | None = None
        self.use_graph = self.device.type == "cuda" if cuda_graph is None else cuda_graph
        self.graph: torch.cuda.CUDAGraph | None = None
        self.mode = "cuda-graph" if self.use_graph else "static-kv"  # what actually ran (capture may fail)

    @property
    def cfg(self):
        return self.decoder.cfg

    def _step(self) -> torch.Tensor:
        """One AR position through `layers` → `norm` → `out_fnn`, reading only the static tensors."""
        dec = self.decoder
        x = dec.embedding(self.token)
        positions = self.kv.position.view(1, 1)
        pos_emb = dec.rotary_emb(x, positions)
        for layer in dec.layers:
            x = layer(x, attention_mask=self.mask, position_ids=positions, past_key_values=self.kv, use_cache=True,
                      position_embeddings=pos_emb)
        return dec.out_fnn(dec.norm(x))[0, 0]

    def _capture(self) -> None:
        """Warm up on a side stream, then record `_step` once (buffers stay where they are)."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self._step()

    def _run_step(self) -> torch.Tensor:
        if not self.use_graph:
            return self._step()
        if self.graph is None:  # the warm-up steps write the same slot the replay writes: harmless
            try:
                self._capture()
            except RuntimeError as exc:  # an uncapturable kernel: keep the static cache, say why
                self.use_graph, self.graph, self.mode = False, None, f"static-kv (capture failed: {exc})"
                return self._step()
        self.graph.replay()
        return self.logits

    def _load_prefix(self, hidden: torch.Tensor, prefix: torch.Tensor | None) -> int:
        """Reference prefix encoding, copied into the buffers; returns the first AR position."""
        cache, offset = self.decoder.encode_prefix(hidden, prefix)
        length = cache.get_seq_length()
        if length >= self.capacity:
            raise ValueError(f"speech decoder prefix of {length} positions exceeds the cache of {self.capacity}")
        for i, layer in enumerate(cache.layers):
            self.kv.keys[i][:, :, :length] = layer.keys
            self.kv.values[i][:, :, :length] = layer.values
        self.mask.fill_(torch.finfo(self.dtype).min)
        self.mask[..., :length] = 0
        if offset:
            raise ValueError("prefix conditioning is not used by VITA-1.5 and not supported by the fast decoder")
        return length

    @torch.inference_mode()
    def infer(
        self,
        hidden: torch.Tensor,
        *,
        top_k: int = 2,
        greedy: bool = False,
        generator: torch.Generator | None = None,
        prefix: torch.Tensor | None = None,
        max_tokens: int = 1000,
    ) -> Iterator[int]:
        """Yield codec codes as `LLM2TTSCodecAR.infer` does; positions past the cache end the utterance."""
        position = self._load_prefix(hidden, prefix)
        token = self.decoder.sos_id
        for _ in range(min(max_tokens, self.capacity - position)):
            self.token.fill_(token)
            self.kv.position.fill_(position)
            self.mask[..., position] = 0
            logits = self._run_step()
            token = pick_token(logits, top_k=top_k, greedy=greedy, generator=generator)
            if token >= self.cfg.odim:
                return
            position += 1
            yield token
