"""``LLM2TTSCodecAR``: the VITA-1.5 speech decoder (text embeddings → TiCodec codes).

A non-autoregressive Llama stack (``layers_pre_nn``) refines the LLM token embeddings; the
autoregressive stack (``layers``) first encodes ``[BOS; refined]`` bidirectionally into a KV cache,
then emits codec codes one at a time (top-k multinomial sampling, or greedy for tests).
Parameter names follow the released ``vita_tts_ckpt/decoder/final.pt``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import LlamaConfig
from transformers.cache_utils import DynamicCache
from transformers.models.llama.modeling_llama import (
    LlamaDecoderLayer,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)

MAX_POSITIONS = 2048


@dataclass(frozen=True)
class DecoderConfig:
    """Architecture values of ``decoder/model.json`` (``[idim, odim, args]``)."""

    idim: int = 896
    odim: int = 1024
    attention_dim: int = 896
    attention_heads: int = 14
    linear_units: int = 4864
    num_blocks: int = 4
    encoder_output_dim: int = 896
    kv_cache_prefix_finetune: int = 1
    dropout_rate: float = 0.1

    @classmethod
    def from_model_json(cls, conf: Any) -> DecoderConfig:
        """Parse the upstream ``[idim, odim, args]`` triple (argparse-style ``args`` keys)."""
        if not (isinstance(conf, list) and len(conf) == 3 and isinstance(conf[2], dict)):
            raise ValueError("decoder model.json must be a list [idim, odim, args]")
        idim, odim, args = conf
        return cls(
            idim=int(args.get("idim", idim)),
            odim=int(args.get("odim", odim)),
            attention_dim=int(args["transformer_attention_dim"]),
            attention_heads=int(args["transformer_attention_heads"]),
            linear_units=int(args["transformer_linear_units"]),
            num_blocks=int(args["transformer_num_blocks"]),
            encoder_output_dim=int(args["encoder_output_dim"]),
            kv_cache_prefix_finetune=int(args.get("kv_cache_prefix_finetune", 0)),
            dropout_rate=float(args.get("transformer_dropout_rate", 0.1)),
        )

    def to_model_json(self) -> list[Any]:
        """Inverse of :meth:`from_model_json`, with the upstream argument names."""
        args = {
            "idim": self.idim,
            "odim": self.odim,
            "encoder_pre_norm_type": "ln",
            "encoder_drop_rate": 0.1,
            "encoder_criterion": "ce",
            "encoder_upsample_rate": 1,
            "encoder_output_dim": self.encoder_output_dim,
            "kv_cache_prefix_finetune": self.kv_cache_prefix_finetune,
            "transformer_attention_dim": self.attention_dim,
            "transformer_attention_heads": self.attention_heads,
            "transformer_linear_units": self.linear_units,
            "transformer_num_blocks": self.num_blocks,
            "transformer_dropout_rate": self.dropout_rate,
        }
        return [self.idim, self.odim, args]


def _llama_config(cfg: DecoderConfig) -> LlamaConfig:
    """Llama defaults as upstream: RMSNorm eps 1e-6, RoPE theta 1e4, SiLU, no bias, eager attention."""
    config = LlamaConfig(
        vocab_size=cfg.odim + 4,
        hidden_size=cfg.attention_dim,
        intermediate_size=cfg.linear_units,
        num_hidden_layers=cfg.num_blocks,
        num_attention_heads=cfg.attention_heads,
        num_key_value_heads=cfg.attention_heads,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=cfg.odim + 1,
        eos_token_id=cfg.odim + 2,
        pad_token_id=cfg.odim + 3,
        attention_dropout=cfg.dropout_rate,
    )
    config._attn_implementation = "eager"
    return config


def _stack(config: LlamaConfig, n: int) -> nn.ModuleList:
    return nn.ModuleList(LlamaDecoderLayer(config, i) for i in range(n))


def _run_stack(
    layers: nn.ModuleList,
    rotary: LlamaRotaryEmbedding,
    hidden: torch.Tensor,
    start: int,
    cache: DynamicCache | None,
) -> torch.Tensor:
    """Run Llama layers with positions ``start..`` and no mask (all-visible, as upstream)."""
    positions = torch.arange(start, start + hidden.shape[1], device=hidden.device).unsqueeze(0)
    pos_emb = rotary(hidden, positions)
    for layer in layers:
        hidden = layer(
            hidden,
            attention_mask=None,
            position_ids=positions,
            past_key_values=cache,
            use_cache=cache is not None,
            position_embeddings=pos_emb,
        )
    return hidden


def pick_token(
    logits: torch.Tensor, *, top_k: int, greedy: bool, generator: torch.Generator | None
) -> int:
    """Greedy argmax, or the reference top-k renormalised multinomial draw over all classes."""
    if greedy:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float(), dim=-1)
    top_probs, top_idx = torch.topk(probs, top_k)
    probs = torch.zeros_like(probs).scatter_(0, top_idx, top_probs)
    probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))


class LLM2TTSCodecAR(nn.Module):
    """NAR pre-net + AR Llama decoder producing codec codes 0..odim-1 (ids odim.. are specials)."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        if cfg.idim != cfg.attention_dim:
            raise ValueError(f"decoder idim ({cfg.idim}) must equal attention_dim ({cfg.attention_dim})")
        self.cfg = cfg
        config = _llama_config(cfg)
        self.embedding = nn.Embedding(cfg.odim + 4, cfg.idim, padding_idx=self.pad_id)
        self.layers_pre_nn = _stack(config, cfg.num_blocks // 2)
        self.rotary_emb_pre_nn = LlamaRotaryEmbedding(config=config)
        self.layers = _stack(config, cfg.num_blocks)
        self.norm = LlamaRMSNorm(cfg.attention_dim, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.dropout = nn.Dropout(p=cfg.dropout_rate)
        self.out_fnn = nn.Linear(cfg.encoder_output_dim, cfg.odim + 4)
        if cfg.kv_cache_prefix_finetune:
            self.layers_prefix = _stack(config, cfg.num_blocks)
            self.rotary_emb_prefix = LlamaRotaryEmbedding(config=config)

    @property
    def bos_id(self) -> int:
        return self.cfg.odim

    @property
    def sos_id(self) -> int:
        return self.cfg.odim + 1

    @property
    def eos_id(self) -> int:
        return self.cfg.odim + 2

    @property
    def pad_id(self) -> int:
        return self.cfg.odim + 3

    def _embed_ids(self, token_id: int, device: torch.device) -> torch.Tensor:
        return self.embedding(torch.full((1, 1), token_id, dtype=torch.long, device=device))

    def encode_prefix(
        self, hidden: torch.Tensor, prefix: torch.Tensor | None = None
    ) -> tuple[DynamicCache, int]:
        """Fill the KV cache: optional prefix stack, then ``[BOS; pre_nn(hidden)]`` through ``layers``.

        Returns the cache and the number of cached prefix positions to subtract from RoPE positions.
        """
        if hidden.dim() != 3 or hidden.shape[0] != 1 or hidden.shape[-1] != self.cfg.idim:
            raise ValueError(f"decoder input must be (1, L, {self.cfg.idim}), got {tuple(hidden.shape)}")
        hidden = hidden.to(self.embedding.weight.dtype)
        hidden = _run_stack(self.layers_pre_nn, self.rotary_emb_pre_nn, hidden, 0, None)
        hidden = torch.cat([self._embed_ids(self.bos_id, hidden.device), hidden], dim=1)
        cache = DynamicCache()
        offset = 0
        if prefix is not None and self.cfg.kv_cache_prefix_finetune:
            prefix = prefix.to(hidden.dtype)
            _run_stack(self.layers_prefix, self.rotary_emb_prefix, prefix, 0, cache)
            offset = prefix.shape[1]
        _run_stack(self.layers, self.rotary_emb, hidden, 0, cache)
        return cache, offset

    def step_logits(self, token_id: int, cache: DynamicCache, offset: int) -> torch.Tensor:
        """One AR step: logits over the ``odim + 4`` classes for the token after ``token_id``."""
        x = self._embed_ids(token_id, self.embedding.weight.device)
        x = _run_stack(self.layers, self.rotary_emb, x, cache.get_seq_length() - offset, cache)
        return self.out_fnn(self.norm(x))[0, 0]

    def forward(self, hidden: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T+1, odim+4) for codes (B, T) given text embeddings (B, L, idim).

        Uses the training mask: ``[BOS; text]`` all-visible, ``[SOS; codes]`` see the whole text
        part and are causal among themselves. Row ``j`` predicts code ``j`` (row ``T``: EOS).
        """
        hidden = _run_stack(self.layers_pre_nn, self.rotary_emb_pre_nn, hidden, 0, None)
        bos = self.embedding(torch.full_like(codes[:, :1], self.bos_id))
        sos = self.embedding(torch.full_like(codes[:, :1], self.sos_id))
        x = torch.cat([bos, hidden, sos, self.embedding(codes)], dim=1)
        n_text, n = hidden.shape[1] + 1, x.shape[1]
        visible = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        visible[:n_text, :n_text] = True
        mask = torch.zeros(n, n, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(~visible, torch.finfo(x.dtype).min)[None, None]
        positions = torch.arange(n, device=x.device).unsqueeze(0)
        pos_emb = self.rotary_emb(x, positions)
        for layer in self.layers:
            x = layer(x, attention_mask=mask, position_ids=positions, position_embeddings=pos_emb)
        return self.out_fnn(self.norm(x[:, n_text:]))

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
        """Yield codec codes until EOS or ``max_tokens`` (§6.2; VITA-1.5 uses top_k=2, prefix=None).

        Any other special id (BOS/SOS/PAD) also ends the utterance: it has no codec entry, and
        upstream would crash on it in the codec instead.
        """
        cache, offset = self.encode_prefix(hidden, prefix)
        token = self.sos_id
        for _ in range(max_tokens):
            logits = self.step_logits(token, cache, offset)
            token = pick_token(logits, top_k=top_k, greedy=greedy, generator=generator)
            if token >= self.cfg.odim:
                return
            yield token

    def generate(self, hidden: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """All codes of :meth:`infer` as a 1-D long tensor."""
        return torch.tensor(list(self.infer(hidden, **kwargs)), dtype=torch.long)
