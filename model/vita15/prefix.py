"""Shared prefixes of spliced requests, found from token ids and media identities (no tensors).

A request's spliced sequence is a list of atoms: a text token id (one position) or a media block
(`(key, length)`: an image tile, a video frame or an audio clip spliced as `length` positions).
Two requests' embeddings agree on a position range exactly when their atoms agree there, so the
longest common atom prefix is the part whose KV cache can be computed once and shared.

Three levels per admission round:
- the root: what every request of the round shares (the system prompt and, for ASR, the
  instruction before the audio);
- a group's prefix: what the questions about one image / video / audio share beyond the root;
- each request's own suffix, never empty, so every request gets its first logits from its own
  last position.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Atom = int | tuple[bytes, int]


def atoms(input_ids: Sequence[int], media_keys: Sequence[bytes], media_lengths: Sequence[int]) -> list[Atom]:
    """Text ids stay themselves; the i-th negative placeholder becomes (media_keys[i], media_lengths[i])."""
    out: list[Atom] = []
    block = 0
    for tok in input_ids:
        if tok >= 0:
            out.append(tok)
        else:
            out.append((media_keys[block], media_lengths[block]))
            block += 1
    return out


def _width(atom: Atom) -> int:
    return 1 if isinstance(atom, int) else atom[1]


def common_prefix(seqs: Sequence[Sequence[Atom]]) -> int:
    """Positions at the start on which every sequence agrees (a differing media block counts 0)."""
    if not seqs:
        return 0
    first, total = seqs[0], 0
    for i, atom in enumerate(first):
        if any(i >= len(s) or s[i] != atom for s in seqs[1:]):
            break
        total += _width(atom)
    return total


@dataclass
class PrefixPlan:
    root: int  # positions every request starts from (computed once per round); 0 = none
    shared: list[int]  # per group: positions its members share (>= root), computed once per group


def plan_prefixes(seqs: Sequence[Sequence[Atom]], lengths: Sequence[int], groups: Sequence[Sequence[int]],
                  min_shared: int = 16) -> PrefixPlan:
    """Root and per-group shared lengths; `lengths` are the spliced (truncated) lengths.

    A level is used only if it saves at least `min_shared` positions; every request keeps at
    least its last position as its own suffix.
    """
    def capped(members: Sequence[int]) -> int:
        return min(common_prefix([seqs[i] for i in members]), min(lengths[i] for i in members) - 1)

    everyone = [i for g in groups for i in g]
    root = capped(everyone) if len(everyone) > 1 else 0
    root = root if root >= min_shared else 0
    shared = []
    for members in groups:
        share = capped(members) if len(members) > 1 else root
        shared.append(share if share - root >= min_shared else root)
    return PrefixPlan(root=max(root, 0), shared=[max(s, 0) for s in shared])
