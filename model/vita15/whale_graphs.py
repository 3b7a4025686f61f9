"""The Whale audio encoder replayed from CUDA graphs, one graph per padded (batch, frames) shape.

Why: eager, one batch of 16 clips launches ~1,000 small kernels (24 blocks of relative-position
attention, LayerNorms, convolutions): 39 ms of host time for 16 ms of GPU time on an H200
(reports/perf/probes/parts.txt). The engine's one thread launches every kernel of a run, so on
ASR suites that host time, not the GPU, set the pace. A replay costs one launch. Captured under
`audio_whale.fused_attention`, each block's relative-position attention is one SDPA call instead of
six passes over its (B, H, T, T) scores.

The fast engine pads Whale batches to a fixed row count and frame counts to multiples of
`AUDIO_FRAMES` (`engine._bucketed_audio`), so a few graphs cover a suite. The encoder is
padding-invariant, so a graph gives the eager encoder's values up to the rounding of the fused
attention. Not used for the `dynamic_chunk` mask mode, whose random chunk draw would be frozen into
the graph.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .audio_whale import fused_attention
from .cuda_graphs import capture, warm_up

log = logging.getLogger(__name__)


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    features: torch.Tensor  # static inputs, filled before each replay
    lengths: torch.Tensor
    embeds: torch.Tensor  # static output, overwritten by the next replay


class WhaleGraphs:
    """`encoder(features, lengths)` for padded CPU batches, from graphs captured on first use."""

    def __init__(self, encoder, device: torch.device, dtype: torch.dtype, stats: dict | None = None) -> None:
        self.encoder, self.device, self.dtype = encoder, device, dtype
        self.enabled = device.type == "cuda" and encoder.cfg.mask_mode != "dynamic_chunk"
        self.captured: dict[tuple[int, int], _Captured | None] = {}
        self.pool = None
        self.stats = stats if stats is not None else {}  # whale_graphs, whale_graph_failures, whale_replays
        for key in ("whale_graphs", "whale_graph_failures", "whale_replays"):
            self.stats.setdefault(key, 0)

    @property
    def failures(self) -> int:
        return self.stats["whale_graph_failures"]

    def __call__(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        """(B, T, D) page-locked fbank + (B,) frame counts → (B, T_llm, hidden) embeddings on the GPU
        (a fresh tensor), or None where no graph can be used (then run the encoder eagerly)."""
        if not self.enabled:
            return None
        key = (features.shape[0], features.shape[1])
        if key not in self.captured:
            self.captured[key] = self._capture(features.shape)
        entry = self.captured[key]
        if entry is None:
            return None
        entry.features.copy_(features, non_blocking=True)
        entry.lengths.copy_(lengths, non_blocking=True)
        entry.graph.replay()
        self.stats["whale_replays"] += 1
        return entry.embeds.clone()

    def _capture(self, shape: torch.Size) -> _Captured | None:
        features = torch.zeros(shape, device=self.device, dtype=self.dtype)
        lengths = torch.full((shape[0],), shape[1], device=self.device, dtype=torch.long)
        try:
            with fused_attention():
                warm_up(self.device, lambda: [self.encoder(features, lengths) for _ in range(2)])
                graph = torch.cuda.CUDAGraph()
                if self.pool is None:
                    self.pool = torch.cuda.graph_pool_handle()
                embeds, _ = capture(graph, self.pool, self.device, lambda: self.encoder(features, lengths))
        except Exception as exc:  # an optimisation only: this shape runs eagerly from now on
            log.warning("Whale CUDA graph capture failed for %s (%s); encoding it eagerly", tuple(shape), exc)
            self.stats["whale_graph_failures"] += 1
            return None
        self.stats["whale_graphs"] += 1
        return _Captured(graph, features, lengths, embeds)
