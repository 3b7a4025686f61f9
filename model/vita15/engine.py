"""The fast VITA-1.5 engine: prefix sharing, a slot KV cache, CUDA-graph decode, continuous batching.

Requests come in groups (the questions about one image, video or audio) from a source that a
worker pool fills ahead of the GPU (`GroupSource`). Each admission round:
1. encodes every distinct media item of the round once (ViT tiles / frames in batches, normalised
   from uint8 on the GPU; Whale audio replayed from CUDA graphs, `vita15.whale_graphs`);
2. splices each request (`VITAQwen2ForCausalLM.splice`, the reference's own splicer);
3. prefills the round's common root once and each group's shared prefix once, their keys written
   into every slot that shares them, then each question's own suffix (`vita15.prefix` finds the
   shared lengths from ids and media keys): all of it packed without padding into as few forwards
   as `prefill_tokens` allows (`kv_slots.SlotPlan.packed`: flash varlen over the cache in place,
   cuDNN for long sequences) through the Qwen2 layers with fused element-wise work
   (`vita15.prefill_step`);
4. picks each request's first token from its last position.
Between rounds every busy slot decodes one token per step over `SlotCache` (per-slot positions,
so finished slots are refilled while others decode). A step (`vita15.decode_step`, the Qwen2 layer
arithmetic in few kernels) is captured once per (batch bucket, key-length bucket) as a CUDA graph
that also does the argmax and the bookkeeping on the GPU; the host looks at the new tokens every
few steps (`sync_every`), checks stop ids and stop strings on token bytes (`vita15.stopping`) and
hands finished rows out at once. It reads a window's tokens only after the next round is queued
behind its steps, so the round's host work (media batches, splice, plan) runs while the GPU decodes
and the GPU's queue never drains at a round boundary.

Same answers: every request's tokens equal the reference engine's (`vita15.inference`) up to
floating-point summation order (tested exactly in fp32 on the CPU). A round that fails is retried
group by group, then request by request, so an error stays with the request that causes it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import record_function

from .audio_features import FbankPool, fbank
from .audio_whale import split_audio
from .conversation import load_tokenizer
from .cuda_graphs import capture, warm_up
from .decode_step import DecodeStep
from .inference import (
    DECODE_BACKENDS,
    Generation,
    PreparedRequest,
    finish_generation,
    penalize,
    prepare_request,
    select_token,
    splice_warnings,
)
from .kv_slots import SLOT_ATTENTION, SlotCache
from .prefill_step import PrefillStep
from .prefix import atoms, plan_prefixes
from .stopping import StopMatcher, TokenBytes
from .whale_graphs import WhaleGraphs

log = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512)
AUDIO_BATCH, AUDIO_FRAMES = 16, 256  # Whale batches: 16 clips, lengths in steps of 2.56 s
IMAGE_TOKEN_INDEX, AUDIO_TOKEN_INDEX = -200, -500
# The ViT's unmasked attention (1,025 positions, head dim 64) prefers cuDNN's fused kernel on Hopper
# (scripts/gpu_checks.py measures it against flash); the list falls through where cuDNN cannot run.
VIT_BACKENDS = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                SDPBackend.MATH]


@dataclass
class Job:
    """One request as the engine sees it: prepared inputs plus decoding parameters.

    `gen` needs do_sample, temperature, top_p, max_new_tokens, stop and seed (the harness's
    GenerationParams has them).
    """

    uid: str
    prepared: PreparedRequest
    gen: Any


class GroupSource(Protocol):
    """Where groups of jobs come from (filled ahead of the GPU by worker threads)."""

    def poll(self) -> list[Job] | None:
        """A ready group, or None if none is ready now (or none is left)."""

    def get(self) -> list[Job] | None:
        """The next group, waiting for it; None when the source is exhausted."""


class ListSource:
    """A GroupSource over groups already prepared (tests, the single-call `generate`)."""

    def __init__(self, groups: Sequence[list[Job]]) -> None:
        self._groups = deque(groups)

    def poll(self) -> list[Job] | None:
        return self._groups.popleft() if self._groups else None

    def get(self) -> list[Job] | None:
        return self.poll()


@dataclass
class _Piece:
    """Embeddings `chunk` appended to `slot` from position `start`, and written into `mirrors` too
    (the other slots of a shared prefix); `logits_for`: the request whose first logits are at its end."""

    slot: int
    start: int
    chunk: torch.Tensor
    mirrors: list[int]
    logits_for: int | None = None


@dataclass
class _Window:
    """A decode window in flight: its rows, the first token index copied, the copy, and the event
    after which the copy is on the host (None on a CPU)."""

    rows: dict[int, "_Row"]
    lo: int
    tokens: torch.Tensor
    done: torch.cuda.Event | None


@dataclass
class _Row:
    """Host bookkeeping of one slot that is generating."""

    job: Job
    slot: int
    n_prompt: int
    warnings: list[str]
    stopper: StopMatcher
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    n_gen: int = 1  # generated on the device so far (the first comes from the prefill)

    @property
    def remaining(self) -> int:
        return self.job.gen.max_new_tokens - self.n_gen

    @property
    def samples(self) -> bool:
        return bool(self.job.gen.do_sample) and self.job.gen.temperature > 0


class _Slots:
    """Device state of all slots: the KV cache plus per-slot length, next id, history, activity."""

    def __init__(self, config, n: int, capacity: int, vocab: int, penalty: bool, device, dtype) -> None:
        self.n, self.capacity = n, capacity
        self.cache = SlotCache(config, n, capacity, device, dtype)
        self.length = torch.zeros(n, dtype=torch.long, device=device)
        self.active = torch.zeros(n, dtype=torch.long, device=device)
        self.next_ids = torch.zeros(n, dtype=torch.long, device=device)
        self.history = torch.zeros(n, capacity, dtype=torch.long, device=device)
        self.n_gen = torch.zeros(n, dtype=torch.long, device=device)
        self.seen = torch.zeros(n, vocab, dtype=torch.bool, device=device) if penalty else None
        self.host_length = [0] * n
        self.free = list(range(n))

    def take(self, count: int) -> list[int]:
        """The lowest free slots, so busy slots stay packed at the front (small decode buckets)."""
        self.free.sort()
        taken, self.free = self.free[:count], self.free[count:]
        return taken

    def give_back(self, slots: Sequence[int]) -> None:
        self.free.extend(slots)


class FastEngine:
    """Continuous-batching generation over a slot KV cache (see the module docstring)."""

    def __init__(self, model, tokenizer, generation_config: dict | None = None, *, max_slots: int | None = None,
                 sync_every: int = 8, cuda_graphs: bool = True, prefill_tokens: int | None = None,
                 round_tokens: int | None = None, vit_tiles: int = 64, min_shared: int = 16,
                 kv_memory_fraction: float = 0.85, max_kv_gib: float = 48.0,
                 fbank_workers: int | None = None, fused_prefill: bool = True) -> None:
        self.model = model.eval()
        self.model.set_attn_implementation(SLOT_ATTENTION)  # sdpa, plus packed slot attention (kv_slots)
        self.decode_step = DecodeStep(model)
        self.prefill_step = PrefillStep(model)  # both need `decode_step.prepare()` (fused projections) first
        self.fused_prefill = fused_prefill  # False: transformers' Qwen2 layers (measured side by side in bench)
        self.tokenizer = tokenizer
        self.device = model.device
        self._no_mask = torch.ones(1, 1, 1, 1, dtype=torch.bool, device=self.device)
        self.dtype = model.model.embed_tokens.weight.dtype
        self.vocab_limit = min(len(tokenizer), model.config.vocab_size)
        self.repetition_penalty = float((generation_config or {}).get("repetition_penalty", 1.0))
        self.dither = float(model.model.audio_encoder.cfg.dither)
        on_gpu = self.device.type == "cuda"
        self.max_slots = max_slots or (256 if on_gpu else 16)
        self.sync_every = max(1, sync_every)
        self.use_graphs = cuda_graphs and on_gpu
        self.prefill_tokens = prefill_tokens or (16384 if on_gpu else 2048)
        self.round_tokens = round_tokens or (65536 if on_gpu else 8192)
        self.vit_tiles, self.min_shared = vit_tiles, min_shared
        self.kv_memory_fraction, self.max_kv_gib = kv_memory_fraction, max_kv_gib
        self.token_bytes = TokenBytes(tokenizer)
        self._locked_tokenizer = _LockedTokenizer(tokenizer)
        # fbank in processes on a GPU machine (kaldi-native-fbank holds the GIL); inline elsewhere
        self.fbank_workers = fbank_workers if fbank_workers is not None else (
            min(8, max(1, (os.cpu_count() or 2) // 2)) if on_gpu else 0)
        self._fbank = None  # started by the first audio prepared on a thread (none with a Preparer)
        self._fbank_lock = threading.Lock()
        self._stoppers: dict[tuple[str, ...], StopMatcher] = {}
        self._slots: _Slots | None = None
        self._capacity_floor = 0
        self._graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self._graph_pool = None
        self._decode_rows: dict[int, torch.Tensor] = {}
        self.stats = {"rounds": 0, "prefill_positions": 0, "shared_positions": 0, "decode_steps": 0,
                      "graphs": 0, "graph_failures": 0, "prefill_s": 0.0, "decode_s": 0.0, "wait_s": 0.0}
        self._timings: list[tuple[str, Any, Any]] = []
        self._whale = (WhaleGraphs(model.model.audio_encoder, self.device, self.dtype, self.stats)
                       if self.use_graphs else None)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", dtype: str = "fp32", **kw) -> "FastEngine":
        from .checkpoint import load_vita

        model, tokenizer = load_vita(path, device=device, dtype=dtype)
        gen_path = Path(path) / "generation_config.json"
        return cls(model, tokenizer, json.loads(gen_path.read_text()) if gen_path.is_file() else {}, **kw)

    # ---------------------------------------------------------------- host-side preparation (worker threads)
    def prepare(self, request: Any, tiles_cache: dict | None = None) -> PreparedRequest:
        """`prepare_request` on a worker thread (thread-safe), page-locked for the copy to the GPU."""
        if getattr(request, "audio", None) is not None and self._fbank is None:
            with self._fbank_lock:
                if self._fbank is None:
                    self._fbank = FbankPool(self.fbank_workers) if self.fbank_workers else fbank
        return self.pin(prepare_request(request, self._locked_tokenizer, self.dither, tiles_cache,
                                        self._fbank or fbank))

    def preparer(self) -> "Preparer":
        """The same preparation as a picklable callable, for worker processes (`pin` the results here)."""
        return Preparer(self.tokenizer, self.dither)

    def pin(self, prepared: PreparedRequest, pinned: dict[int, torch.Tensor] | None = None) -> PreparedRequest:
        """Page-locked host tensors, so their copies to the GPU do not block (no-op off the GPU).

        `pinned` (id of a tensor -> its page-locked copy) pins a tensor that several requests share
        (the tiles of an image asked twice) once."""
        if self.device.type == "cuda":
            pinned = {} if pinned is None else pinned
            for name in ("input_ids", "pixel_values", "audio_features"):
                tensor = getattr(prepared, name)
                if tensor is not None:
                    if id(tensor) not in pinned:
                        pinned[id(tensor)] = tensor.pin_memory()
                    setattr(prepared, name, pinned[id(tensor)])
        return prepared

    # ---------------------------------------------------------------- public generation
    def generate(self, jobs_by_group: Sequence[list[Job]]) -> dict[str, Generation | Exception]:
        """Every job's result, keyed by uid (a convenience over `stream`)."""
        return dict(self.stream(ListSource(list(jobs_by_group))))

    @torch.no_grad()
    def stream(self, source: GroupSource) -> Iterator[tuple[str, Generation | Exception]]:
        """Yield (uid, Generation or the exception that failed it) as each request finishes."""
        rows: dict[int, _Row] = {}
        pending: deque[list[Job]] = deque()
        if self.decode_step.prepare():
            self._drop_slots()
        try:
            yield from self._serve(source, rows, pending)
        finally:
            self._settle_timings()

    def _serve(self, source: GroupSource, rows: dict[int, _Row], pending: deque[list[Job]]):
        exhausted = False
        with sdpa_kernel(DECODE_BACKENDS):
            while True:
                while not exhausted and self._waiting(pending) < self.max_slots:
                    group = source.poll()
                    if group is None:
                        break
                    pending.extend(self._split(group))
                if not rows and not pending:
                    if exhausted:
                        return
                    waited = time.perf_counter()
                    group = source.get()
                    self.stats["wait_s"] += time.perf_counter() - waited
                    if group is None:
                        exhausted = True
                    else:
                        pending.extend(self._split(group))
                    continue
                # the window's steps and its token copy are queued before the next round's work, whose
                # host side (media, splice, plan) then runs while the GPU decodes: no drained queue
                # between rounds; the window's tokens are read after the admission is queued
                window, failed = self._guarded(rows, lambda: self._launch_window(rows)) if rows else (None, [])
                yield from failed
                if pending and self._should_admit(rows, pending):
                    with self._timed("prefill_s"):
                        failures = list(self._admit(pending, rows))
                    yield from failures
                if window is not None:
                    with record_function("vita.collect"):
                        finished, failed = self._guarded(rows, lambda: list(self._collect(window, rows)))
                    yield from finished or failed

    def _guarded(self, rows: dict[int, _Row], work):
        """(`work()`, []), or, if it raises, (None, every row in flight failed with the error): a
        failed step fails the rows in flight, not the stream."""
        try:
            return work(), []
        except Exception as exc:
            log.warning("decode step failed for %d requests: %s: %s", len(rows), type(exc).__name__, exc)
            self._slots.active.zero_()
            self._slots.give_back(list(rows))
            failed = [(row.job.uid, exc) for row in rows.values()]
            rows.clear()
            return None, failed

    @contextmanager
    def _timed(self, key: str) -> Iterator[None]:
        """Stream time of a phase: CUDA events on a GPU (read at the end), wall time on a CPU."""
        if self.device.type != "cuda":
            start = time.perf_counter()
            yield
            self.stats[key] += time.perf_counter() - start
            return
        begin = torch.cuda.Event(enable_timing=True)
        begin.record()
        yield
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        self._timings.append((key, begin, end))

    def _settle_timings(self) -> None:
        if self._timings:
            torch.cuda.synchronize(self.device)
            for key, begin, end in self._timings:
                self.stats[key] += begin.elapsed_time(end) / 1000
            self._timings = []

    @staticmethod
    def _waiting(pending: deque[list[Job]]) -> int:
        return sum(len(g) for g in pending)

    def _split(self, group: list[Job]) -> list[list[Job]]:
        """A group larger than the slot count is shared in slot-sized parts."""
        n = self.max_slots
        return [group[i : i + n] for i in range(0, len(group), n)] if group else []

    def _should_admit(self, rows: dict[int, _Row], pending: deque[list[Job]]) -> bool:
        """Admit when idle, or when enough slots are free that the prefill batch is worth it."""
        slots = self._slots
        if slots is not None and len(pending[0]) > slots.n:  # fewer slots than max_slots fit in memory
            head = pending.popleft()
            pending.extendleft(reversed([head[i : i + slots.n] for i in range(0, len(head), slots.n)]))
        if not rows or slots is None:
            return True
        if self._capacity_for(pending[0]) > slots.capacity:
            return False  # drain first, then reallocate bigger slots
        free = len(slots.free)
        return free >= len(pending[0]) and free >= min(max(1, slots.n // 4), self._waiting(pending))

    # ---------------------------------------------------------------- slot allocation
    def _positions_needed(self, prompt: int, max_new: int) -> int:
        return min(prompt, self.model.config.tokenizer_model_max_length) + max_new + self.sync_every + 2

    def _capacity_for(self, group: Sequence[Job]) -> int:
        """Slot length this group needs (spliced length estimated before encoding; floors raised by
        a round that found its estimate short)."""
        need = max(self._positions_needed(_estimate_positions(j.prepared), int(j.gen.max_new_tokens)) for j in group)
        return max(need, self._capacity_floor)

    def _ensure_slots(self, capacity: int) -> _Slots:
        """Slots at least `capacity` long (25% headroom, so a workload reallocates rarely)."""
        if self._slots is not None and self._slots.capacity >= capacity:
            return self._slots
        capacity = int(math.ceil(capacity * 1.25 / 256) * 256)
        self._drop_slots()
        config = self.model.config
        per_slot = SlotCache.bytes_per_token(config, self.dtype) * capacity
        n = self.max_slots
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            free, _ = torch.cuda.mem_get_info(self.device)
            reserve = max(4 << 30, int(0.12 * free))  # prefill activations, graph pools, the ViT
            budget = min(int((free - reserve) * self.kv_memory_fraction), int(self.max_kv_gib * 2**30))
            n = max(1, min(n, budget // per_slot))
        self._slots = _Slots(config, n, capacity, self.vocab_limit, self.repetition_penalty != 1.0, self.device,
                             self.dtype)
        log.info("fast engine: %d slots x %d positions (%.1f GiB KV)", n, capacity, n * per_slot / 2**30)
        return self._slots

    def _drop_slots(self) -> None:
        """Free the slots and the graphs captured over them (and their memory pool: a pool whose
        graphs are gone cannot take new captures)."""
        self._slots, self._graphs, self._decode_rows, self._graph_pool = None, {}, {}, None

    def _index(self, values: Sequence[int]) -> torch.Tensor:
        """A long tensor on the device without a host sync (pageable copies wait for the GPU queue)."""
        t = torch.tensor(list(values), dtype=torch.long)
        return t.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else t

    def kv_layout(self) -> dict[str, Any] | None:
        """The slot cache as allocated now: slots, positions per slot, GiB."""
        slots = self._slots
        if slots is None:
            return None
        per_token = SlotCache.bytes_per_token(self.model.config, self.dtype)
        return {"slots": slots.n, "positions": slots.capacity,
                "gib": round(slots.n * slots.capacity * per_token / 2**30, 2)}

    def _stopper(self, stop: Sequence[str]) -> StopMatcher:
        key = tuple(stop)
        if key not in self._stoppers:
            self._stoppers[key] = StopMatcher(self.tokenizer, key, self.token_bytes)
        return self._stoppers[key]

    # ---------------------------------------------------------------- admission
    def _take_round(self, pending: deque[list[Job]], free: int) -> list[list[Job]]:
        groups, n, tokens = [], 0, 0
        while pending and n + len(pending[0]) <= free and self._capacity_for(pending[0]) <= self._slots.capacity:
            cost = sum(_estimate_positions(j.prepared) for j in pending[0])
            if groups and tokens + cost > self.round_tokens:
                break
            group = pending.popleft()
            groups.append(group)
            n, tokens = n + len(group), tokens + cost
        return groups

    def _admit(self, pending: deque[list[Job]], rows: dict[int, _Row]) -> Iterator[tuple[str, Exception]]:
        slots = self._ensure_slots(self._capacity_for(pending[0]))
        if len(pending[0]) > slots.n:
            self._should_admit(rows, pending)  # splits the head group to the slot count
        groups = self._take_round(pending, len(slots.free))
        if not groups:
            return
        yield from self._admit_isolated(groups, rows, pending)

    def _admit_isolated(self, groups: list[list[Job]], rows: dict[int, _Row],
                        pending: deque[list[Job]]) -> Iterator[tuple[str, Exception]]:
        """Admit a round; if it fails, each group alone, then each request alone, so errors stay put."""
        slots = self._slots
        taken = slots.take(sum(len(g) for g in groups))
        try:
            new = self._prefill_round(groups, taken)
        except _CapacityShort as short:  # estimate too low: back in the queue, longer slots once drained
            slots.give_back(taken)
            self._capacity_floor = max(self._capacity_floor, short.needed)
            pending.extendleft(reversed(groups))
            return
        except Exception as exc:  # any failure: retry smaller, the culprit ends up alone
            slots.active[self._index(taken)] = 0
            slots.give_back(taken)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(groups) > 1:
                for group in groups:
                    yield from self._admit_isolated([group], rows, pending)
            elif len(groups[0]) > 1:
                for job in groups[0]:
                    yield from self._admit_isolated([[job]], rows, pending)
            else:
                log.warning("request %s failed: %s: %s", groups[0][0].uid, type(exc).__name__, exc)
                yield groups[0][0].uid, exc
            return
        for row in new:
            rows[row.slot] = row

    def _encode_media(self, jobs: Sequence[Job]) -> dict[bytes, torch.Tensor]:
        """key -> spliced block, each distinct tile / frame / audio encoded once."""
        blocks: dict[bytes, torch.Tensor] = {}
        pixels, pixel_keys, audio, audio_keys, seen = [], [], [], [], set()
        for job in jobs:
            p = job.prepared
            n_visual = 0 if p.pixel_values is None else len(p.pixel_values)
            for i, key in enumerate(p.media_keys[:n_visual]):
                if key not in seen:
                    seen.add(key)
                    pixels.append(p.pixel_values[i])
                    pixel_keys.append(key)
            if p.audio_features is not None:
                key = p.media_keys[n_visual]
                if key not in seen:
                    seen.add(key)
                    audio.append(p.audio_features)
                    audio_keys.append(key)
        with record_function("vita.encode_images"):
            self._encode_tiles(pixels, pixel_keys, blocks)
        with record_function("vita.encode_audio"):
            self._encode_clips(audio, audio_keys, blocks)
        return blocks

    def _encode_tiles(self, pixels: list[torch.Tensor], keys: list[bytes], blocks: dict[bytes, torch.Tensor]) -> None:
        """ViT batches of `vit_tiles` (padded to a bucket, so cuDNN plans few shapes), attention by cuDNN
        where it runs (`VIT_BACKENDS`)."""
        for start in range(0, len(pixels), self.vit_tiles):
            tiles = [t.to(self.device, non_blocking=True) for t in pixels[start : start + self.vit_tiles]]
            with sdpa_kernel(VIT_BACKENDS, set_priority=True):
                embeds = self.model.encode_images(torch.stack(_pad_rows(tiles, _bucket(len(tiles), self.vit_tiles))))
            blocks.update(zip(keys[start : start + self.vit_tiles], embeds))

    def _encode_clips(self, audio: list[torch.Tensor], keys: list[bytes], blocks: dict[bytes, torch.Tensor]) -> None:
        """Whale batches of clips of similar length (little padding)."""
        order = sorted(range(len(audio)), key=lambda i: len(audio[i]))
        for start in range(0, len(order), AUDIO_BATCH):
            part = [audio[i] for i in order[start : start + AUDIO_BATCH]]
            features, lengths = _bucketed_audio(part)
            replayed = self._whale(features, lengths) if self._whale is not None else None
            embeds = (split_audio(replayed, None, lengths) if replayed is not None
                      else self.model.encode_audio(features.to(self.device, non_blocking=True), lengths))
            blocks.update(zip([keys[i] for i in order[start : start + AUDIO_BATCH]], embeds))

    def _prefill_round(self, groups: list[list[Job]], taken: list[int]) -> list[_Row]:
        slots, model = self._slots, self.model
        jobs = [j for g in groups for j in g]
        blocks = self._encode_media(jobs)
        images = [blocks[k] for j in jobs for k, t in zip(j.prepared.media_keys, _placeholders(j.prepared))
                  if t == IMAGE_TOKEN_INDEX]
        audio = [blocks[k] for j in jobs for k, t in zip(j.prepared.media_keys, _placeholders(j.prepared))
                 if t == AUDIO_TOKEN_INDEX]
        names = [f"request {j.uid}" for j in jobs]
        with splice_warnings(names) as warnings, record_function("vita.splice"):
            embeds, _ = model.splice([j.prepared.input_ids for j in jobs], torch.stack(images) if images else None,
                                     audio or None, None, names)
        needed = max(self._positions_needed(len(e), int(j.gen.max_new_tokens)) for e, j in zip(embeds, jobs))
        if needed > slots.capacity:
            raise _CapacityShort(needed)
        seqs = [atoms(j.prepared.input_ids.tolist(), j.prepared.media_keys,
                      [len(blocks[k]) for k in j.prepared.media_keys]) for j in jobs]
        index, members = 0, []
        for g in groups:
            members.append(list(range(index, index + len(g))))
            index += len(g)
        plan = plan_prefixes(seqs, [len(e) for e in embeds], members, self.min_shared)
        slot_of = dict(enumerate(taken))
        last = self._extend(self._pieces(embeds, members, plan, slot_of))
        self.stats["rounds"] += 1
        self.stats["prefill_positions"] += sum(len(e) for e in embeds)
        self.stats["shared_positions"] += plan.root * (len(jobs) - 1) + sum(
            (s - plan.root) * (len(m) - 1) for m, s in zip(members, plan.shared))
        return self._start_rows(jobs, taken, last, [len(e) for e in embeds], warnings)

    @staticmethod
    def _pieces(embeds: list[torch.Tensor], members: list[list[int]], plan, slot_of: dict[int, int]) -> list[_Piece]:
        """A round as sequences to append, in dependency order: the round's root once (written into
        every slot), each group's shared prefix once (into the group's slots), each request's own
        suffix (logits at its end)."""
        pieces = []
        if plan.root:
            first = slot_of[0]
            pieces.append(_Piece(first, 0, embeds[0][: plan.root], [s for s in slot_of.values() if s != first]))
        for m, share in zip(members, plan.shared):
            if share > plan.root:
                pieces.append(_Piece(slot_of[m[0]], plan.root, embeds[m[0]][plan.root : share],
                                     [slot_of[i] for i in m[1:]]))
        for m, share in zip(members, plan.shared):
            pieces += [_Piece(slot_of[i], share, embeds[i][share:], [], logits_for=i) for i in m]
        return pieces

    @record_function("vita.prefill")
    def _extend(self, pieces: list[_Piece]) -> torch.Tensor:
        """Append every piece to its slots; logits at the end of each piece that asks, in its
        `logits_for` order.

        Pieces are packed, without padding, in order into forwards of at most `prefill_tokens` new
        positions (a longer piece goes alone): a piece only reads what earlier pieces wrote, in an
        earlier forward or earlier in the same layer of its own.
        """
        order, logits, pack, total = [], [], [], 0
        for piece in pieces + [None]:
            if pack and (piece is None or total + len(piece.chunk) > self.prefill_tokens):
                requests, out = self._forward(pack)
                order += requests
                logits += [out] if requests else []
                pack, total = [], 0
            if piece is not None:
                pack.append(piece)
                total += len(piece.chunk)
        logits = torch.cat(logits)
        return logits if order == sorted(order) else logits[self._index(sorted(range(len(order)), key=order.__getitem__))]

    def _forward(self, pack: list[_Piece]) -> tuple[list[int], torch.Tensor | None]:
        """One packed prefill forward through the fused layers or transformers' own: the requests
        whose pieces end here and their logits. Short pieces first, so the long ones can attend by
        their own kernel (`SlotPlan`)."""
        slots, model = self._slots, self.model
        cache = slots.cache
        long = cache.long_tokens
        if long is not None:
            pack = sorted(pack, key=lambda p: len(p.chunk) >= long)
        plan = cache.pack([p.slot for p in pack], [p.start for p in pack], [len(p.chunk) for p in pack],
                          [p.mirrors for p in pack])
        x = torch.cat([p.chunk for p in pack])[None]
        if self.fused_prefill:
            hidden = self.prefill_step(x, plan.positions, cache)
        else:  # transformers' own layers over the same cache (a 4-D placeholder keeps it from building a mask)
            hidden = model.model(inputs_embeds=x, position_ids=plan.positions, attention_mask=self._no_mask,
                                 past_key_values=cache, use_cache=True, slot_cache=cache).last_hidden_state
        slots.length[plan.length_rows] = plan.length_values
        for s, n in plan.lengths.items():
            slots.host_length[s] = n
        wanted = [r for r, p in enumerate(pack) if p.logits_for is not None]
        if not wanted:
            return [], None
        rows = plan.last[self._index(wanted)] if len(wanted) < len(pack) else plan.last
        return [pack[r].logits_for for r in wanted], model.lm_head(hidden[0, rows])[:, : self.vocab_limit].float()

    def _start_rows(self, jobs: list[Job], taken: list[int], logits: torch.Tensor, n_prompt: list[int],
                    warnings: list[list[str]]) -> list[_Row]:
        """First token of each request from its prefill logits; the slots become active."""
        slots = self._slots
        rows = []
        for i, job in enumerate(jobs):
            gen = job.gen
            generator = None
            if gen.do_sample and gen.temperature > 0:
                generator = torch.Generator(device=self.device).manual_seed(int(gen.seed))
            rows.append(_Row(job=job, slot=taken[i], n_prompt=n_prompt[i], warnings=warnings[i],
                             stopper=self._stopper(gen.stop), generator=generator))
        first = torch.stack([select_token(logits[i], r.samples, r.job.gen.temperature, r.job.gen.top_p, r.generator)
                             for i, r in enumerate(rows)]) if any(r.samples for r in rows) else logits.argmax(-1)
        idx = self._index(taken)
        slots.history[idx, 0] = first
        slots.next_ids[idx] = first
        slots.n_gen[idx] = 1
        slots.active[idx] = 1
        if slots.seen is not None:
            slots.seen[idx] = False
            slots.seen[idx, first] = True
        return rows

    # ---------------------------------------------------------------- decoding
    def _launch_window(self, rows: dict[int, _Row]) -> _Window:
        """Queue up to `sync_every` steps for the rows in flight and the copy of their new tokens."""
        with record_function("vita.decode"), self._timed("decode_s"):
            self._decode_steps(rows)
        slots = self._slots
        lo = min(len(r.tokens) for r in rows.values())
        hi = max(r.n_gen for r in rows.values())
        tokens = slots.history[: max(rows) + 1, lo:hi]
        done = None
        if self.device.type == "cuda":
            tokens = _pinned_copy(tokens)
            done = torch.cuda.Event()
            done.record()
        else:
            tokens = tokens.clone()
        return _Window(dict(rows), lo, tokens, done)

    def _decode_steps(self, rows: dict[int, _Row]) -> None:
        """Up to `sync_every` steps on the device (graph replays when greedy), no host sync."""
        slots = self._slots
        # up to `sync_every` steps before looking at the tokens; rows that reach their budget sooner
        # run on idle (slots have sync_every positions of headroom) and are cut on the host
        steps = min(self.sync_every, max(r.remaining for r in rows.values()))
        if steps > 0:
            batch = _bucket(max(rows) + 1, slots.n)
            longest = max(slots.host_length[s] for s in rows)
            key_len = _length_bucket(longest + steps + 1, slots.capacity)
            if any(r.samples for r in rows.values()):
                for _ in range(steps):
                    self._step(batch, key_len, rows)
            elif self.use_graphs:
                graph = self._graph(batch, key_len)
                for _ in range(steps):
                    graph.replay() if graph is not None else self._step(batch, key_len)
            else:
                for _ in range(steps):
                    self._step(batch, key_len)
            self.stats["decode_steps"] += steps
            for r in rows.values():
                r.n_gen += steps
                slots.host_length[r.slot] += steps

    def _collect(self, window: _Window, rows: dict[int, _Row]) -> Iterator[tuple[str, Generation]]:
        """The window's tokens on the host: apply the stop rules, free and hand out finished rows."""
        slots = self._slots
        if window.done is not None:
            window.done.synchronize()
        lo, tokens = window.lo, window.tokens.tolist()
        finished = []
        for slot, row in window.rows.items():
            checked = len(row.tokens)
            row.tokens.extend(tokens[slot][checked - lo : row.n_gen - lo])
            stop = row.stopper.first_stop(row.tokens, checked)
            if stop is not None:
                del row.tokens[stop + 1 :]
            elif len(row.tokens) >= row.job.gen.max_new_tokens:
                del row.tokens[row.job.gen.max_new_tokens :]
            else:
                continue
            finished.append(slot)
        if not finished:
            return
        slots.active[self._index(finished)] = 0
        slots.give_back(finished)
        for slot in finished:
            row = rows.pop(slot)
            yield row.job.uid, finish_generation(self.tokenizer, row.tokens, row.n_prompt, row.warnings,
                                                 tuple(row.job.gen.stop))

    def _step(self, batch: int, key_len: int, rows: dict[int, _Row] | None = None) -> None:
        """One decode step for slots [0, batch); greedy on the device, or per-row sampling if `rows`."""
        slots, model = self._slots, self.model
        pos = slots.length[:batch]
        if batch not in self._decode_rows:
            self._decode_rows[batch] = torch.arange(batch, device=self.device)[:, None]
        hidden = self.decode_step(slots.next_ids[:batch], pos, slots.cache, self._decode_rows[batch], key_len)
        logits = model.lm_head(hidden)[:, : self.vocab_limit].float()
        if slots.seen is not None:
            logits = penalize(logits, slots.seen[:batch], self.repetition_penalty)
        if rows is None:
            chosen = logits.argmax(-1)
        else:
            chosen = logits.argmax(-1)
            for slot, row in rows.items():
                if row.samples:
                    chosen[slot] = select_token(logits[slot], True, row.job.gen.temperature, row.job.gen.top_p,
                                                row.generator)
        active = slots.active[:batch]
        slots.history[:batch].scatter_(1, slots.n_gen[:batch, None], chosen[:, None])
        slots.n_gen[:batch] += active
        slots.n_gen[:batch].clamp_(max=slots.capacity - 1)
        pos += active
        pos.clamp_(max=slots.capacity - 1)
        slots.next_ids[:batch] = torch.where(active.bool(), chosen, slots.next_ids[:batch])
        if slots.seen is not None:
            seen = slots.seen[:batch]
            seen.scatter_(1, chosen[:, None], seen.gather(1, chosen[:, None]) | active.bool()[:, None])

    def _graph(self, batch: int, key_len: int) -> torch.cuda.CUDAGraph | None:
        """The captured step for this bucket (None if capture failed: eager steps then)."""
        key = (batch, key_len)
        if key in self._graphs:
            return self._graphs[key]
        slots = self._slots
        saved = slots.active.clone()
        graph: torch.cuda.CUDAGraph | None = torch.cuda.CUDAGraph()
        try:
            slots.active.zero_()  # the warm-up step must not advance any row
            warm_up(self.device, lambda: self._step(batch, key_len))
            if self._graph_pool is None:
                self._graph_pool = torch.cuda.graph_pool_handle()
            capture(graph, self._graph_pool, self.device, lambda: self._step(batch, key_len))
            self.stats["graphs"] += 1
        except Exception as exc:  # capture is an optimisation: fall back to eager steps
            log.warning("CUDA graph capture failed for batch %d, keys %d (%s); decoding eagerly", batch, key_len, exc)
            self.stats["graph_failures"] += 1
            graph = None
        finally:
            slots.active.copy_(saved)
        self._graphs[key] = graph
        return graph


@dataclass
class Preparer:
    """`prepare_request` with a model's tokenizer and fbank dither, picklable: run in a worker
    process it prepares requests without sharing the engine's GIL (fbank inline: the process is
    the parallelism)."""

    tokenizer: Any
    dither: float

    def __call__(self, request: Any, tiles_cache: dict | None = None) -> PreparedRequest:
        return prepare_request(request, self.tokenizer, self.dither, tiles_cache)

    def __reduce__(self):
        """Travel as the tokenizer's folder where it has one. The tokenizer object pickles to megabytes,
        which the thread spawning each worker must push through a pipe while the new process imports
        torch: the workers then started one after another, ~2.5 s each, inside the first suite's
        timing (MME on an H200: 98.6 s of 127 s waiting for requests, reports/perf)."""
        folder = Path(str(getattr(self.tokenizer, "name_or_path", "")))
        if (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file():
            return (_preparer_for_folder, (str(folder), self.dither))
        return (Preparer, (self.tokenizer, self.dither))


def _preparer_for_folder(folder: str, dither: float) -> Preparer:
    return Preparer(load_tokenizer(folder), dither)


class _LockedTokenizer:
    """The tokenizer called under a lock: worker threads share one Rust tokenizer, whose encode
    state ("Already borrowed") is not safe to enter concurrently; encoding a prompt is short."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer, self._lock = tokenizer, threading.Lock()

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._tokenizer, name)


class _CapacityShort(Exception):
    """A round's spliced prompts are longer than estimated: it needs `needed` positions per slot."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"slots too short: {needed} positions needed")
        self.needed = needed


def _pinned_copy(tokens: torch.Tensor) -> torch.Tensor:
    """`tokens` copied into page-locked host memory without waiting (a pageable copy would sync)."""
    host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
    host.copy_(tokens, non_blocking=True)
    return host


def _pad_rows(rows: list[torch.Tensor], count: int) -> list[torch.Tensor]:
    """`rows` plus zero rows up to `count`. Encoder inputs come in few shapes, so cuDNN builds its
    convolution plans once instead of for every new batch size (~0.1-0.3 s each on an H200)."""
    return rows + [torch.zeros_like(rows[0])] * (count - len(rows))


def _bucketed_audio(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(AUDIO_BATCH, T, 80) zero-padded fbank with T a multiple of AUDIO_FRAMES, and lengths (padding rows 0).

    The Whale encoder is padding-invariant (masked attention, valid outputs see only valid frames),
    so bucketing changes no result, only how many shapes cuDNN has to plan for.
    """
    frames = int(math.ceil(max(len(f) for f in features) / AUDIO_FRAMES) * AUDIO_FRAMES)
    pinned = torch.cuda.is_available()  # page-locked: the copies to the GPU then never wait for its queue
    out = torch.zeros(AUDIO_BATCH, frames, features[0].shape[-1], pin_memory=pinned)
    lengths = torch.zeros(AUDIO_BATCH, dtype=torch.long, pin_memory=pinned)
    for i, f in enumerate(features):
        out[i, : len(f)] = f
        lengths[i] = len(f)
    return out, lengths


def _placeholders(prepared: PreparedRequest) -> list[int]:
    ids = prepared.input_ids
    return ids[ids < 0].tolist()


def _estimate_positions(prepared: PreparedRequest) -> int:
    """Spliced length before encoding (256 per tile/frame, ~1 per 8 fbank frames of audio)."""
    ids = prepared.input_ids
    n = len(ids) + 255 * int((ids == IMAGE_TOKEN_INDEX).sum())
    if prepared.audio_features is not None:
        n += len(prepared.audio_features) // 8
    return n


def _bucket(n: int, limit: int) -> int:
    for b in BATCH_BUCKETS:
        if b >= n:
            return min(b, limit)
    return limit


def _length_bucket(n: int, capacity: int) -> int:
    step = 256 if n <= 2048 else 1024
    return min(capacity, int(math.ceil(n / step) * step))
