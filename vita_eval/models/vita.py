"""The VITA-1.5 model as the runner sees it: Requests in, Outputs out, batched.

Two engines (`--engine fast|reference`, see `VitaModel`). `builtin:tiny` is the embedded tiny VITA: the committed trained checkpoint in
`benchmarks/models/tiny-vita` when present, otherwise a tiny random-weight checkpoint
written deterministically from seed 0 into the user cache on first use.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from vita_eval.registry import register
from vita_eval.types import Output, Request

BUNDLED_TINY = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "models" / "tiny-vita"
CACHE = Path.home() / ".cache" / "vita-eval" / "models"


def resolve_model_path(spec: str, *, create: bool = True) -> Path:
    """A checkpoint folder, or the embedded tiny VITA for `builtin:tiny` (written on first use unless not `create`)."""
    if spec != "builtin:tiny":
        path = Path(spec)
        if not path.is_dir():
            raise FileNotFoundError(f"model directory not found: {path}")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a VITA checkpoint folder (no config.json)")
        return path
    if (BUNDLED_TINY / "config.json").exists():
        return BUNDLED_TINY
    target = CACHE / "tiny-vita-random-seed0"
    if create and not (target / "config.json").exists():
        _write_random_tiny(target)
    return target


def _write_random_tiny(target: Path) -> None:
    """Write into a private folder, then rename: ranks racing on first use never see half a checkpoint."""
    from vita15.checkpoint import write_checkpoint
    from vita15.configuration_vita import tiny_config

    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    write_checkpoint(tmp, tiny_config(), seed=0, dtype=torch.float32)
    try:
        os.rename(tmp, target)
    except OSError:  # another process finished first; its copy is identical (same seed)
        shutil.rmtree(tmp, ignore_errors=True)


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return dtype


ENGINES = ("fast", "reference")


class VitaModel:
    """Adapter from the harness's Request/Output to the VITA-1.5 engines.

    `engine="fast"` (default): `vita15.engine.FastEngine` (prefix sharing, slot KV cache, CUDA-graph
    decode, continuous batching), fed by worker threads that prepare requests ahead of the GPU.
    `engine="reference"`: `vita15.inference.VitaInference` one request at a time, preparation on
    the calling thread, the way VLMEvalKit's VITA adapter drives the model.
    """

    def __init__(self, path: Path, *, device: str, dtype: str, name: str | None = None, engine: str = "fast",
                 loaded=None, prepare_processes: int | None = None):
        """`loaded`: a `VitaInference` of this checkpoint already in memory (two engines, one model).
        `prepare_processes`: worker processes that prepare requests for the fast engine (default:
        most cores on a GPU machine, none on a CPU, where the model itself needs the cores)."""
        from vita15.inference import VitaInference

        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.path = path
        self.name = name or path.name
        self.device, self.dtype = device, dtype
        self.engine_name = engine
        # the loaded model with the reference engine (speech output and `ask` drive it too)
        self.engine = loaded or VitaInference.from_pretrained(path, device=device, dtype=dtype)
        self.fast = None
        if engine == "fast":
            from vita15.engine import FastEngine

            gen_path = path / "generation_config.json"
            gen_cfg = json.loads(gen_path.read_text()) if gen_path.is_file() else {}
            self.fast = FastEngine(self.engine.model, self.engine.tokenizer, gen_cfg)
        self.prefetch_workers = max(1, min(16, _cores() - 1)) if engine == "fast" else 0
        self.prepare_pool = None  # started by the first suite that uses it (`prepare_pool_for`)
        if prepare_processes is None:
            prepare_processes = max(1, min(12, _cores() - 2)) if device.startswith("cuda") else 0
        self.prepare_processes = prepare_processes if self.fast is not None else 0
        # Which suites use the processes, by media kind: all (reports/perf: MME 36.3 q/s, LibriSpeech
        # 172 utt/s); `vita-eval bench --process-media` moves kinds back to threads for comparison.
        self.process_media = {"image", "video", "audio"}
        self.identity: dict[str, Any] = {
            "path": str(path.resolve()), "name": self.name,
            "config_sha256": _sha256(path / "config.json"),
            "index_sha256": _sha256(path / "model.safetensors.index.json") or _sha256(path / "random_init.json")
            or _sha256(path / "model.safetensors"),
        }

    # ------------------------------------------------------------ streaming (used by the runner)
    def prepare(self, requests: Sequence[Request]) -> list[Any]:
        """Worker-thread side: the fast engine's jobs (the questions of one image share its tiling)."""
        return _jobs(self.fast.prepare, requests) if self.fast is not None else list(requests)

    def prepare_pool_for(self, samples: Sequence[Any]) -> Any:
        """The worker processes for a suite like `samples` (its first group), or None: threads then."""
        kinds = {m.kind for s in samples for m in [*s.images, s.video, s.audio] if m is not None}
        if not self.prepare_processes or not kinds or not kinds <= self.process_media:
            return None
        if self.prepare_pool is None:  # not at load: a run of image suites only never needs the processes
            from vita_eval.runner.prepare_pool import PreparePool

            self.prepare_pool = PreparePool(self.prepare_processes, partial(_jobs, self.fast.preparer()))
        return self.prepare_pool

    def adopt(self, jobs: list[Any]) -> list[Any]:
        """Jobs prepared in a worker process, page-locked here for the copies to the GPU."""
        pinned: dict[int, Any] = {}  # the jobs of a group share their media tensors
        for job in jobs:
            self.fast.pin(job.prepared, pinned)
        return jobs

    def stream(self, source) -> Iterator[tuple[str, Output | Exception]]:
        """(uid, Output or the exception that failed it) as each generation ends."""
        if self.fast is not None:
            for uid, result in self.fast.stream(source):
                yield uid, result if isinstance(result, Exception) else _output(result)
            return
        while (group := source.get()) is not None:
            for request in group:
                try:
                    yield request.uid, self._reference_one(request)
                except Exception as exc:  # the reference fails alone too
                    yield request.uid, exc

    def _reference_one(self, request: Request) -> Output:
        gen = request.gen
        (result,) = self.engine.generate([request], do_sample=gen.do_sample, temperature=gen.temperature,
                                            top_p=gen.top_p, max_new_tokens=gen.max_new_tokens, stop=gen.stop,
                                            seed=gen.seed)
        return _output(result)

    def generate(self, requests: Sequence[Request]) -> list[Output]:
        """All requests at once (shared prefixes found by content); raises the first failure."""
        if self.fast is None:
            return [self._reference_one(r) for r in requests]
        from vita15.engine import ListSource

        jobs = self.prepare(requests)
        for job in jobs:
            if isinstance(job, Exception):
                raise job
        results = dict(self.fast.stream(ListSource([jobs])))
        for r in requests:
            if isinstance(results[r.uid], Exception):
                raise results[r.uid]
        return [_output(results[r.uid]) for r in requests]


def _cores() -> int:
    """This process's share of the cores: those it may run on, split between the ranks of a torchrun
    on this host (each rank has its own preparation workers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def _jobs(prepare_one, requests: Sequence[Request]) -> list[Any]:
    """The fast engine's jobs, one per request, or the exception that failed it (its group goes on).
    A module function, so `partial(_jobs, preparer)` runs in worker processes too."""
    from vita15.engine import Job

    tiles: dict = {}
    out: list[Any] = []
    for request in requests:
        try:
            out.append(Job(request.uid, prepare_one(request, tiles), request.gen))
        except Exception as exc:  # this request's media cannot be prepared; its group goes on
            out.append(exc)
    return out


def _output(g) -> Output:
    return Output(raw=g.raw, answer=g.answer, n_prompt_tokens=g.n_prompt_tokens, n_new_tokens=g.n_new_tokens,
                  warnings=list(g.warnings))


@register("model", "vita")
def load(spec: str, *, device: str, dtype: str, name: str | None = None, engine: str = "fast") -> VitaModel:
    """VITA-1.5 checkpoints in the official layout: a folder, or builtin:tiny (the embedded tiny VITA)."""
    return VitaModel(resolve_model_path(spec), device=device, dtype=dtype, name=name, engine=engine)
