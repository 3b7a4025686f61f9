"""Inference over one suite: shard, skip what is done, batch, record every sample.

A sample whose input is bad (SampleError) or whose generation raises is recorded
with its reason and the loop goes on; a batch that fails is retried one sample at a
time so one bad request cannot take its neighbours down with it.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from tqdm import tqdm

from vita_eval.runner.distributed import Dist
from vita_eval.runner.records import RecordWriter, SampleRecord, prompt_hash, read_records
from vita_eval.types import Output, Request, Sample


class EvalModel(Protocol):
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
    """Records made with another model, preset or decoding are set aside, never mixed in or deleted."""
    suite_dir.mkdir(parents=True, exist_ok=True)
    path = suite_dir / "fingerprint.json"
    if path.exists() and json.loads(path.read_text()) != fingerprint:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for old in suite_dir.glob("samples*.jsonl"):
            old.rename(old.with_name(f"stale-{stamp}-{old.name}"))
    path.write_text(json.dumps(fingerprint, indent=2, sort_keys=True))


def _build(preset, sample: Sample, spec: Any, args: dict[str, Any], max_new_tokens: int | None) -> Request:
    request = preset(sample, spec, args)
    if max_new_tokens is not None and request.gen.max_new_tokens > max_new_tokens:
        request.gen = dataclasses.replace(request.gen, max_new_tokens=max_new_tokens)
    return request


def _error(uid: str, reason: str) -> SampleRecord:
    return SampleRecord(uid=uid, prompt_hash="", raw=None, answer=None, error=reason)


def _generate(model: EvalModel, requests: list[Request]) -> list[SampleRecord]:
    """One batched call; if it fails, each request alone, so an error stays with its own sample."""
    start = time.perf_counter()
    try:
        outputs = model.generate(requests)
    except Exception as exc:  # the model failed: keep the reason, go on
        if len(requests) == 1:
            return [_error(requests[0].uid, f"generation failed: {type(exc).__name__}: {exc}")]
        return [rec for r in requests for rec in _generate(model, [r])]
    share = (time.perf_counter() - start) / len(requests)
    return [_record(r, o, share) for r, o in zip(requests, outputs)]


def _record(request: Request, output: Output, time_s: float) -> SampleRecord:
    return SampleRecord(
        uid=request.uid,
        prompt_hash=prompt_hash(request),
        raw=output.raw, answer=output.answer, n_prompt_tokens=output.n_prompt_tokens,
        n_new_tokens=output.n_new_tokens, time_s=round(time_s, 4),
    )


def infer_suite(model: EvalModel, spec: Any, samples: list[Sample], suite_dir: Path, *, preset, preset_args: dict,
                batch_size: int, max_new_tokens: int | None, dist: Dist) -> InferenceStats:
    shard = dist.shard(samples)
    done = {u for u, r in read_records(suite_dir).items() if r.error is None}
    todo = [s for s in shard if s.uid not in done]
    writer = RecordWriter(suite_dir / f"samples.rank{dist.rank}.jsonl")
    bar = tqdm(total=len(shard), initial=len(shard) - len(todo), desc=f"{spec.name} [rank {dist.rank}/{dist.world}]",
               unit="sample", position=dist.rank, dynamic_ncols=True)
    start = time.perf_counter()
    try:
        for i in range(0, len(todo), batch_size):
            for rec in _run_batch(model, spec, todo[i : i + batch_size], preset, preset_args, max_new_tokens):
                writer.write(rec)
                bar.update(1)
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{(min(i + batch_size, len(todo))) / elapsed:.2f} samples/s")
    finally:
        writer.close()
        bar.close()
    return InferenceStats(len(shard), len(shard) - len(todo), len(todo), time.perf_counter() - start)


def _run_batch(model: EvalModel, spec: Any, batch: list[Sample], preset, preset_args: dict,
               max_new_tokens: int | None) -> list[SampleRecord]:
    records: list[SampleRecord] = []
    groups: dict[str, list[Request]] = defaultdict(list)  # one generate() per decoding setup
    for sample in batch:
        try:
            request = _build(preset, sample, spec, preset_args, max_new_tokens)
        except Exception as exc:  # bad media or row: this sample fails, the batch goes on
            records.append(_error(sample.uid, f"input: {exc}"))
            continue
        groups[repr(request.gen)].append(request)
    for requests in groups.values():
        records.extend(_generate(model, requests))
    return records
