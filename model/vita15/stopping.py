"""Stop rules of the reference decode loop, evaluated on token ids instead of decoded text.

The reference (upstream `KeywordsStoppingCriteria`, `inference.VitaInference.decode`) stops a row
after the token that is a stop id (`<|im_end|>` or a stop string that is one token), or after
which a stop string occurs in the decoded text of the last `STOP_WINDOW` tokens. Qwen2.5's
byte-level BPE decodes a token sequence to the UTF-8 text of its concatenated bytes (special
tokens as their literal content), so the same string test runs on the bytes of the window, read
from a per-token byte table: no tokenizer call per step, and only where a row has new tokens.
"""
from __future__ import annotations

from collections.abc import Sequence

from transformers.convert_slow_tokenizer import bytes_to_unicode

from .conversation import IM_END_ID

STOP_WINDOW = 16  # tokens decoded to look for stop strings (like KeywordsStoppingCriteria)


def stop_ids(tokenizer, stop: Sequence[str]) -> set[int]:
    """`<|im_end|>` plus every stop string that is exactly one token."""
    ids = {IM_END_ID}
    for s in stop:
        tok = tokenizer.convert_tokens_to_ids(s)
        if isinstance(tok, int) and tok >= 0 and tokenizer.convert_ids_to_tokens(tok) == s:
            ids.add(tok)
    return ids


class TokenBytes:
    """id -> the bytes the tokenizer's decoder emits for it (cached; special tokens as their text)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._unicode_to_byte = {ch: b for b, ch in bytes_to_unicode().items()}
        self._added = {i: t.content.encode("utf-8") for i, t in tokenizer.added_tokens_decoder.items()}
        self._cache: dict[int, bytes] = {}

    def __call__(self, token: int) -> bytes:
        found = self._cache.get(token)
        if found is None:
            found = self._added.get(token)
            if found is None:
                piece = self.tokenizer.convert_ids_to_tokens(token) or ""
                found = bytes(self._unicode_to_byte[ch] for ch in piece if ch in self._unicode_to_byte)
            self._cache[token] = found
        return found


class StopMatcher:
    """Where the reference rule stops a row, given its generated ids."""

    def __init__(self, tokenizer, stop: Sequence[str], token_bytes: TokenBytes | None = None) -> None:
        self.ids = stop_ids(tokenizer, stop)
        self.patterns = [s.encode("utf-8") for s in stop if s]
        self.token_bytes = token_bytes or TokenBytes(tokenizer)

    def first_stop(self, tokens: Sequence[int], start: int = 0) -> int | None:
        """Index of the first token at or after `start` that ends generation, or None."""
        for i in range(start, len(tokens)):
            if tokens[i] in self.ids:
                return i
            if self.patterns:
                window = b"".join(self.token_bytes(t) for t in tokens[max(0, i + 1 - STOP_WINDOW) : i + 1])
                if any(p in window for p in self.patterns):
                    return i
        return None
