"""Inference over one suite: group, shard, skip what is done, stream, record every sample.

Samples are grouped by shared media (`vita_eval.runner.schedule`) and sharded group-wise. A
worker pool builds each group's requests (the preset decodes the media) and has the model
prepare them (tiling, normalisation, fbank, tokenisation) ahead of the GPU. A model with
`stream` (the VITA fast and reference engines) takes the groups from that pool and hands out
each sample's output as its generation ends; the record is written then (flushed and fsynced
on a writer thread), not per batch. Models with only `generate(requests)` get batches of
`batch_size`, retried one request at a time if a batch fails.

A sample whose input is bad (SampleError in the preset) or whose generation raises is recorded
with its reason and the loop goes on; its neighbours in the batch or prefix group keep theirs.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from tqdm import tqdm

from vita_eval import fsio
from vita_eval.runner.distributed import Dist
from vita_eval.runner.prepare_pool import failure_reason, prepare_group, travels
from vita_eval.runner.records import RecordWriter, SampleRecord, read_records
from vita_eval.runner.schedule import Prefetcher, group_samples
from vita_eval.types import Output, Request, Sample


class EvalModel(Protocol):
    """What the runner drives. Optional streaming extension (used when present):

    - `prepare(requests) -> list[item | Exception]`: host-side work, run on worker threads;
    - `prepare_pool_for(samples) -> PreparePool | None` and `adopt(items) -> items`: the same work
      in worker processes for suites like `samples`, then the main process's finishing touch;
    - `stream(source) -> Iterator[(uid, Output | Exception)]`: `source.poll()` / `source.get()`
      give lists of prepared items (one prefix-sharing group each), results come as they end;
    - `prefetch_workers`: how many worker threads may run ahead (0: the caller's thread).
    """

    name: str
    dtype: str
    identity: dict[str, Any]

    def generate(self, requests: Sequence[Request]) -> list[Output]: ...


@dataclass
class InferenceStats:
    n_total: int  # samples in this rank's shard
    n_done_before: int  # already recorded by an earlier (killed) invocation
    n_new: int
    wall_s: float

    @property
    def samples_per_s(self) -> float:
        return self.n_new / self.wall_s if self.wall_s > 0 else 0.0


def check_fingerprint(suite_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Records made with another model, preset or decoding are set aside, never mixed in or deleted.

    A damaged fingerprint.json (a kill in an old version's in-place write) cannot vouch for the
    records beside it, so they are set aside too, with a warning; the run then goes on.
    """
    suite_dir.mkdir(parents=True, exist_ok=True)
    path = suite_dir / "fingerprint.json"
    if path.exists() and fsio.read_json(path, default=_DAMAGED) != fingerprint:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for old in suite_dir.glob("samples*.jsonl"):
            old.rename(old.with_name(f"stale-{stamp}-{old.name}"))
    fsio.write_json(path, fingerprint, sort_keys=True)


_DAMAGED = object()  # read_json's default for a fingerprint that exists but cannot be read


def _build(sample: Sample, *, preset, spec: Any, args: dict[str, Any], max_new_tokens: int | None) -> Request:
    """The sample's request through the suite's preset (a module function: its partial pickles)."""
    request = preset(sample, spec, args)
    if max_new_tokens is not None and request.gen.max_new_tokens > max_new_tokens:
        request.gen = dataclasses.replace(request.gen, max_new_tokens=max_new_tokens)
    return request


def _error(uid: str, reason: str) -> SampleRecord:
    return SampleRecord(uid=uid, prompt_hash="", raw=None, answer=None, error=reason)


def _failure(uid: str, exc: BaseException) -> SampleRecord:
    return _error(uid, failure_reason(exc))


def _record(uid: str, phash: str, output: Output, time_s: float) -> SampleRecord:
    return SampleRecord(
        uid=uid, prompt_hash=phash, raw=output.raw, answer=output.answer, n_prompt_tokens=output.n_prompt_tokens,
        n_new_tokens=output.n_new_tokens, time_s=round(time_s, 4),
    )


class _AsyncWriter:
    """RecordWriter on its own thread: each record is flushed and fsynced as soon as it is handed
    over, without the GPU loop waiting for the disk. A kill loses at most the records in the queue."""

    def __init__(self, path: Path) -> None:
        self._writer = RecordWriter(path)
        self._queue: queue.Queue[SampleRecord | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="records", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                self._writer.write(record)
            except BaseException as exc:  # surfaced on the caller's thread
                self._error = exc

    def write(self, record: SampleRecord) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(record)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._writer.close()
        if self._error is not None:
            raise self._error


class _Groups:
    """Builds and prepares each group ahead of the GPU; failures are recorded on the spot.

    With the model's worker processes for this suite (`prepare_pool_for`) the work runs there and the threads only
    wait and hand the items to `model.adopt`; otherwise the threads do it themselves.
    """

    def __init__(self, model: EvalModel, groups: list[list[Sample]], build, write) -> None:
        self.model, self.build, self.write = model, build, write
        self.hashes: dict[str, str] = {}
        self._lock = threading.Lock()
        streams = hasattr(model, "stream")
        pool = model.prepare_pool_for(groups[0]) if streams and groups and hasattr(model, "prepare_pool_for") else None
        self._remote = pool if pool is not None and travels(build, groups[0]) else None
        workers = int(getattr(model, "prefetch_workers", 0)) if streams else 0
        self._prefetch = Prefetcher(groups, self._prepare, workers=workers, lookahead=4 * max(workers, 1) + 16)

    def _prepare(self, group: list[Sample]) -> list[Any]:
        if self._remote is not None:
            outcomes = self._remote.submit(group, self.build).result()
        else:
            outcomes = prepare_group(group, self.build, getattr(self.model, "prepare", None))
        items = []
        for outcome in outcomes:
            if outcome.error is not None:
                self.write(_error(outcome.uid, outcome.error))
                continue
            with self._lock:
                self.hashes[outcome.uid] = outcome.prompt_hash
            items.append(outcome.item)
        return self.model.adopt(items) if self._remote is not None else items

    def poll(self) -> list[Any] | None:
        while (items := self._prefetch.poll()) is not None:
            if items:
                return items
        return None

    def get(self) -> list[Any] | None:
        while (items := self._prefetch.get()) is not None:
            if items:
                return items
        return None

    def close(self) -> None:
        self._prefetch.close()


def infer_suite(model: EvalModel, spec: Any, samples: list[Sample], suite_dir: Path, *, preset, preset_args: dict,
                batch_size: int, max_new_tokens: int | None, dist: Dist) -> InferenceStats:
    done = {u for u, r in read_records(suite_dir).items() if r.error is None}
    shard = [s for g in dist.shard_groups(group_samples(samples)) for s in g]
    todo = [s for s in shard if s.uid not in done]
    writer = _AsyncWriter(suite_dir / f"samples.rank{dist.rank}.jsonl")
    bar = tqdm(total=len(shard), initial=len(shard) - len(todo), desc=f"{spec.name} [rank {dist.rank}/{dist.world}]",
               unit="sample", position=dist.rank, dynamic_ncols=True)

    def write(record: SampleRecord) -> None:
        writer.write(record)
        bar.update(1)

    groups = _Groups(model, group_samples(todo),
                     partial(_build, preset=preset, spec=spec, args=preset_args, max_new_tokens=max_new_tokens), write)
    start = time.perf_counter()
    try:
        results = model.stream(groups) if hasattr(model, "stream") else _batched(model, groups, batch_size)
        last = start
        for uid, result in results:
            now = time.perf_counter()
            if isinstance(result, BaseException):
                write(_failure(uid, result))
            else:
                write(_record(uid, groups.hashes.pop(uid, ""), result, now - last))
            last = now
    finally:
        groups.close()
        writer.close()
        bar.close()
    return InferenceStats(len(shard), len(shard) - len(todo), len(todo), time.perf_counter() - start)


def _batched(model: EvalModel, groups: _Groups, batch_size: int) -> Iterator[tuple[str, Output | BaseException]]:
    """Models without `stream`: batches of `batch_size` requests of one decoding setup."""
    batch: list[Request] = []
    while True:
        group = groups.get()
        if group is not None:
            batch.extend(group)
        while batch and (len(batch) >= batch_size or group is None):
            chunk, batch = batch[:batch_size], batch[batch_size:]
            by_gen: dict[str, list[Request]] = {}
            for request in chunk:
                by_gen.setdefault(repr(request.gen), []).append(request)
            for requests in by_gen.values():
                yield from _generate(model, requests)
        if group is None:
            return


def _generate(model: EvalModel, requests: list[Request]) -> Iterator[tuple[str, Output | BaseException]]:
    """One batched call; if it fails, each request alone, so an error stays with its own sample."""
    try:
        outputs = model.generate(requests)
    except Exception as exc:  # the model failed: keep the reason, go on
        if len(requests) == 1:
            yield requests[0].uid, exc
            return
        for r in requests:
            yield from _generate(model, [r])
        return
    yield from ((r.uid, o) for r, o in zip(requests, outputs))
