"""Request preparation in worker processes, so the thread that feeds the GPU never waits for the GIL.

Building a request (the preset decodes its media) and preparing it for the model (tiling, fbank,
tokenisation) is Python-heavy host work. On worker threads it holds the
GIL often enough that the engine's thread, which launches every GPU kernel, keeps waiting for
it: on an H200 (reports/perf/README.md) MME ran at 18.8 q/s with 15 preparation threads against
28.1 q/s for the engine alone on the same requests, LibriSpeech at 26 against 89 utt/s. In
processes that work runs beside the engine instead. Samples and the build travel by pickle
(media loaders are partials of module functions); prepared tensors come back through shared
memory (torch.multiprocessing), and the main process only page-locks them. The model's `prepare`
must pickle small (the VITA `Preparer` travels as its tokenizer's folder): `ProcessPoolExecutor`
spawns workers one per `submit`, and each spawn writes the initializer through a pipe that the new
process reads only after its imports, so a large one starts the workers one after another.

Threads and processes run the same `prepare_group`, so both give the same items and the same
per-sample failures.
"""
from __future__ import annotations

import logging
import pickle
import resource
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from vita_eval.runner.records import prompt_hash

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """One sample's preparation: its item and prompt hash, or the reason it failed."""

    uid: str
    prompt_hash: str = ""
    item: Any = None
    error: str | None = None


def failure_reason(exc: BaseException) -> str:
    """The reason recorded for a sample whose preparation or generation raised."""
    return f"generation failed: {type(exc).__name__}: {exc}"


def prepare_group(group: Sequence[Any], build: Callable[[Any], Any],
                  prepare: Callable[[list[Any]], list[Any]] | None) -> list[Outcome]:
    """Build each sample's request, then have the model prepare them together (questions about one
    image share its tiling); a sample that fails keeps its reason and the group goes on."""
    outcomes: list[Outcome] = []
    built: list[tuple[Any, str]] = []
    for sample in group:
        try:
            request = build(sample)
            built.append((request, prompt_hash(request)))
        except Exception as exc:  # bad media or row: this sample fails, the group goes on
            outcomes.append(Outcome(sample.uid, error=f"input: {exc}"))
    requests = [request for request, _ in built]
    items = prepare(requests) if prepare is not None else requests
    for (request, phash), item in zip(built, items):
        if isinstance(item, Exception):
            outcomes.append(Outcome(request.uid, error=failure_reason(item)))
        else:
            outcomes.append(Outcome(request.uid, phash, item))
    return outcomes


_WORKER_PREPARE: Callable[[list[Any]], list[Any]] | None = None


def _init_worker(prepare: Callable[[list[Any]], list[Any]]) -> None:
    """One core per process (the pool is the parallelism), and the model's preparation step."""
    global _WORKER_PREPARE
    import torch
    import torch.multiprocessing  # noqa: F401 - registers the shared-memory reductions the results travel by

    torch.set_num_threads(1)
    _WORKER_PREPARE = prepare


def _ready() -> bool:
    return _WORKER_PREPARE is not None


def _prepare_in_worker(group: Sequence[Any], build: Callable[[Any], Any]) -> list[Outcome]:
    return prepare_group(group, build, _WORKER_PREPARE)


class PreparePool:
    """`processes` spawned workers running `prepare_group` with the model's picklable `prepare`.

    The workers start (and import the model code) at once; `wait_ready` waits until they have.
    """

    def __init__(self, processes: int, prepare: Callable[[list[Any]], list[Any]]) -> None:
        import torch.multiprocessing

        _raise_open_file_limit()  # every tensor in flight is one shared-memory file descriptor
        context = torch.multiprocessing.get_context("spawn")  # never fork a process that holds CUDA
        self.processes = processes
        self._pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_init_worker,
                                         initargs=(prepare,))
        self._started = [self._pool.submit(_ready) for _ in range(processes)]

    def wait_ready(self) -> None:
        """Block until the workers have started (a benchmark times the work, not the start)."""
        for future in self._started:
            future.result()

    def submit(self, group: Sequence[Any], build: Callable[[Any], Any]) -> Future[list[Outcome]]:
        return self._pool.submit(_prepare_in_worker, group, build)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def travels(build: Callable[[Any], Any], group: Sequence[Any]) -> bool:
    """Whether a suite's build and samples pickle (a plug-in's lambda loader does not: threads then)."""
    try:
        pickle.dumps((build, list(group)))
        return True
    except Exception as exc:  # noqa: BLE001 - any pickling failure means "prepare on threads"
        log.info("preparing on threads: the suite's samples or preset do not pickle (%s: %s)",
                 type(exc).__name__, exc)
        return False


def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
