"""`vita-eval bench --profile N`: where a workload's time goes, under torch.profiler.

Three views of one profiled run: the engine's `vita.*` phases, kernels by GPU time and operators by
host time, and the GPU's idle stretches with what the host was running meanwhile. The last is the
one that says why a GPU-bound engine is not at its kernels' speed: a gap is a stretch with no
kernel or copy on the device, and the host operators overlapping it (inclusive: a phase and the
operators inside it both count) are what the GPU waited for.
"""
from __future__ import annotations

import bisect
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from vita_eval import fsio

NOT_DEVICE_WORK = ("Command Buffer Full",)  # host-side CUDA runtime activity the profiler lists as device time
MIN_GAP_US = 100.0


def profile_run(run: Callable[[], dict[str, Any]], name: str, device: str, out: Path) -> dict[str, Any]:
    """`run()` (a timed suite run returning at least `samples` and `wall_s`) under torch.profiler;
    the tables go to `out`, the summary is returned."""
    from torch.profiler import ProfilerActivity, profile

    on_gpu = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as prof:
        timed = run()
    events, raw = prof.key_averages(), prof.events()
    kernels = device_intervals(raw) if on_gpu else []
    kernel_s = sum(end - start for start, end in merge(kernels)) / 1e6
    phases = {e.key: {"calls": e.count, "host_ms": round(e.cpu_time_total / 1000, 1),
                      "gpu_ms": round(e.device_time_total / 1000, 1)} for e in events if e.key.startswith("vita.")}
    busy = kernel_s / max(timed["wall_s"], 1e-9)
    gaps = idle_gaps(raw, kernels) if on_gpu else {}
    sort = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
    text = "\n\n".join([
        f"# profile: {name}, {timed['samples']} samples, wall {timed['wall_s']} s, "
        f"device busy {kernel_s:.2f} s ({busy:.0%})",
        "## engine phases\n" + "\n".join(f"{k}: {json.dumps(v)}" for k, v in phases.items()),
        "## GPU idle stretches and the host operators overlapping them\n" + json.dumps(gaps, indent=1),
        f"## by {sort}\n" + events.table(sort_by=sort, row_limit=40, max_name_column_width=70),
        "## by self_cpu_time_total\n" + events.table(sort_by="self_cpu_time_total", row_limit=25,
                                                       max_name_column_width=70)])
    fsio.write_text(out, text + "\n")
    return {"samples": timed["samples"], "wall_s": timed["wall_s"], "kernel_s": round(kernel_s, 3),
            "gpu_busy": round(busy, 3), "phases": phases, "idle": {k: gaps[k] for k in gaps if k != "host_ops_ms"},
            "file": out.name}


def device_intervals(events) -> list[tuple[float, float]]:
    """(start, end) in µs of every kernel, copy and memset (not the engine's own range markers)."""
    from torch.autograd import DeviceType

    return sorted((e.time_range.start, e.time_range.end) for e in events
                  if e.device_type == DeviceType.CUDA and not e.name.startswith("vita.")
                  and e.name not in NOT_DEVICE_WORK)


def merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted intervals joined where they overlap (concurrent streams count once)."""
    merged: list[tuple[float, float]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def gaps_between(busy: list[tuple[float, float]], min_us: float = MIN_GAP_US) -> list[tuple[float, float]]:
    """Idle stretches of at least `min_us` between the first and the last device interval."""
    return [(a[1], b[0]) for a, b in zip(busy, busy[1:]) if b[0] - a[1] >= min_us]


def idle_gaps(events, kernels: list[tuple[float, float]], top: int = 25) -> dict[str, Any]:
    """Total GPU idle time in stretches >= `MIN_GAP_US`, by size, and the host operators (by name)
    whose time ranges overlap it most."""
    from torch.autograd import DeviceType

    gaps = gaps_between(merge(kernels))
    starts = [g[0] for g in gaps]
    overlap: dict[str, float] = defaultdict(float)
    for e in events:
        if e.device_type != DeviceType.CPU:
            continue
        lo, hi = e.time_range.start, e.time_range.end
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        while i < len(gaps) and gaps[i][0] < hi:
            shared = min(hi, gaps[i][1]) - max(lo, gaps[i][0])
            if shared > 0:
                overlap[e.name] += shared
            i += 1
    sizes = {"<1ms": 0.0, "1-10ms": 0.0, ">=10ms": 0.0}
    for start, end in gaps:
        span = end - start
        sizes["<1ms" if span < 1e3 else "1-10ms" if span < 1e4 else ">=10ms"] += span / 1e3
    ranked = sorted(overlap.items(), key=lambda kv: -kv[1])[:top]
    return {"idle_ms": round(sum(e - s for s, e in gaps) / 1e3, 1), "stretches": len(gaps),
            "idle_ms_by_stretch": {k: round(v, 1) for k, v in sizes.items()},
            "host_ops_ms": {k: round(v / 1e3, 1) for k, v in ranked}}
