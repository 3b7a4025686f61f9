"""Scheduling of a suite's samples: prefix-sharing groups, and host work running ahead of the GPU.

Samples that ask about the same media (the two questions of an MME image, MMBench's circular
copies, the three questions of a Video-MME video, several prompts about one audio) form a group.
Groups are the unit of everything downstream: the model receives them whole (it encodes the media
once and shares the prompt prefix), `Dist.shard_groups` keeps each on one rank, and a resume
simply leaves out what is already recorded. Samples without media are groups of one.

`Prefetcher` runs a function over the groups on worker threads, a bounded number of groups ahead
of the consumer, and hands results out in order; PIL, NumPy, PyAV, kaldi-native-fbank and the
tokenizer do their heavy work outside the GIL, so threads overlap media decoding, tiling,
normalisation, fbank and tokenisation with the GPU.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from vita_eval.types import Sample

T = TypeVar("T")
R = TypeVar("R")


def media_key(sample: Sample) -> tuple[str, ...] | None:
    """What a sample's media are (None: no media); equal keys are scheduled together."""
    media = [*sample.images, *([sample.video] if sample.video else []), *([sample.audio] if sample.audio else [])]
    if not media:
        return None
    return tuple(f"{m.kind}:{m.key or m.source}" for m in media)


def group_samples(samples: Iterable[Sample]) -> list[list[Sample]]:
    """Groups of samples sharing media, in order of each group's first sample."""
    groups: OrderedDict[object, list[Sample]] = OrderedDict()
    for i, sample in enumerate(samples):
        key = media_key(sample)
        groups.setdefault(key if key is not None else ("#", i), []).append(sample)
    return list(groups.values())


class Prefetcher(Generic[T, R]):
    """`fn` over `items` on `workers` threads, at most `lookahead` items ahead; results in order.

    With `workers=0` nothing runs ahead: `get` computes the next result on the caller's thread
    (the reference engine's sequential path).
    """

    def __init__(self, items: Iterable[T], fn: Callable[[T], R], *, workers: int, lookahead: int) -> None:
        self._items: Iterator[T] = iter(items)
        self._fn = fn
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="prefetch") if workers > 0 else None
        self._lookahead = max(1, lookahead)
        self._queue: deque[Future[R]] = deque()
        self._fill()

    def _fill(self) -> None:
        if self._pool is None:
            return
        while len(self._queue) < self._lookahead:
            item = next(self._items, _END)
            if item is _END:
                return
            self._queue.append(self._pool.submit(self._fn, item))

    def poll(self) -> R | None:
        """The next result if it is ready, else None (never blocks)."""
        if self._queue and self._queue[0].done():
            return self.get()
        return None

    def get(self) -> R | None:
        """The next result, waiting for it; None when every item has been handed out."""
        if self._pool is None:
            item = next(self._items, _END)
            return None if item is _END else self._fn(item)
        if not self._queue:
            return None
        result = self._queue.popleft().result()
        self._fill()
        return result

    def close(self) -> None:
        if self._pool is not None:
            for future in self._queue:
                future.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)


_END = object()
